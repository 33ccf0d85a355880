"""A pull on its own thread, so neither the terminal's progress bar nor the desktop's event loop
waits on the network. Pause keeps the partial file (resume continues it with a Range request);
cancel removes it. The thread sees either between chunks, or at the read timeout if the server
has stalled."""

from __future__ import annotations

import concurrent.futures
import itertools
import threading

from jarvis.downloads.pull import Pull
from jarvis.downloads.transfer import Control

_ids = itertools.count(1)


class BackgroundPull:
    def __init__(self, pull: Pull, *, retries: int = 3) -> None:
        self.pull = pull
        self.retries = retries
        self.error: BaseException | None = None
        self.result = None
        self._thread: threading.Thread | None = None
        self._ended: concurrent.futures.Future = concurrent.futures.Future()
        self._ended.set_result(None)  # no thread runs yet
        self._id = next(_ids)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def state(self) -> str:
        return self.pull.state

    def start(self) -> None:
        """Start, or resume after a pause or a failure (a paused pull keeps its partial file)."""
        if self.alive:
            return
        if self.pull.state in ("paused", "failed"):
            self.pull.plan = None  # ask the hub again: a CDN link from an hour ago may have expired
        self.pull.control = Control()
        self.error = None
        self.pull.state, self.pull.error = "starting", None
        self._ended = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._work, name=f"jarvis-download-{self._id}", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            self.result = self.pull.run(retries=self.retries)
        except BaseException as e:  # kept for whoever watches; the pull's state says which kind
            self.error = e
        finally:
            self._ended.set_result(None)

    def ended(self) -> concurrent.futures.Future:
        """Done once the pull's thread has stopped (at once when none runs): an event loop awaits
        it with asyncio.wrap_future instead of joining the thread."""
        return self._ended

    def pause(self) -> None:
        self.pull.control.pause()

    def cancel(self) -> None:
        """Also removes a paused download's partial file (no thread runs to do it then)."""
        self.pull.control.cancel()
        if not self.alive and self.pull.state in ("paused", "failed") and self.pull.plan is not None:
            self.pull.discard()
            self.pull.state = "cancelled"

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
