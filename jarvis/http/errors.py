"""Error responses in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.

`param` names the request field at fault (OpenAI clients expose it as `error.param`), else null."""

from __future__ import annotations

import math

from aiohttp import web

from jarvis.errors import JarvisError, QueueFull

# OpenAI's error "type" for each status class, so OpenAI clients raise the matching exception.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def error_type(status: int) -> str:
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_response(status: int, message: str, code: str, headers: dict[str, str] | None = None,
                   param: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def jarvis_error_response(error: JarvisError) -> web.Response:
    headers = {"Retry-After": str(max(1, math.ceil(error.retry_after_s)))} if isinstance(error, QueueFull) else None
    return error_response(error.http_status, str(error), error.code, headers, param=getattr(error, "field", None))
