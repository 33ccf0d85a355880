"""One error hierarchy. Every message names the file, key or limit involved and what to do.

Front ends show `str(error)` as it is; the HTTP API maps `http_status` and `code` to an
OpenAI-style error body.
"""

from __future__ import annotations


class JarvisError(Exception):
    """Base of every error JARVIS raises on purpose."""

    http_status = 500
    code = "internal_error"


class ConfigError(JarvisError):
    """Invalid settings: names the file, the key, the value and what is allowed."""

    http_status = 500
    code = "config_error"


class ModelNotFound(JarvisError):
    http_status = 404
    code = "model_not_found"

    def __init__(self, name: str, available: list[str]):
        self.name = name
        self.available = list(available)
        listing = ", ".join(self.available) if self.available else "none (put a .gguf file in models/)"
        super().__init__(f"No model named {name!r}. Available models: {listing}.")


class CatalogNotReady(JarvisError):
    """Asked of the catalog before its first scan finished. Requests never see it: they await the
    scan (Catalog.lookup); it stops a synchronous reader from saying "no such model" too early."""

    http_status = 503
    code = "catalog_not_ready"

    def __init__(self) -> None:
        super().__init__("JARVIS is still reading the model folders (it just started). Try again in a moment.")


class ModelLoadError(JarvisError):
    """A corrupt, truncated or unsupported model file. Names the file and the reason."""

    http_status = 503
    code = "model_load_error"

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"Cannot load model file {self.path}: {reason}")


class ModelBusy(JarvisError):
    """Every loaded model is busy and none can be evicted to make room."""

    http_status = 503
    code = "model_busy"


class InvalidRequest(JarvisError):
    http_status = 400
    code = "invalid_request"

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(message)


class ResponseNotFound(JarvisError):
    """GET/DELETE/cancel /v1/responses/{id} for an id that is not stored (or no longer running)."""

    http_status = 404
    code = "response_not_found"

    def __init__(self, response_id: str, hint: str = ""):
        self.response_id = response_id
        super().__init__(f"No response {response_id!r}: it was never stored (store: false), was deleted, or is "
                         f"older than server.responses_retention_days.{hint}")


class ContextOverflow(InvalidRequest):
    code = "context_length_exceeded"

    def __init__(self, prompt_tokens: int, context_tokens: int, hint: str = ""):
        self.prompt_tokens = prompt_tokens
        self.context_tokens = context_tokens
        msg = (
            f"The prompt is {prompt_tokens} tokens but the model's context holds {context_tokens}. "
            + (hint or "Shorten the conversation, start a new one, or enable truncation.")
        )
        super().__init__(msg, field="messages")


class QueueFull(JarvisError):
    http_status = 429
    code = "queue_full"

    def __init__(self, limit: int, retry_after_s: float = 1.0):
        self.limit = limit
        self.retry_after_s = retry_after_s
        super().__init__(
            f"The request queue is full ({limit} waiting). Try again in a moment, "
            "or raise engine.max_queue in settings."
        )


class RequestCancelled(JarvisError):
    http_status = 499
    code = "cancelled"

    def __init__(self, message: str = "The request was cancelled."):
        super().__init__(message)


class RequestTimeout(JarvisError):
    http_status = 504
    code = "timeout"

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        super().__init__(
            f"The request did not finish within {timeout_s:g} s. "
            "Raise engine.request_timeout_s or ask for fewer tokens."
        )


class EngineClosed(JarvisError):
    http_status = 503
    code = "engine_closed"

    def __init__(self, message: str = "The model was unloaded before the request could run. Send it again."):
        super().__init__(message)


class EngineCrashed(EngineClosed):
    """The model's worker thread died: every request it held or queued fails with this at once."""

    code = "engine_crashed"

    def __init__(self, model: str, reason: str):
        self.model = model
        self.reason = reason
        super().__init__(f"The worker running model {model!r} crashed ({reason}). The model is unloaded and "
                         "loads afresh on the next request: send the request again.")


class ConversationNotFound(InvalidRequest):
    http_status = 404
    code = "conversation_not_found"

    def __init__(self, what: str, ident: int):
        super().__init__(f"No {what} with id {ident}: it may have been deleted. Reload the conversation list.",
                         field=f"{what}_id")


class StorageError(JarvisError):
    """The chat history database cannot be opened or written. Names the file and what to do."""

    http_status = 503
    code = "storage_error"

    def __init__(self, path: object, reason: str, hint: str = ""):
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"Cannot use the conversation database {self.path}: {reason}. "
            + (hint or "Check that its folder exists and is writable, or set [conversations] database "
                       "in your settings to a file in a writable folder.")
        )


class RemoteUnavailable(JarvisError):
    """A remote server (every replica of it) is unreachable: requests fail at once, naming it."""

    http_status = 503
    code = "remote_unavailable"

    def __init__(self, remote: str, last_error: str):
        self.remote = remote
        self.last_error = last_error
        super().__init__(f"Remote {remote!r} is unreachable (last error: {last_error}). JARVIS probes it again "
                         "every few seconds; check that the server runs and that remotes."
                         f"{remote}.base_url is right.")


class RemoteError(JarvisError):
    """A remote server answered with an error, or failed in the middle of a reply."""

    http_status = 502
    code = "remote_error"

    def __init__(self, remote: str, message: str, upstream_status: int | None = None):
        self.remote = remote
        self.upstream_status = upstream_status
        super().__init__(f"Remote {remote!r}: {message}")


class RemoteTimeout(RequestTimeout):
    """A remote server did not answer within remotes.NAME.timeout_s."""

    def __init__(self, remote: str, timeout_s: float):
        self.remote = remote
        self.timeout_s = timeout_s
        JarvisError.__init__(self, f"Remote {remote!r} did not answer within {timeout_s:g} s. "
                                   f"Raise remotes.{remote}.timeout_s, or check the server's load.")
