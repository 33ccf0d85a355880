"""A resumable HTTP download into a partial file, with progress and a stop switch.

The partial file keeps what arrived; the next attempt asks for the rest with `Range: bytes=N-`
and checks that the server's Content-Range starts at N (a server that ignores Range and sends
200 makes it start over). The SHA-256 is computed while the bytes arrive (the kept part is
hashed first on a resume), so verification needs no second pass over the file.
"""

from __future__ import annotations

import collections
import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from jarvis.downloads.errors import DownloadError, DownloadStopped

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


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


def fetch(url: str, partial: Path, *, size: int | None, headers: dict[str, str], progress: Progress,
          control: Control, timeout_s: float = 30.0) -> str:
    """Download `url` into `partial` (resuming what is there); returns the file's SHA-256 (hex)."""
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
    try:
        with get_session().stream("GET", url, headers=request_headers, timeout=timeout_s,
                                  follow_redirects=True) as response:
            if response.status_code == 206:
                m = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
                if not m or int(m.group(1)) != have:
                    raise DownloadError(f"The server answered the resume request for {url} with the wrong range "
                                        f"({response.headers.get('content-range')!r}); delete {partial} and try again.")
                mode = "ab"
            elif response.status_code == 200:
                if have:  # the server ignored Range: take the whole body from the start
                    hasher, have = hashlib.sha256(), 0
                    progress.resumed_from = 0
                mode = "wb"
            else:
                raise DownloadError(f"The server answered HTTP {response.status_code} for {url}.")
            with open(partial, mode) as out:
                for block in response.iter_bytes():  # as received: a chunker would lose its tail on a drop
                    if control.stopped:
                        raise DownloadStopped(control.cancelled)
                    out.write(block)
                    hasher.update(block)
                    have += len(block)
                    progress.advance(have)
    except httpx2.TransportError as e:
        if control.stopped:
            raise DownloadStopped(control.cancelled) from None
        raise ConnectionLost(have, size, str(e) or type(e).__name__) from None
    if size is not None and have != size:
        raise ConnectionLost(have, size, "the server closed the connection early")
    return hasher.hexdigest()


class ConnectionLost(DownloadError):
    """The connection broke; the partial file stays for the next attempt."""

    def __init__(self, have: int, size: int | None, reason: str):
        self.have = have
        of = f" of {size / 1e6:.1f} MB" if size else ""
        super().__init__(f"The download stopped at {have / 1e6:.1f} MB{of} ({reason}). "
                         "Run the same pull again to resume where it stopped.")
