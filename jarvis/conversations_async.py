"""The chat history for code on an event loop: one thread owns the SQLite store and runs every call.

The loop never touches SQLite, never waits on a lock and never joins a thread: each method hands
one job to the store's thread and awaits its future. Jobs run in the order they were asked for,
so a read asked after a write sees it. Opening (and a migration, which may index an old history
for search) is the thread's first job; `opened()` awaits it and returns the warning to show when
the file could not be used and the history lives in memory only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from pathlib import Path
from typing import Any, Callable

from jarvis.conversations import PAGE, SEARCH_LIMIT, Conversation, ConversationStore, SearchHit, Status, StoredMessage
from jarvis.errors import StorageError
from jarvis.request import Role

THREAD_NAME = "jarvis-conversations"


class AsyncConversationStore:
    def __init__(self, path: str | Path, *, opener: Callable[[str | Path], tuple[ConversationStore, str | None]]
                 = ConversationStore.open_or_memory) -> None:
        self.path = path
        self.warning: str | None = None
        self._store: ConversationStore | None = None
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=THREAD_NAME, daemon=True)
        self._thread.start()
        self._opening = self._submit(lambda: self._open(opener))

    # ---- the store's thread --------------------------------------------------------------------
    def _open(self, opener) -> str | None:
        self._store, self.warning = opener(self.path)
        return self.warning

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the awaiting coroutine, raised there
                future.set_exception(exc)

    def _submit(self, fn: Callable[[], Any]) -> concurrent.futures.Future:
        if self._closed:  # e.g. a search typed just before the window closed: said, not raised as a bug
            raise StorageError(self.path, "it is closed (JARVIS is shutting down)",
                               hint="Start JARVIS again to use your conversations.")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((fn, future))
        return future

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.wrap_future(self._submit(lambda: getattr(self._store, name)(*args, **kwargs)))

    # ---- life cycle ----------------------------------------------------------------------------
    async def opened(self) -> str | None:
        """Waits for the store to be open; the warning when it fell back to memory, else None."""
        return await asyncio.wrap_future(self._opening)

    async def close(self) -> None:
        """Closes the store after every job asked for before; the thread then ends (no join)."""
        if self._closed:
            return
        future = self._submit(lambda: self._store is not None and self._store.close())
        self._closed = True
        self._jobs.put(None)
        await asyncio.wrap_future(future)

    @property
    def thread_id(self) -> int | None:
        return self._thread.ident

    async def callers(self) -> set[int]:
        """The threads that have run SQLite on this store (only its own, by construction)."""
        return await asyncio.wrap_future(self._submit(lambda: set(self._store.callers)))

    # ---- the store's API, awaited --------------------------------------------------------------
    async def create(self, title: str = "New conversation", **settings: Any) -> Conversation:
        return await self._call("create", title, **settings)

    async def page(self, after: Conversation | None = None, limit: int = PAGE) -> list[Conversation]:
        return await self._call("page", after, limit)

    async def list(self, search: str | None = None) -> list[Conversation]:
        return await self._call("list", search)

    async def count(self) -> int:
        return await self._call("count")

    async def search(self, text: str, limit: int = SEARCH_LIMIT) -> list[SearchHit]:
        return await self._call("search", text, limit)

    async def get(self, conversation_id: int) -> Conversation:
        return await self._call("get", conversation_id)

    async def rename(self, conversation_id: int, title: str) -> Conversation:
        return await self._call("rename", conversation_id, title)

    async def delete(self, conversation_id: int) -> bool:
        return await self._call("delete", conversation_id)

    async def update_settings(self, conversation_id: int, **fields: Any) -> Conversation:
        return await self._call("update_settings", conversation_id, **fields)

    async def add_message(self, conversation_id: int, role: Role, content: str, status: Status = "complete",
                          meta: dict[str, Any] | None = None) -> StoredMessage:
        return await self._call("add_message", conversation_id, role, content, status, meta)

    async def messages(self, conversation_id: int) -> list[StoredMessage]:
        return await self._call("messages", conversation_id)

    async def replace_message(self, message_id: int, content: str, status: Status = "complete",
                              meta: dict[str, Any] | None = None) -> StoredMessage:
        return await self._call("replace_message", message_id, content, status, meta)

    async def delete_messages_after(self, message_id: int) -> int:
        return await self._call("delete_messages_after", message_id)

    async def run(self, fn: Callable[[ConversationStore], Any]) -> Any:
        """Several calls as one job on the store's thread (e.g. edit then truncate, with nothing between)."""
        return await asyncio.wrap_future(self._submit(lambda: fn(self._store)))
