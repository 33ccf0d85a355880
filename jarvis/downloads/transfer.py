"""A resumable HTTP download into a partial file, with progress and a stop switch.

The partial file keeps what arrived; the next attempt asks for the rest with `Range: bytes=N-`
and `If-Range: <the ETag the byte server gave when the file was started>`, and checks that the
answer is the same file: the Content-Range starts at N, and the 206's ETag is that ETag. A file
that changed on the server (a 200 with another ETag, or a 206 with one) raises FileChanged: the
caller starts over with what the hub says now. A server that ignores Range and sends 200 with the
same ETag makes it start over from the first byte. A 416 means the part is complete or stale:
it is kept if its SHA-256 is the file's, else the download starts over. At most `size` bytes are
ever written. The SHA-256 is computed while the bytes arrive (the kept part is hashed first on a
resume), so verification needs no second pass over the file.

Error messages name the file by `label` (repo/path), never by URL: a CDN URL carries a signature.
"""

from __future__ import annotations

import collections
import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jarvis.downloads.errors import DownloadError, DownloadStopped

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")
_SIGNED_QUERY = re.compile(r"(https?://[^\s?#'\"]+)\?[^\s'\"]*")


def redact(text: str) -> str:
    """Drop the query string (a signature, an expiry, a token) from any URL in `text`."""
    return _SIGNED_QUERY.sub(r"\1", text)


class Control:
    """Set from any thread; the transfer sees it between chunks (and at each read timeout)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.cancelled = False

    def pause(self) -> None:
        self._stop.set()

    def cancel(self) -> None:
        self.cancelled = True
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep unless stopped first; True when stopped."""
        return self._stop.wait(seconds)


