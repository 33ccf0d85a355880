"""The Chat tab: it turns user actions into store calls and Assistant streams.

The store runs on a thread of its own (AsyncConversationStore): every user action here is a task
that awaits it, so the window never waits on SQLite. Actions that change what is on screen run
one at a time, in the order the user made them (`_actions`, an asyncio lock that nothing holds
across a stream). Every finished message is committed at once; an answer that is stopped (Stop,
closing the window) is saved as far as it got with status 'stopped'; an error is saved with
status 'error' and shown in the conversation with what to do. Several conversations may stream
at once, one answer each. The place in line while an answer waits comes with its stream's chunks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QSplitter, QVBoxLayout, QWidget

from jarvis.conversations import PAGE, SEARCH_LIMIT
from jarvis.conversations_async import AsyncConversationStore
from jarvis.errors import CatalogNotReady, JarvisError
from jarvis.stats_line import stats_line

from ui.async_bridge import TaskSet
from ui.chat.answer import Answer, waiting_line
from ui.chat.composer import Composer
from ui.chat.conversation_view import ConversationView
from ui.chat.message_widget import FRAME_MS, MessageWidget
from ui.chat.settings_panel import SettingsPanel
from ui.chat.sidebar import Sidebar
from ui.chat.tool_card import ToolCallCard

log = logging.getLogger("ui.chat")
NEW_TITLE = "New conversation"
SHOWN_MESSAGES = 30  # a conversation opens with its latest messages; the earlier ones come on request


class ChatView(QWidget):
    status_message = Signal(str)
    answering_changed = Signal()

    def __init__(self, assistant, store: AsyncConversationStore, parent=None) -> None:
        super().__init__(parent)
        self.assistant = assistant
        self.store = store
        self.tasks = TaskSet()
        self.answers: dict[int, Answer] = {}
        self.current_id: int | None = None
        self._editing: tuple[int, int] | None = None  # (conversation id, message id)
        self._actions = asyncio.Lock()
        self._search = ""
        self._listed = 0  # conversations shown from the top (list mode)
        self._last_listed = None  # the last of them: where the next page starts
        self._list_generation = 0  # bumped by every refill, so a late page is not appended to a new list
        self._paging = False
        self._cold: set[Answer] = set()  # answers sent while their model was not loaded yet
        self._earlier: list = []  # the open conversation's messages not shown yet (StoredMessage)

        self.sidebar = Sidebar()
        self.view = ConversationView()
        self.composer = Composer()
        self.settings_panel = SettingsPanel(defaults=assistant.settings.generation)
        middle = QWidget()
        column = QVBoxLayout(middle)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.view, 1)
        column.addWidget(self.composer)
        splitter = QSplitter()
        splitter.addWidget(self.sidebar)
        splitter.addWidget(middle)
        splitter.addWidget(self.settings_panel)
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

        # A task per action: the list is rebuilt after a rename on a later loop turn, never inside
        # the edited item's own itemChanged signal.
        self.sidebar.selected.connect(lambda cid: self._spawn(self.select(cid), "select"))
        self.sidebar.new_requested.connect(lambda: self._spawn(self.new_conversation(), "new-conversation"))
        self.sidebar.rename_requested.connect(lambda cid, title: self._spawn(self.rename(cid, title), "rename"))
        self.sidebar.delete_requested.connect(lambda cid: self._spawn(self.delete(cid), "delete"))
        self.sidebar.search_changed.connect(lambda text: self._spawn(self.search(text), "search"))
        self.sidebar.more_requested.connect(self._more)
        self.view.earlier_requested.connect(self.show_earlier)
        self.composer.send_requested.connect(lambda text: self._spawn(self.send(text), "send"))
        self.composer.stop_requested.connect(self.stop)
        self.composer.regenerate_requested.connect(lambda: self._spawn(self.regenerate(), "regenerate"))
        self.composer.edit_requested.connect(lambda: self._spawn(self.edit_last(), "edit"))
        self.settings_panel.changed.connect(lambda fields: self._spawn(self._settings_changed(fields), "settings"))
        self.settings_panel.refresh_requested.connect(self.rescan_models)
        self.tool_hub = None  # set by enable_tools: answers may call the MCP servers' tools
        self.tool_choice = "auto"  # what the first round of an answer may or must do with them
        self._tool_loops: dict[int, object] = {}
        self._cards: dict[str, ToolCallCard] = {}  # call id -> its card, while the answer runs
        self.refresh_models()

    def _spawn(self, coro, name: str) -> asyncio.Task:
        return self.tasks.spawn(coro, name=name)

    async def load(self) -> str | None:
        """The first page of conversations and the latest one opened; the store's warning, if any."""
        warning = await self.store.opened()
        if warning:
            self.sidebar.show_warning(warning)
        async with self._actions:
            await self._refresh_sidebar()
            first = self.sidebar.ids()[:1]
            if first:
                await self._select(first[0])
        return warning

    # ---- conversations -------------------------------------------------------------------------
    async def _refresh_sidebar(self) -> None:
        """The list again from the top (as many as were shown), or the search's hits."""
        search = self._search
        if search:
            hits = await self._guard(self.store.search(search))
            if hits is not None and search == self._search:
                self._list_generation += 1
                self.sidebar.set_results(hits, self.current_id, limit=SEARCH_LIMIT)
            return
        wanted = max(PAGE, self._listed)
        rows = await self._guard(self.store.page(None, wanted + 1))  # one more says whether there is more
        if rows is None or self._search:
            return
        self._list_generation += 1
        shown = rows[:wanted]
        self._listed, self._last_listed = len(shown), (shown[-1] if shown else None)
        self.sidebar.set_conversations(shown, self.current_id, has_more=len(rows) > wanted)

    def _more(self) -> None:
        if not self._paging and not self._search and self._last_listed is not None:
            self._paging = True
            self._spawn(self._load_more(), "sidebar-page")

    async def _load_more(self) -> None:
        try:
            generation, after = self._list_generation, self._last_listed
            rows = await self._guard(self.store.page(after, PAGE + 1))
            if rows is None or generation != self._list_generation:
                return  # the list was filled again meanwhile
            page = rows[:PAGE]
            if page:
                self._listed += len(page)
                self._last_listed = page[-1]
            self.sidebar.append_conversations(page, self.current_id, has_more=len(rows) > PAGE)
        finally:
            self._paging = False

    async def search(self, text: str) -> None:
        self._search = text.strip()
        await self._refresh_sidebar()

    def refresh_models(self) -> None:
        """The model list from the catalog snapshot: no disk, no lock, on the loop."""
        self.settings_panel.set_models(self.assistant.models(), self._default_model() or "reading the models folders…")

    def _default_model(self) -> str:
        """The default model's name; "" while the first scan of the models folders still runs."""
        try:
            return self.assistant.default_model()
        except CatalogNotReady:
            return ""

    def rescan_models(self) -> None:
        """The Refresh button: read the models folders again (on the catalog's thread), then show."""
        async def run() -> None:
            await self.assistant.catalog.refresh()
            self.refresh_models()
        self.tasks.spawn(run(), name="rescan-models")

    async def new_conversation(self) -> int | None:
        async with self._actions:
            return await self._new()

    async def _new(self) -> int | None:
        conv = await self._guard(self.store.create(NEW_TITLE))
        if conv is None:
            return None
        await self._refresh_sidebar()
        await self._select(conv.id)
        self.composer.input.setFocus()
        return conv.id

    async def select(self, conversation_id: int) -> None:
        async with self._actions:
            await self._select(conversation_id)

    async def _select(self, conversation_id: int) -> None:
        loaded = await self._guard(self.store.run(lambda s: (s.get(conversation_id), s.messages(conversation_id))))
        if loaded is None:  # deleted meanwhile
            return
        conv, messages = loaded
        for answer in self.answers.values():
            answer.widget = None  # the view is about to drop every widget
        self._editing = None
        self.composer.set_editing(None)
        self.current_id = conversation_id
        self.view.clear()
        self._earlier = messages[:-SHOWN_MESSAGES]
        for m in messages[-SHOWN_MESSAGES:]:
            for widget in _message_widgets(m):
                self.view.add(widget)
        self.view.set_earlier(len(self._earlier))
        answer = self.answers.get(conversation_id)
        if answer is not None:
            answer.widget = self.view.add(MessageWidget("assistant", answer.text, status="streaming",
                                                        thinking=answer.thinking))
            if not answer.first_token:
                answer.widget.set_state(self._waiting_state(answer))
        self.settings_panel.load(conv, self.assistant.settings.generation)
        self.composer.set_answering(answer is not None)
        self.sidebar.select_id(conversation_id)

    def show_earlier(self) -> None:
        """The messages the open conversation's first screen left out (already read with it)."""
        earlier, self._earlier = self._earlier, []
        self.view.set_earlier(0)
        self.view.prepend([w for m in earlier for w in _message_widgets(m)])

    async def rename(self, conversation_id: int, title: str) -> None:
        async with self._actions:
            await self._guard(self.store.rename(conversation_id, title))
            await self._refresh_sidebar()

    async def delete(self, conversation_id: int) -> None:
        async with self._actions:
            answer = self.answers.pop(conversation_id, None)
            if answer is not None and answer.task is not None:
                answer.task.cancel()
            await self._guard(self.store.delete(conversation_id))
            if conversation_id == self.current_id:
                self.current_id = None
                self._earlier = []
                self.view.clear()
                self.composer.set_answering(False)
            await self._refresh_sidebar()
            if self.current_id is None and self.sidebar.ids():
                await self._select(self.sidebar.ids()[0])

    async def _settings_changed(self, fields: dict) -> None:
        async with self._actions:
            if self.current_id is not None:
                await self._guard(self.store.update_settings(self.current_id, **fields))

    # ---- asking --------------------------------------------------------------------------------
    async def send(self, text: str) -> Answer | None:
        text = text.strip()
        if not text:
            return None
        async with self._actions:
            if self.current_id is None and await self._new() is None:
                return None
            conv_id = self.current_id
            if conv_id in self.answers:
                self.status_message.emit("This conversation is still answering: stop it first.")
                return None
            if self._editing and self._editing[0] == conv_id:
                _, message_id = self._editing
                self._editing = None
                self.composer.set_editing(None)

                def edit(s):
                    s.replace_message(message_id, text)
                    return s.delete_messages_after(message_id)
                if await self._guard(self.store.run(edit)) is None:
                    return None
                await self._select(conv_id)
            else:
                def ask(s):
                    conv = s.get(conv_id)
                    if conv.title == NEW_TITLE and not s.messages(conv_id):
                        s.rename(conv_id, _title_from(text))
                    return s.add_message(conv_id, "user", text)
                message = await self._guard(self.store.run(ask))
                if message is None:
                    return None
                self.view.add(MessageWidget("user", text, message_id=message.id))
                await self._refresh_sidebar()
            return await self._start(conv_id, use_cache=True)

    def stop(self) -> None:
        answer = self.answers.get(self.current_id)
        if answer is not None and answer.task is not None:
            answer.task.cancel()

    async def regenerate(self) -> Answer | None:
        async with self._actions:
            conv_id = self.current_id
            if conv_id is None or conv_id in self.answers:
                return None

            def drop_last_answer(s) -> bool:
                users = [m for m in s.messages(conv_id) if m.role == "user"]
                if users:
                    s.delete_messages_after(users[-1].id)
                return bool(users)
            if not await self._guard(self.store.run(drop_last_answer)):
                return None
            await self._select(conv_id)
            return await self._start(conv_id, use_cache=False)

    async def edit_last(self) -> None:
        async with self._actions:
            conv_id = self.current_id
            if conv_id is None or conv_id in self.answers:
                return
            messages = await self._guard(self.store.messages(conv_id)) or []
            users = [m for m in messages if m.role == "user"]
            if users:
                self._editing = (conv_id, users[-1].id)
                self.composer.set_editing(users[-1].content)

    async def _start(self, conv_id: int, *, use_cache: bool) -> Answer | None:
        """Called under `_actions`: reads the conversation, then starts its answer's stream."""
        loaded = await self._guard(self.store.run(lambda s: (s.get(conv_id), s.messages(conv_id))))
        if loaded is None:
            return None
        conv, messages = loaded
        history = [m.message for m in messages
                   if m.status != "error" and m.role in ("user", "assistant") and m.content.strip()]
        widget = self.view.add(MessageWidget("assistant", "", status="streaming"))
        try:
            request = self.assistant.request(messages=history, system=conv.system_prompt or None,
                                             model=conv.model, temperature=conv.temperature,
                                             max_tokens=conv.max_tokens, top_p=conv.top_p,
                                             use_cache=use_cache, operation="chat", source="chat",
                                             # the widget paints once a frame, whatever engine.stream_interval_ms
                                             # says for API clients (a user may set it to 0 for them)
                                             stream_interval_ms=FRAME_MS)
        except JarvisError as e:
            widget.set_text(str(e))
            widget.finish(status="error")
            return None
        model = conv.model or self._default_model()  # "" before the first scan: the record names it
        answer = Answer(conv_id, request, model, widget=widget)
        # Said once, from what the manager already knows; later the stream's chunks say where it waits.
        if model not in {m["name"] for m in self.assistant.manager.loaded()}:
            self._cold.add(answer)
        widget.set_state(self._waiting_state(answer))
        self.answers[conv_id] = answer
        answer.task = self.tasks.spawn(self._run(answer), name=f"answer-{conv_id}")
        self.composer.set_answering(True)
        self.answering_changed.emit()
        return answer

    # ---- tools ---------------------------------------------------------------------------------
    def enable_tools(self, hub, *, max_rounds: int, result_max_kb: int) -> None:
        """Answers go through the tool loop over `hub`: each call shows as a card that asks Allow
        once / Always allow / Deny (per the tool's policy); "always" holds for that conversation."""
        self.tool_hub, self._tool_limits = hub, (max_rounds, result_max_kb)

    def _stream(self, answer: Answer):
        if self.tool_hub is None or not self.tool_hub.configured:
            return self.assistant.stream(answer.request)
        from jarvis.tools.loop import ToolLoop

        conv_id = answer.conversation_id
        if conv_id not in self._tool_loops:
            rounds, kb = self._tool_limits
            self._tool_loops[conv_id] = ToolLoop(
                self.assistant, self.tool_hub, lambda tool, call, arguments: self._approve(conv_id, tool, call, arguments),
                max_rounds=rounds, result_max_kb=kb)
        return aiter(self._tool_loops[conv_id].turn(answer.request, self.tool_choice))

    def _card(self, answer: Answer | None, call, tool, arguments) -> ToolCallCard:
        card = self._cards.get(call.id)
        if card is None:
            card = ToolCallCard(call.name, tool.origin if tool else "", arguments)
            self._cards[call.id] = card
            if answer is not None and answer.widget is not None:
                self.view.insert_before(card, answer.widget)
        return card

    async def _approve(self, conv_id: int, tool, call, arguments) -> str:
        return await self._card(self.answers.get(conv_id), call, tool, arguments).ask()

    def _tool_event(self, answer: Answer, event) -> None:
        card = self._card(answer, event.call, event.tool, event.arguments)
        if event.status == "running":
            card.set_status("running")
        else:
            card.show_result(event.status, event.result, event.ms)
            answer.tool_rounds = event.round
            answer.tool_ms += event.ms
            answer.tool_log.append({"name": event.call.name, "origin": event.tool.origin if event.tool else "",
                                    "arguments": event.arguments, "status": event.status, "result": event.result,
                                    "ms": round(event.ms, 1)})

    async def _run(self, answer: Answer) -> None:
        from jarvis.tools.loop import ToolEvent

        try:
            async for chunk in self._stream(answer):
                if isinstance(chunk, ToolEvent):
                    self._tool_event(answer, chunk)
                    continue
                if chunk.queue is not None and not answer.first_token:
                    answer.queue, answer.queue_since = chunk.queue, time.monotonic()
                    answer.queue_positions.append(chunk.queue.position)
                    if answer.widget is not None:
                        answer.widget.set_state(self._waiting_state(answer))
                if chunk.text or chunk.reasoning:
                    if not answer.first_token:
                        answer.first_token = True
                        answer.queue = None
                        if answer.widget is not None:
                            answer.widget.set_state("")
                    answer.chunks += bool(chunk.text)
                    _show(answer, answer.parser.feed(chunk))
                if chunk.done:
                    answer.record = chunk.record
                    answer.model = answer.model or (chunk.record.model if chunk.record else "")
        except asyncio.CancelledError:
            await self._finish(answer, "stopped")
            raise
        except JarvisError as e:
            await self._finish(answer, "error", error=str(e))
        except Exception as e:
            await self._finish(answer, "error", error=f"Unexpected error: {e}")
            raise
        else:
            await self._finish(answer, "complete")

    async def _finish(self, answer: Answer, status: str, error: str = "") -> None:
        """Saves the answer, then lets it go: a conversation opened meanwhile reads it stored, or
        still finds it among `answers` and shows it streaming; never neither."""
        _show(answer, answer.parser.finish())
        stats = "" if status == "error" else stats_line(answer.record, answer.model, status)
        if answer.tool_rounds and stats:
            stats += f" · {answer.tool_rounds} tool round{'s' if answer.tool_rounds > 1 else ''}, " \
                     f"{answer.tool_ms:.0f} ms in tools"
        content = error if status == "error" else answer.text
        meta = {"stats": stats, "model": answer.model,
                "record": answer.record.figures() if answer.record else None}
        if answer.tool_log:  # calls, approvals and results survive a restart: shown again on reopening
            meta["tools"] = answer.tool_log
        if answer.thinking:  # shown again, collapsed, above the answer on reopening
            meta["thinking"] = answer.thinking
        try:
            await self.store.add_message(answer.conversation_id, "assistant", content, status, meta)
        except JarvisError as e:  # a deleted conversation, a database gone read-only
            if status != "stopped":
                self.status_message.emit(str(e))
        if self.answers.get(answer.conversation_id) is answer:
            del self.answers[answer.conversation_id]
        self._cold.discard(answer)
        if answer.widget is not None:
            answer.widget.set_text(content)
            answer.widget.finish(status=status, stats=stats)
        if answer.conversation_id == self.current_id:
            self.composer.set_answering(False)
        self.answering_changed.emit()

    async def stop_all(self) -> None:
        """Closing: cancel every answer; each saves what it had as 'stopped'."""
        await self.tasks.cancel_all()

    def _waiting_state(self, answer: Answer) -> str:
        """What an answer without its first token says: its place in line (from its stream), else
        whether its model was still to load when it was sent."""
        if answer.queue is not None:
            return waiting_line(answer.queue, answer.queue_since)
        return "loading model…" if answer in self._cold else "thinking…"

    async def _guard(self, action: Awaitable):
        try:
            return await action
        except JarvisError as e:
            self.status_message.emit(str(e))
            return None


def _show(answer: Answer, pieces: list) -> None:
    """What the parser released: thinking into its section, the answer into the body."""
    for kind, text in pieces:
        if kind == "reasoning":
            answer.thinking += text
            if answer.widget is not None:
                answer.widget.append_thinking(text)
        else:
            answer.text += text
            if answer.widget is not None:
                answer.widget.append(text)


def _message_widgets(m) -> list:
    """A stored message as it is shown: the answer's tool calls as they ended, then the message."""
    cards = []
    for call in m.meta.get("tools") or ():
        card = ToolCallCard(call["name"], call.get("origin", ""), call.get("arguments", {}))
        card.show_result(call["status"], call.get("result", ""), call.get("ms", 0.0))
        cards.append(card)
    return [*cards, MessageWidget(m.role, m.content, status=m.status, stats=m.meta.get("stats", ""),
                                  message_id=m.id, thinking=m.meta.get("thinking", ""))]


def _title_from(text: str) -> str:
    line = text.strip().splitlines()[0]
    return line if len(line) <= 40 else line[:39].rstrip() + "…"
