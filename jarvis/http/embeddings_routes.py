"""OpenAI's POST /v1/embeddings: `input` as a string, a list of strings, a token array or a list
of token arrays; `encoding_format` float or base64 (little-endian float32, as OpenAI sends it);
`dimensions` only when it is what the model gives."""

from __future__ import annotations

import base64
from typing import Literal

import numpy as np
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from jarvis.embeddings import embed
from jarvis.errors import InvalidRequest
from jarvis.http.openai_schema import _invalid, parse_json


MAX_INPUTS = 2048  # OpenAI's limit per request


class EmbeddingsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input: str | list[str] | list[int] | list[list[int]]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None

    @classmethod
    def parse(cls, body: dict) -> "EmbeddingsBody":
        try:
            parsed = cls.model_validate(body)
        except ValidationError as e:
            raise _invalid(e) from None
        if isinstance(parsed.input, list) and not parsed.input:
            raise InvalidRequest("input is an empty list: send at least one string or token array.", field="input")
        if isinstance(parsed.input, list) and len(parsed.input) > MAX_INPUTS:
            raise InvalidRequest(f"input has {len(parsed.input)} items; at most {MAX_INPUTS} are allowed.", field="input")
        if parsed.dimensions is not None and parsed.dimensions < 1:
            raise InvalidRequest(f"dimensions = {parsed.dimensions} must be at least 1.", field="dimensions")
        return parsed

    def inputs(self) -> list[str | list[int]]:
        value = self.input
        if isinstance(value, str):
            return [value]
        if value and all(isinstance(v, int) for v in value):
            return [list(value)]  # one token array
        return list(value)


def encode(vector: np.ndarray, encoding: str):
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()


def embeddings_route(runtime):
    assistant = runtime.assistant

    async def handle(request: web.Request) -> web.Response:
        body = EmbeddingsBody.parse(parse_json(await request.read()))
        # A client that leaves cancels this handler (aiohttp's handler_cancellation), and with it
        # the wait for the embedder: nothing polls.
        name, result = await embed(assistant, body.model or "", body.inputs(), body.dimensions, source="api")
        data = [{"object": "embedding", "index": i, "embedding": encode(v, body.encoding_format)}
                for i, v in enumerate(result.vectors)]
        return web.json_response({"object": "list", "data": data, "model": name,
                                  "usage": {"prompt_tokens": result.prompt_tokens,
                                            "total_tokens": result.prompt_tokens}})

    return handle