@dataclass
class Progress:
    """Written by the download thread, read by tqdm or the dialog's timer."""

    total: int | None = None
    done: int = 0
    resumed_from: int = 0
    _samples: collections.deque = field(default_factory=lambda: collections.deque(maxlen=64), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def advance(self, done: int) -> None:
        with self._lock:
            self.done = done
            self._samples.append((time.monotonic(), done))

    def speed(self, window_s: float = 3.0) -> float:
        """Bytes per second over the last few seconds; 0 when nothing arrived in them (stalled)."""
        now = time.monotonic()
        with self._lock:
            recent = [(t, b) for t, b in self._samples if now - t <= window_s]
        if len(recent) < 2:
            return 0.0
        (t0, b0), (t1, b1) = recent[0], recent[-1]
        return (b1 - b0) / max(now - t0, t1 - t0, 1e-3)

    def eta_s(self) -> float | None:
        speed = self.speed()
        if not self.total or speed <= 0:
            return None
        return max(0.0, (self.total - self.done) / speed)


def _hash_existing(partial: Path, hasher, control: Control) -> int:
    n = 0
    with open(partial, "rb") as f:
        while block := f.read(CHUNK):
            if control.stopped:
                raise DownloadStopped(control.cancelled)
            hasher.update(block)
            n += len(block)
    return n


def _etag(headers) -> str | None:
    return headers.get("etag") or None


def fetch(url: str, partial: Path, *, size: int | None, headers: dict[str, str], progress: Progress,
          control: Control, label: str, sha256: str | None = None, validator: str | None = None,
          on_start: Callable[[str | None], None] = lambda etag: None, timeout_s: float = 30.0) -> str:
    """Download `url` into `partial` (resuming what is there, if `validator` -- the ETag the byte
    server gave for it -- still holds); returns the file's SHA-256 (hex). `on_start(etag)` is
    called before the first byte of a fresh start, so the caller can keep the new validator."""
    import httpx2
    from huggingface_hub.utils import get_session

    hasher = hashlib.sha256()
    have = _hash_existing(partial, hasher, control) if partial.exists() else 0
    if size is not None and have > size:  # not this file after all: start over
        partial.unlink()
        hasher, have = hashlib.sha256(), 0
    progress.total, progress.resumed_from = size, have
    progress.advance(have)
    if size is not None and have == size:
        return hasher.hexdigest()
    request_headers = {**headers, "accept-encoding": "identity"}
    if have:
        request_headers["range"] = f"bytes={have}-"
        if validator and not validator.startswith("W/"):  # If-Range takes strong validators only
            request_headers["if-range"] = validator
    try:
        with get_session().stream("GET", url, headers=request_headers, timeout=timeout_s,
                                  follow_redirects=True) as response:
            status, etag = response.status_code, _etag(response.headers)
            if status == 206:
                m = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
                if not m or int(m.group(1)) != have:
                    raise DownloadError(f"The server answered the resume request for {label} with the wrong range "
                                        f"({response.headers.get('content-range')!r}); pull it again.")
                if (validator and etag and etag != validator) or (size and m.group(3) not in ("*", str(size))):
                    raise FileChanged(label)
                mode = "ab"
            elif status == 200:
                if have and validator and etag and etag != validator:
                    raise FileChanged(label)
                # a fresh start, or a server that ignored Range: take the whole body from the start
                hasher, have = hashlib.sha256(), 0
                progress.resumed_from = 0
                on_start(etag)
                mode = "wb"
            elif status == 416:
                m = _UNSATISFIED_RANGE.match(response.headers.get("content-range", ""))
                if m and int(m.group(1)) == have and sha256 and hasher.hexdigest() == sha256.lower():
                    return hasher.hexdigest()  # the part was complete all along
                raise StaleRange(label)
            elif status in (403, 410):
                raise LinkExpired(label, status)
            elif status == 429 or status >= 500:
                raise ServerError(label, status)
            else:
                raise DownloadError(f"The server answered HTTP {status} for {label}.")
            with open(partial, mode) as out:
                for block in response.iter_bytes():  # as received: a chunker would lose its tail on a drop
                    if control.stopped:
                        raise DownloadStopped(control.cancelled)
                    if size is not None and have + len(block) > size:
                        out.write(block[:size - have])  # never a byte past the size: the disk check holds
                        progress.advance(size)
                        raise TooLong(label, size)
                    out.write(block)
                    hasher.update(block)
                    have += len(block)
                    progress.advance(have)
    except httpx2.TransportError as e:
        if control.stopped:
            raise DownloadStopped(control.cancelled) from None
        raise ConnectionLost(have, size, redact(str(e)) or type(e).__name__) from None
    if size is not None and have != size:
        raise ConnectionLost(have, size, "the server closed the connection early")
    return hasher.hexdigest()


class Retryable(DownloadError):
    """Worth another attempt after a wait: the partial file stays."""


class ConnectionLost(Retryable):
    """The connection broke; the partial file stays for the next attempt."""

    def __init__(self, have: int, size: int | None, reason: str):
        self.have = have
        of = f" of {size / 1e6:.1f} MB" if size else ""
        super().__init__(f"The download stopped at {have / 1e6:.1f} MB{of} ({reason}). "
                         "Run the same pull again to resume where it stopped.")


class ServerError(Retryable):
    """A 5xx or 429: the server is busy or broken for now."""

    def __init__(self, label: str, status: int):
        self.status = status
        super().__init__(f"The server answered HTTP {status} for {label}; it may be busy. "
                         "Run the same pull again later to resume where it stopped.")


class LinkExpired(DownloadError):
    """403/410 on the byte URL: a signed CDN link has expired; the hub gives a fresh one."""

    def __init__(self, label: str, status: int):
        self.status = status
        super().__init__(f"The server refused {label} (HTTP {status}), also with a fresh link from the hub. "
                         "A gated repository needs HF_TOKEN; otherwise try again later.")


class FileChanged(DownloadError):
    """The server's file is not the one the partial file holds the start of."""

    def __init__(self, label: str):
        super().__init__(f"{label} changed on the server during the download; pull it again.")


class StaleRange(DownloadError):
    """416 for a part that is not the whole file: the part is stale."""

    def __init__(self, label: str):
        super().__init__(f"The server has no more bytes of {label} past the kept part, which is not the file; "
                         "pull it again.")


class TooLong(DownloadError):
    def __init__(self, label: str, size: int):
        super().__init__(f"{label}: the server sent more than the file's size ({size:,} bytes). The download "
                         "was stopped there and removed; try again later, or another mirror (HF_ENDPOINT).")
