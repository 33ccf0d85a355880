"""Errors in Anthropic's shape on the Messages routes:
`{"type": "error", "error": {"type": "invalid_request_error", "message": ...}}`.

Every other layer (the middlewares, JarvisError) answers in OpenAI's shape; this middleware, just
inside the timing one, translates those answers for /v1/messages, so the status codes and messages
are the same on every route and only the wrapping differs."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

PATH_PREFIX = "/v1/messages"
# Anthropic's error types by status (https://docs.anthropic.com/en/api/errors).
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 503: "overloaded_error",
          529: "overloaded_error"}


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": _TYPES.get(status, "api_error" if status >= 500 else
                                                          "invalid_request_error"), "message": message}}


@web.middleware
async def anthropic_errors(request: web.Request, handler) -> web.StreamResponse:
    response = await handler(request)
    if (not request.path.startswith(PATH_PREFIX) or response.status < 400 or response.prepared
            or not isinstance(response, web.Response) or response.content_type != "application/json"):
        return response
    try:
        error = json.loads(response.body)["error"]
        message = error["message"]
    except (TypeError, ValueError, KeyError):
        return response
    headers = {k: v for k, v in response.headers.items()
               if k.lower() not in ("content-type", "content-length")}
    return web.json_response(anthropic_error(response.status, message), status=response.status, headers=headers)
