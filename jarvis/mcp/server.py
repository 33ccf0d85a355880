"""One configured MCP server, as a connection on the asyncio loop (the official `mcp` SDK).

The SDK's sessions are anyio task groups, which must be entered and left by one task: each
server's connection therefore lives in its own owner task (`_own`), which starts the server,
runs `initialize` and `tools/list`, then waits until it is told to stop. Calls from any task go
through the session it published. A server is started on first use; one that crashes, stops
answering or exits is shown as such with its last error and started again on the next use, after
a back-off that doubles with each failure in a row (0 s after a healthy run).

Nothing that could hold a secret is logged: `env` and `headers` are never written anywhere, and
their values are masked in the server's stderr lines and in errors before they reach the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from jarvis.errors import ConfigError
from jarvis.mcp.settings import McpServerSettings, expand

log = logging.getLogger("jarvis.mcp")

STOPPED, STARTING, READY, CRASHED, HUNG, FAILED, DISABLED = (
    "stopped", "starting", "ready", "crashed", "hung", "failed", "disabled")
BACKOFF_S = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0)  # before a restart, by failures in a row (1st, 2nd, ...)
STDERR_LINES = 20  # kept for "last error"
# Largest single message taken from an HTTP server (the SDK's default is 1 MiB); results are cut
# to mcp.result_max_kb for the model anyway, this only bounds what one answer may hold in memory.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
CLIENT_NAME = "jarvis"


class McpServerError(Exception):
    """A server could not be started or did not answer a call. The message says which and why."""


@dataclass(frozen=True)
class McpTool:
    """A tool as the server lists it, with the user's switch and approval policy applied."""

    server: str
    name: str
    description: str
    input_schema: dict
    enabled: bool
    approval: str  # ask | always | never


@dataclass(frozen=True)
class CallResult:
    """A tools/call's answer as text (non-text parts summarised), and when it went and came back."""

    text: str
    is_error: bool
    sent_at: float  # perf_counter: the request was handed to the SDK
    answered_at: float


@dataclass
class ServerStatus:
    name: str
    transport: str
    where: str
    state: str
    last_error: str = ""
    tools: list[McpTool] = field(default_factory=list)
    starts: int = 0
    calls: int = 0
    errors: int = 0


