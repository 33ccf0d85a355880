"""Settings made of named tables (`[remotes.NAME]`, `[mcp.servers.NAME]`): one table checked the
same way for each kind, so every such error reads alike: a value where a table belongs, an unknown
key (with the keys there are), or the first invalid value, in the kind's own words."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from pydantic import BaseModel, ValidationError

from jarvis.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)
# (the invalid key's dotted path, "" for the whole table; pydantic's first error) -> the message
Describe = Callable[[str, dict], str]


def validate_named_table(model: type[Model], prefix: str, name: str, values: Any, where: str,
                         describe: Describe) -> Model:
    """`values` (the [PREFIX.NAME] table read from `where`) as `model`, or one ConfigError."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: {prefix}.{name} must be a table ([{prefix}.{name}]), not a value.")
    for key in values:
        if key not in model.model_fields:
            raise ConfigError(f"{where}: unknown key {prefix}.{name}.{key}. Keys of [{prefix}.{name}]: "
                              f"{', '.join(model.model_fields)}.")
    try:
        return model.model_validate(values)
    except ValidationError as e:
        err = e.errors()[0]
        raise ConfigError(describe(".".join(str(p) for p in err["loc"]), err)) from None
