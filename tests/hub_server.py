"""A loopback stand-in for the Hugging Face hub: the part of its protocol huggingface_hub 2.4 and
JARVIS use. `HfApi.model_info(files_metadata=True)` is GET /api/models/{repo}/revision/{rev}
?blobs=true (siblings with size and LFS sha256); `get_hf_file_metadata` is HEAD
/{repo}/resolve/{rev}/{file} (X-Repo-Commit, ETag, X-Linked-Etag, X-Linked-Size); the bytes are
GETs on the same URL, with `Range: bytes=N-` on a resume.

With `cdn` on, resolve/ answers 302 to a second port (another origin, as the real hub's CDN is)
with a signed query string; `expire_links()` makes every link issued so far answer 403, as an
expired signature does. The byte server honours `If-Range` and sends the file's ETag on a 206.

Faults are deterministic: drop the connection at a byte offset (and run a hook at that moment:
replace the file, expire the links), serve a flipped byte, send more bytes than the file's size,
answer a Range with 416, answer the next GETs with given statuses (503, ...), ignore If-Range,
hold the body at an offset until the test releases it, list hostile file names. Every request is
logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

COMMIT = "a" * 40
REPO = "test-org/Tiny-Chat-GGUF"
FILE = "tiny-chat-Q4_1.gguf"
CHUNK = 256 * 1024


@dataclass
class HubFile:
    data: bytes
    sha256: str = ""

    def __post_init__(self) -> None:
        self.sha256 = self.sha256 or hashlib.sha256(self.data).hexdigest()


@dataclass
class FakeHub:
    repos: dict[str, dict[str, HubFile]] = field(default_factory=dict)
    extra_siblings: dict[str, list[str]] = field(default_factory=dict)  # names listed but not served
    drop_at: int | None = None       # the next GET stops after this absolute offset and drops the connection
    corrupt: bool = False            # serve one flipped byte in the middle (the listing keeps the true SHA-256)
    hold_at: int | None = None       # GETs stop at this offset until release()
    hold_path: str = ""              # ... only GETs whose path contains this
    on_drop: Callable[[], None] | None = None  # run (once) when the connection is dropped
    overlong: int = 0                # every body carries this many bytes more than the file's size
    range_416: bool = False          # every Range request is answered 416 (bytes */size)
    fail_next: list[int] = field(default_factory=list)  # the next byte GETs answer these statuses
    ignore_if_range: bool = False    # a 206 for the old range even when If-Range no longer matches
    cdn: bool = False                # resolve/ redirects to a signed link on a second port
    token: str | None = None         # when set, every request needs "Authorization: Bearer <token>"
    log: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path, Range)
    url: str = ""
    cdn_url: str = ""

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hub-server", daemon=True)
        self._released: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._signatures = itertools.count(1)
        self._expired_below = 0      # signed links with a lower number answer 403

    # ---- control from the test thread -------------------------------------------------------
    def start(self) -> "FakeHub":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        self.release()
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def hold(self, offset: int, path: str = "") -> None:
        """GETs (whose path contains `path`) stop at `offset` until release()."""
        self._loop.call_soon_threadsafe(self._released.clear)
        self.hold_at, self.hold_path = offset, path

    def expire_links(self) -> None:
        """Every signed CDN link issued so far answers 403 from now on."""
        self._expired_below = next(self._signatures)

    def replace(self, repo: str, path: str, data: bytes) -> None:
        """A new version of the file: new bytes, new SHA-256, new ETag."""
        self.repos[repo][path] = HubFile(data)

    def release(self) -> None:
        self.hold_at = None
        self._loop.call_soon_threadsafe(self._released.set)

    def gets(self, path_end: str = ".gguf") -> list[tuple[str, str, str | None]]:
        return [e for e in self.log if e[0] == "GET" and e[1].endswith(path_end)]

    # ---- the server ----------------------------------------------------------------------------
    async def _start(self) -> None:
        self._released = asyncio.Event()
        app = web.Application()
        app.router.add_get("/api/models/{owner}/{name}", self._info)
        app.router.add_get("/api/models/{owner}/{name}/revision/{rev}", self._info)
        app.router.add_route("HEAD", "/{owner}/{name}/resolve/{rev}/{path:.+}", self._resolve)
        app.router.add_get("/{owner}/{name}/resolve/{rev}/{path:.+}", self._resolve, allow_head=False)
        app.router.add_get("/cdn/{owner}/{name}/{path:.+}", self._cdn)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        cdn = web.TCPSite(self._runner, "127.0.0.1", 0)  # another port: another origin, like a real CDN
        await cdn.start()
        self.cdn_url = f"http://127.0.0.1:{cdn._server.sockets[0].getsockname()[1]}"

    def _repo(self, request) -> tuple[str, dict[str, HubFile]]:
        repo = f"{request.match_info['owner']}/{request.match_info['name']}"
        self.log.append((request.method, request.path, request.headers.get("Range")))
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            raise web.HTTPUnauthorized(headers={"X-Error-Code": "GatedRepo"}, text="Access to this repo is restricted")
        if repo not in self.repos:
            raise web.HTTPNotFound(headers={"X-Error-Code": "RepoNotFound"}, text="Repository not found")
        return repo, self.repos[repo]

    async def _info(self, request) -> web.Response:
        repo, files = self._repo(request)
        siblings = [{"rfilename": "README.md", "size": 10, "blobId": "b" * 40}]
        for path, f in files.items():
            siblings.append({"rfilename": path, "size": len(f.data), "blobId": "c" * 40,
                             "lfs": {"size": len(f.data), "sha256": f.sha256, "pointerSize": 134}})
        for path in self.extra_siblings.get(repo, []):
            siblings.append({"rfilename": path, "size": 1000, "blobId": "d" * 40,
                             "lfs": {"size": 1000, "sha256": "e" * 64, "pointerSize": 134}})
        return web.json_response({"id": repo, "modelId": repo, "sha": COMMIT, "private": False,
                                  "siblings": siblings})

    async def _resolve(self, request) -> web.StreamResponse:
        _, files = self._repo(request)
        f = files.get(request.match_info["path"])
        if f is None:
            raise web.HTTPNotFound(headers={"X-Error-Code": "EntryNotFound"}, text="Entry not found")
        size = len(f.data)
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{f.sha256}"', "X-Linked-Etag": f'"{f.sha256}"',
                   "X-Linked-Size": str(size), "Accept-Ranges": "bytes"}
        if self.cdn:
            n = next(self._signatures)
            repo = f"{request.match_info['owner']}/{request.match_info['name']}"
            headers["Location"] = (f"{self.cdn_url}/cdn/{repo}/{request.match_info['path']}"
                                   f"?Expires=1999999999&X-Amz-Signature=secret{n:04d}&sig={n}")
            return web.Response(status=302, headers=headers)
        if request.method == "HEAD":
            return web.Response(headers=headers)
        return await self._body(request, f, headers)

    async def _cdn(self, request) -> web.StreamResponse:
        _, files = self._repo(request)
        if int(request.query.get("sig", "0")) < self._expired_below:
            raise web.HTTPForbidden(text="Request has expired")
        f = files.get(request.match_info["path"])
        if f is None:
            raise web.HTTPNotFound(text="NoSuchKey")
        return await self._body(request, f, {"ETag": f'"{f.sha256}"', "Accept-Ranges": "bytes"})

    async def _body(self, request, f: HubFile, headers: dict[str, str]) -> web.StreamResponse:
        size = len(f.data)
        if self.fail_next:
            return web.Response(status=self.fail_next.pop(0), text="upstream trouble")
        start = 0
        if m := re.fullmatch(r"bytes=(\d+)-", request.headers.get("Range", "")):
            start = int(m.group(1))
            if_range = request.headers.get("If-Range")
            if if_range is not None and if_range != headers["ETag"] and not self.ignore_if_range:
                start = 0  # the validator no longer matches: the whole (new) file, as RFC 9110 says
        if start and (self.range_416 or start >= size):
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}", **headers})
        data = bytearray(f.data) if self.corrupt else f.data
        if self.corrupt:
            data[size // 2] ^= 0xFF
        if self.overlong:
            data = bytes(data) + bytes(self.overlong)
        status = 206 if start else 200
        if start:
            headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
        end_of_body = len(data)
        headers["Content-Length"] = str(end_of_body - start)
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        drop_at, self.drop_at = self.drop_at, None
        hold_at = self.hold_at if self.hold_path in request.path else None
        offset = start
        size = end_of_body
        while offset < size:
            end = min(size, offset + CHUNK)
            if drop_at is not None and offset < drop_at <= end:
                await response.write(bytes(data[offset:drop_at]))
                request.transport.close()  # a dropped connection half way
                if self.on_drop is not None:
                    hook, self.on_drop = self.on_drop, None
                    hook()
                return response
            if hold_at is not None and offset <= hold_at < end:
                await response.write(bytes(data[offset:hold_at]))
                await self._released.wait()
                offset, hold_at = hold_at, None
                continue
            await response.write(bytes(data[offset:end]))
            offset = end
        await response.write_eof()
        return response


# ---- fixtures (import them into a test module) ----------------------------------------------
@pytest.fixture(scope="session")
def gguf_file(model_path) -> HubFile:
    return HubFile(model_path.read_bytes())


@pytest.fixture
def hub(gguf_file, env, tmp_path, monkeypatch):
    """The fake hub, and this process's environment pointed at it (settings read os.environ)."""
    server = FakeHub(repos={REPO: {FILE: gguf_file}}).start()
    for key in [k for k in os.environ if k.startswith(("JARVIS_", "LLAMA_", "HF_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("JARVIS_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored token of the developer's
    yield server
    server.stop()
