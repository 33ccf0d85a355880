"""The sampling parameters: their one definition, with every default and range.

`SamplingParams` is at once the [generation] section of the settings (the defaults of every
request), the `sampling` of a ChatRequest, what the HTTP API's fields are checked against, what a
stored conversation may override, and where the desktop's spin boxes take their ranges. A bad
value raises one InvalidRequest naming the field and its allowed range, from whichever door it
came in.
"""

from __future__ import annotations

import math
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jarvis.errors import InvalidRequest

MAX_STOP_STRINGS = 8


class SamplingParams(BaseModel):
    """How one reply is sampled. Frozen: a request's parameters never change under it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int = Field(512, ge=1, le=131072, description="Most tokens of the reply.")
    temperature: float = Field(0.7, ge=0, le=5, description="0 = greedy (always the likeliest token).")
    top_k: int = Field(40, ge=0, le=100000, description="Keep the k likeliest tokens; 0 = off.")
    top_p: float = Field(0.95, gt=0, le=1, description="Keep the likeliest tokens summing to p; 1 = off.")
    min_p: float = Field(0.05, ge=0, le=1, description="Drop tokens below p x the likeliest's; 0 = off.")
    repeat_penalty: float = Field(1.1, gt=0, le=5, description="Penalise the last 64 tokens; 1 = off.")
    presence_penalty: float = Field(0.0, ge=-2, le=2, description="OpenAI's presence penalty; 0 = off.")
    frequency_penalty: float = Field(0.0, ge=-2, le=2, description="OpenAI's frequency penalty; 0 = off.")
    seed: int = Field(-1, ge=-1, le=2**32 - 1, description="-1 = a random seed per request.")
    stop: tuple[str, ...] = Field((), max_length=MAX_STOP_STRINGS,
                                  description="Strings that end the reply (not shown); at most 8.")

    @field_validator("max_tokens", "temperature", "top_k", "top_p", "min_p", "repeat_penalty", "presence_penalty",
                     "frequency_penalty", "seed", mode="before")
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # True is an int to Python, never a temperature to a user
            raise ValueError("must be a number, not true or false")
        return value

    @field_validator("temperature", "top_p", "min_p", "repeat_penalty", "presence_penalty", "frequency_penalty")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("stop")
    @classmethod
    def _non_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not s for s in value):
            raise ValueError("stop strings must not be empty")
        return value

    # ---- building and checking ---------------------------------------------------------------
    @classmethod
    def checked(cls, values: dict[str, Any], *, strict: bool = False) -> "SamplingParams":
        """Validate `values` (fields not given take their defaults). Raises InvalidRequest naming the
        field, its value and what is allowed. `strict` refuses "0.5" for a number and True for 1."""
        try:
            return cls.model_validate(values, strict=strict)
        except ValidationError as e:
            raise _invalid(e) from None

    def with_overrides(self, **overrides: Any) -> "SamplingParams":
        """These parameters with some replaced (None = keep), validated."""
        clean = {k: v for k, v in overrides.items() if v is not None}
        if not clean:
            return self
        return self.checked({**self.model_dump(), **clean})

    @classmethod
    def check_fields(cls, values: dict[str, Any]) -> None:
        """Check some fields by the same rule (strictly: stored values must already be numbers)."""
        unknown = [k for k in values if k not in cls.model_fields]
        if unknown:
            raise InvalidRequest(f"{unknown[0]!r} is not a sampling parameter; known: {', '.join(cls.model_fields)}.",
                                 field=unknown[0])
        cls.checked({k: v for k, v in values.items() if v is not None}, strict=True)


def bounds(name: str) -> tuple[float | None, float | None, bool, bool]:
    """(low, high, low_inclusive, high_inclusive) of a numeric field; None where open-ended."""
    low = high = None
    low_inclusive = high_inclusive = True
    for meta in SamplingParams.model_fields[name].metadata:
        if isinstance(meta, Ge):
            low = meta.ge
        elif isinstance(meta, Gt):
            low, low_inclusive = meta.gt, False
        elif isinstance(meta, Le):
            high = meta.le
        elif isinstance(meta, Lt):
            high, high_inclusive = meta.lt, False
    return low, high, low_inclusive, high_inclusive


def allowed(name: str) -> str:
    """The rule of a field in words: 'from 0 to 5', 'in (0, 1]', '1 or more'."""
    if name == "stop":
        return f"at most {MAX_STOP_STRINGS} non-empty strings"
    low, high, lo_in, hi_in = bounds(name)
    kind = "an integer" if SamplingParams.model_fields[name].annotation is int else "a number"
    if low is not None and high is not None:
        if lo_in and hi_in:
            return f"{kind} from {low} to {high}"
        return f"{kind} in {'[' if lo_in else '('}{low}, {high}{']' if hi_in else ')'}"
    if low is not None:
        return f"{kind} {'of' if lo_in else 'above'} {low}{' or more' if lo_in else ''}"
    return kind


def _invalid(error: ValidationError) -> InvalidRequest:
    first = error.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else "sampling"
    if first["type"] == "extra_forbidden":
        return InvalidRequest(f"{name!r} is not a sampling parameter; known: {', '.join(SamplingParams.model_fields)}.",
                              field=name)
    value = first.get("input")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 9.0 from JSON and 9 from Python read the same
    rule = allowed(name) if name in SamplingParams.model_fields else first["msg"]
    return InvalidRequest(f"{name} = {value!r:.60} is not allowed: it must be {rule}.", field=name)