def result_text(result: Any) -> str:
    """A CallToolResult's content as text: text parts as they are, images, audio and resources
    summarised (no backend here reads them yet), structured content as JSON when there is no text."""
    import json

    parts: list[str] = []
    for item in result.content or []:
        kind = getattr(item, "type", "")
        if kind == "text":
            parts.append(item.text)
        elif kind in ("image", "audio"):
            size = len(item.data) * 3 // 4
            parts.append(f"[{kind} {item.mime_type}, about {size} bytes, not shown: this model reads text only]")
        elif kind == "resource_link":
            parts.append(f"[resource link {item.uri}" + (f" ({item.name})" if item.name else "") + "]")
        elif kind == "resource":
            inner = item.resource
            text = getattr(inner, "text", None)
            parts.append(text if text is not None else
                         f"[resource {inner.uri}, {getattr(inner, 'mime_type', None) or 'binary'}, not shown]")
        else:
            parts.append(f"[{kind or 'unknown'} content, not shown]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


class McpServer:
    """One [mcp.servers.NAME]: its connection, state, tools and counters."""

    def __init__(self, name: str, settings: McpServerSettings, environ: dict[str, str] | None = None) -> None:
        self.name = name
        self.settings = settings
        self._environ = environ
        self.state = STOPPED if settings.enabled else DISABLED
        self.last_error = ""
        self.starts = self.calls = self.errors = 0
        self._failures = 0  # in a row; sets the back-off
        self._failed_at = 0.0
        self._tools: list[McpTool] = []
        self._session: Any = None
        self._owner: asyncio.Task | None = None
        self._stop: asyncio.Event | None = None
        self._lock = asyncio.Lock()  # one start at a time
        self._secrets: tuple[str, ...] = ()
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._tasks: set[asyncio.Task] = set()
        self._generation = 0  # which connection a late failure belongs to

    # ---- what the user sees ----------------------------------------------------------------
    def status(self) -> ServerStatus:
        return ServerStatus(self.name, self.settings.transport, self.settings.where(), self.state, self.last_error,
                            list(self._tools), self.starts, self.calls, self.errors)

    @property
    def tools(self) -> list[McpTool]:
        return list(self._tools)

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # ---- life cycle ------------------------------------------------------------------------
    def backoff_left(self) -> float:
        """Seconds before a failed, crashed or hung server may be started again (0 = now)."""
        if not self._failures or self.state == READY:
            return 0.0
        wait = BACKOFF_S[min(self._failures - 1, len(BACKOFF_S) - 1)] - (time.monotonic() - self._failed_at)
        return max(0.0, wait)

    async def ensure(self) -> None:
        """Started and initialised, or McpServerError saying why not."""
        if self.state == DISABLED:
            raise McpServerError(f"MCP server {self.name} is disabled (mcp.servers.{self.name}.enabled = false).")
        if self.state == READY:
            return
        async with self._lock:
            if self.state == READY:
                return
            wait = self.backoff_left()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._start()

    async def _start(self) -> None:
        await self._shutdown()
        self.state, self.starts = STARTING, self.starts + 1
        self._generation += 1
        loop = asyncio.get_running_loop()
        ready: asyncio.Future = loop.create_future()
        self._stop = asyncio.Event()
        self._owner = loop.create_task(self._own(ready, self._stop, self._generation), name=f"jarvis-mcp:{self.name}")
        try:
            await asyncio.wait_for(asyncio.shield(ready), self.settings.timeout_s)
        except asyncio.TimeoutError:
            await self._shutdown()
            self._fail(HUNG, f"did not finish starting within {self.settings.timeout_s:g} s"
                             + self._stderr_hint())
            raise McpServerError(self._error_text()) from None
        except BaseException as e:
            await self._shutdown()
            if isinstance(e, asyncio.CancelledError):
                self.state = STOPPED
                raise
            self._fail(FAILED, f"could not start: {self._describe(e)}" + self._stderr_hint())
            raise McpServerError(self._error_text()) from None
        self.state, self._failures = READY, 0
        log.info("MCP server %s ready (%s): %d tools", self.name, self.settings.transport, len(self._tools))

    async def _own(self, ready: asyncio.Future, stop: asyncio.Event, generation: int) -> None:
        """The connection's one task: enters the SDK's contexts, publishes the session, waits."""
        from mcp.client.session import ClientSession
        from mcp_types import Implementation

        stderr_task = None
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.settings.command:
                    read, write, stderr_task = await self._stdio(stack, generation)
                else:
                    read, write = await self._http(stack)
                session = await stack.enter_async_context(ClientSession(
                    read, write, message_handler=self._on_message,
                    client_info=Implementation(name=CLIENT_NAME, version=_version())))
                await session.initialize()
                self._tools = await self._list(session)
                self._session = session
                ready.set_result(None)
                await stop.wait()
        except BaseException as e:  # noqa: BLE001 - everything here ends the connection, said in the state
            if not ready.done():
                ready.set_exception(e if isinstance(e, Exception) else McpServerError(self._describe(e)))
            elif not stop.is_set() and generation == self._generation:
                self._fail(CRASHED, f"the connection ended: {self._describe(e)}" + self._stderr_hint())
            if isinstance(e, asyncio.CancelledError):
                raise
        finally:
            self._session = None
            if stderr_task is not None:
                stderr_task.cancel()
                with contextlib.suppress(BaseException):
                    await stderr_task

    async def _stdio(self, stack: contextlib.AsyncExitStack, generation: int):
        from mcp.client.stdio import StdioServerParameters, stdio_client

        env = expand(self.settings.env, f"mcp.servers.{self.name}.env", self._environ)
        self._secrets = tuple(v for v in env.values() if len(v) >= 4)
        params = StdioServerParameters(command=self.settings.command, args=self.settings.args, env=env or None,
                                       cwd=self.settings.cwd or None)
        # The server's stderr goes to a pipe we read into the log, masked, and keep for "last error".
        read_fd, write_fd = os.pipe()
        errlog = os.fdopen(write_fd, "w")
        try:
            read, write = await stack.enter_async_context(stdio_client(params, errlog=errlog))
        except FileNotFoundError:
            os.close(read_fd)
            raise McpServerError(f"the command {self.settings.command!r} was not found: install it or give its "
                                 f"full path in mcp.servers.{self.name}.command") from None
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            errlog.close()  # the child holds its own copy; ours would keep the pipe open forever
        task = asyncio.get_running_loop().create_task(self._read_stderr(read_fd, generation),
                                                      name=f"jarvis-mcp-stderr:{self.name}")
        return read, write, task

    async def _http(self, stack: contextlib.AsyncExitStack):
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        headers = expand(self.settings.headers, f"mcp.servers.{self.name}.headers", self._environ)
        self._secrets = tuple(v for v in headers.values() if len(v) >= 4)
        client = await stack.enter_async_context(httpx2.AsyncClient(
            headers=headers, timeout=httpx2.Timeout(self.settings.timeout_s, read=max(300.0, self.settings.timeout_s))))
        return await stack.enter_async_context(streamable_http_client(self.settings.url, http_client=client,
                                                                      max_sse_event_size=MAX_MESSAGE_BYTES))

    async def _read_stderr(self, fd: int, generation: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb"))
        try:
            while True:
                try:
                    raw = await reader.readline()
                except ValueError:  # a line past the limit: take what there is
                    raw = await reader.read(1 << 20)
                if not raw:
                    break
                line = self._mask(raw.decode("utf-8", "replace").rstrip())
                if line:
                    self._stderr.append(line)
                    log.info("MCP server %s: %s", self.name, line)
        finally:
            transport.close()
        # stderr closed: the process is gone. Say so now, not at the next call.
        if generation == self._generation and self.state == READY and self._stop and not self._stop.is_set():
            self._fail(CRASHED, "the server process exited" + self._stderr_hint())
            self._spawn(self._shutdown())

    async def _list(self, session) -> list[McpTool]:
        tools, cursor = [], None
        while True:
            from mcp_types import PaginatedRequestParams

            page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        s = self.settings
        return [McpTool(self.name, t.name, t.description or "", dict(t.input_schema or {"type": "object"}),
                        s.tool_enabled(t.name), s.tool_approval(t.name)) for t in tools]

    async def _on_message(self, message: Any) -> None:
        if getattr(message, "method", "") == "notifications/tools/list_changed":
            self._spawn(self._relist())
        elif isinstance(message, Exception):
            log.warning("MCP server %s: %s", self.name, self._mask(str(message)))

    async def _relist(self) -> None:
        session = self._session
        if session is None:
            return
        try:
            self._tools = await asyncio.wait_for(self._list(session), self.settings.timeout_s)
            log.info("MCP server %s: its tools changed (%d now)", self.name, len(self._tools))
        except Exception as e:  # noqa: BLE001 - the old list stays; the next call shows a real failure
            log.warning("MCP server %s: tools/list after list_changed failed: %s", self.name, self._describe(e))

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def refresh(self) -> list[McpTool]:
        """The tool list, asked again (a Restart button, `jarvis mcp list`)."""
        await self.ensure()
        self._tools = await asyncio.wait_for(self._list(self._session), self.settings.timeout_s)
        return self.tools

    def set_tool_enabled(self, tool: str, enabled: bool) -> None:
        """A tool's switch for this session (the desktop's Tools panel); the settings file is not
        changed. A disabled tool leaves the next request's prompt."""
        from dataclasses import replace as replaced

        from jarvis.mcp.settings import McpToolSettings

        own = self.settings.tools.get(tool, McpToolSettings())
        tools = {**self.settings.tools, tool: own.model_copy(update={"enabled": enabled})}
        self.settings = self.settings.model_copy(update={"tools": tools})
        self._tools = [replaced(t, enabled=enabled) if t.name == tool else t for t in self._tools]

    def set_tool_approval(self, tool: str, approval: str) -> None:
        """A tool's approval for this session (the settings file is written by the hub)."""
        from dataclasses import replace as replaced

        from jarvis.mcp.settings import McpToolSettings

        own = self.settings.tools.get(tool, McpToolSettings())
        tools = {**self.settings.tools, tool: own.model_copy(update={"approval": approval})}
        self.settings = self.settings.model_copy(update={"tools": tools})
        self._tools = [replaced(t, approval=approval) if t.name == tool else t for t in self._tools]

    async def restart(self) -> None:
        async with self._lock:
            self._failures = 0
            await self._start()

    # ---- calls -------------------------------------------------------------------------------
    async def call(self, tool: str, arguments: dict) -> CallResult:
        """tools/call with the server's timeout. A tool's own error is a result with is_error; a
        server that crashed or did not answer in time is McpServerError (and restarted next use).
        Cancelling the caller cancels the call on the server (notifications/cancelled)."""
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED

        await self.ensure()
        session, generation = self._session, self._generation
        self.calls += 1
        sent = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                result = await session.call_tool(tool, arguments)
        except TimeoutError:
            self.errors += 1
            self._fail(HUNG, f"tools/call {tool} got no answer within {self.settings.timeout_s:g} s; the server "
                             "was stopped and starts again on the next call")
            await self._shutdown(generation)
            raise McpServerError(self._error_text()) from None
        except MCPError as e:
            self.errors += 1
            if e.code != CONNECTION_CLOSED:  # the server answered with an error: it is alive
                return CallResult(f"Error from {self.name}: {self._mask(e.error.message)}", True, sent,
                                  time.perf_counter())
            await self._crashed(tool, e, generation)
        except (asyncio.CancelledError, McpServerError):
            raise
        except Exception as e:  # noqa: BLE001 - a transport failure: the connection is gone
            self.errors += 1
            await self._crashed(tool, e, generation)
        answered = time.perf_counter()
        if result.is_error:
            self.errors += 1
        return CallResult(self._mask(result_text(result)), bool(result.is_error), sent, answered)

    async def _crashed(self, tool: str, error: BaseException, generation: int) -> None:
        await asyncio.sleep(0)  # let the stderr reader take the dying words first
        if generation == self._generation and self.state != CRASHED:
            self._fail(CRASHED, f"the connection broke during tools/call {tool}: {self._describe(error)}"
                                + self._stderr_hint())
        await self._shutdown(generation)
        raise McpServerError(self._error_text() + " It starts again on the next call.")

    # ---- endings -------------------------------------------------------------------------------
    def _fail(self, state: str, why: str) -> None:
        self.state, self.last_error = state, self._mask(why)
        self._failures += 1
        self._failed_at = time.monotonic()
        log.warning("MCP server %s %s: %s", self.name, state, self.last_error)

    def _error_text(self) -> str:
        return f"MCP server {self.name} ({self.settings.where()}) {self.state}: {self.last_error.rstrip('.')}."

    def _stderr_hint(self) -> str:
        return f" (its last words: {self._stderr[-1]!r})" if self._stderr else ""

    def _describe(self, error: BaseException) -> str:
        if isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
            return self._describe(error)
        if isinstance(error, ConfigError):
            return str(error)
        text = str(error) or type(error).__name__
        return self._mask(f"{type(error).__name__}: {text}" if not isinstance(error, McpServerError) else text)

    async def _shutdown(self, generation: int | None = None) -> None:
        if generation is not None and generation != self._generation:
            return
        owner, stop = self._owner, self._stop
        self._owner = None
        if stop is not None:
            stop.set()
        if owner is not None and not owner.done():
            try:
                await asyncio.wait_for(asyncio.shield(owner), 10)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - a stuck exit: cancel it
                owner.cancel()
                with contextlib.suppress(BaseException):
                    await owner
        self._session = None

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._shutdown()
        if self.state in (READY, STARTING):
            self.state = STOPPED


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jarvis")
    except PackageNotFoundError:
        return "0"
