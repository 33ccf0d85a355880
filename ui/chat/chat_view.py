"""The Chat tab: it owns the conversation store and turns user actions into Assistant streams.

Every finished message is committed at once; an answer that is stopped (Stop, closing the window)
is saved as far as it got with status 'stopped'; an error is saved with status 'error' and shown
in the conversation with what to do. Several conversations may stream at once, one answer each.
"""

from __future__ import annotations

import asyncio
import logging
import time

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QSplitter, QVBoxLayout, QWidget

from jarvis.conversations import ConversationStore
from jarvis.errors import JarvisError

from ui.async_bridge import TaskSet
from ui.chat.answer import Answer, stats_line, waiting_line
from ui.chat.composer import Composer
from ui.chat.conversation_view import ConversationView
from ui.chat.message_widget import MessageWidget
from ui.chat.settings_panel import SettingsPanel
from ui.chat.sidebar import Sidebar
from ui.chat.tool_card import ToolCallCard

log = logging.getLogger("ui.chat")
NEW_TITLE = "New conversation"


class ChatView(QWidget):
    status_message = Signal(str)
    answering_changed = Signal()

    def __init__(self, assistant, store: ConversationStore, *, store_warning: str | None = None,
                 parent=None) -> None:
        super().__init__(parent)
        self.assistant = assistant
        self.store = store
        self.tasks = TaskSet()
        self.answers: dict[int, Answer] = {}
        self.current_id: int | None = None
        self._editing: tuple[int, int] | None = None  # (conversation id, message id)
        self._search = ""

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

        self.sidebar.selected.connect(self.select)
        self.sidebar.new_requested.connect(self.new_conversation)
        # Deferred: the list is rebuilt after a rename, which must not happen inside the edited
        # item's own itemChanged signal.
        self.sidebar.rename_requested.connect(lambda cid, title: QTimer.singleShot(0, lambda: self.rename(cid, title)))
        self.sidebar.delete_requested.connect(self.delete)
        self.sidebar.search_changed.connect(self._search_changed)
        self.composer.send_requested.connect(self.send)
        self.composer.stop_requested.connect(self.stop)
        self.composer.regenerate_requested.connect(self.regenerate)
        self.composer.edit_requested.connect(self.edit_last)
        self.settings_panel.changed.connect(self._settings_changed)
        self.settings_panel.refresh_requested.connect(self.rescan_models)
        if store_warning:
            self.sidebar.show_warning(store_warning)

        self.tool_hub = None  # set by enable_tools: answers may call the MCP servers' tools
        self.tool_choice = "auto"  # what the first round of an answer may or must do with them
        self._tool_loops: dict[int, object] = {}
        self._cards: dict[str, ToolCallCard] = {}  # call id -> its card, while the answer runs
        self._waiting_timer = QTimer(self)  # "loading model…" / "waiting in queue" before the first token
        self._waiting_timer.setInterval(250)
        self._waiting_timer.timeout.connect(self._update_waiting)
        self.refresh_models()
        self.refresh_sidebar()
        conversations = self.store.list()
        if conversations:
            self.select(conversations[0].id)

    # ---- conversations -------------------------------------------------------------------------
    def refresh_sidebar(self) -> None:
        self.sidebar.set_conversations(self.store.list(self._search or None), self.current_id)

    def _search_changed(self, text: str) -> None:
        self._search = text.strip()
        self.refresh_sidebar()

    def refresh_models(self) -> None:
        """The model list from the catalog snapshot: no disk, no lock, on the loop."""
        self.settings_panel.set_models(self.assistant.models(), self.assistant.default_model())

    def rescan_models(self) -> None:
        """The Refresh button: read the models folders again (on the catalog's thread), then show."""
        async def run() -> None:
            await self.assistant.catalog.refresh()
            self.refresh_models()
        self.tasks.spawn(run(), name="rescan-models")

    def new_conversation(self) -> int:
        conv = self.store.create(NEW_TITLE)
        self.select(conv.id)
        self.composer.input.setFocus()
        return conv.id

    def select(self, conversation_id: int) -> None:
        for answer in self.answers.values():
            answer.widget = None  # the view is about to drop every widget
        self._editing = None
        self.composer.set_editing(None)
        self.current_id = conversation_id
        conv = self.store.get(conversation_id)
        self.view.clear()
        for m in self.store.messages(conversation_id):
            for call in m.meta.get("tools") or ():  # the answer's tool calls, as they ended
                card = ToolCallCard(call["name"], call.get("origin", ""), call.get("arguments", {}))
                card.show_result(call["status"], call.get("result", ""), call.get("ms", 0.0))
                self.view.add(card)
            self.view.add(MessageWidget(m.role, m.content, status=m.status, stats=m.meta.get("stats", ""),
                                        message_id=m.id))
        answer = self.answers.get(conversation_id)
        if answer is not None:
            answer.widget = self.view.add(MessageWidget("assistant", answer.text, status="streaming"))
        self.settings_panel.load(conv, self.assistant.settings.generation)
        self.composer.set_answering(answer is not None)
        self.refresh_sidebar()

    def rename(self, conversation_id: int, title: str) -> None:
        self._guard(lambda: self.store.rename(conversation_id, title))
        self.refresh_sidebar()

    def delete(self, conversation_id: int) -> None:
        answer = self.answers.get(conversation_id)
        if answer is not None and answer.task is not None:
            answer.task.cancel()
            self.answers.pop(conversation_id, None)
        self._guard(lambda: self.store.delete(conversation_id))
        if conversation_id == self.current_id:
            self.current_id = None
            self.view.clear()
            self.composer.set_answering(False)
            rest = self.store.list()
            if rest:
                self.select(rest[0].id)
        self.refresh_sidebar()

    def _settings_changed(self, fields: dict) -> None:
        if self.current_id is not None:
            self._guard(lambda: self.store.update_settings(self.current_id, **fields))

    # ---- asking --------------------------------------------------------------------------------
    def send(self, text: str) -> Answer | None:
        text = text.strip()
        if not text:
            return None
        if self.current_id is None:
            self.new_conversation()
        conv_id = self.current_id
        if conv_id in self.answers:
            self.status_message.emit("This conversation is still answering: stop it first.")
            return None
        if self._editing and self._editing[0] == conv_id:
            _, message_id = self._editing
            self._editing = None
            self.composer.set_editing(None)
            if self._guard(lambda: (self.store.replace_message(message_id, text),
                                    self.store.delete_messages_after(message_id))) is None:
                return None
            self.select(conv_id)
        else:
            conv = self.store.get(conv_id)
            if conv.title == NEW_TITLE and not self.store.messages(conv_id):
                self._guard(lambda: self.store.rename(conv_id, _title_from(text)))
            message = self._guard(lambda: self.store.add_message(conv_id, "user", text))
            if message is None:
                return None
            self.view.add(MessageWidget("user", text, message_id=message.id))
            self.refresh_sidebar()
        return self._start(conv_id, use_cache=True)

    def stop(self) -> None:
        answer = self.answers.get(self.current_id)
        if answer is not None and answer.task is not None:
            answer.task.cancel()

    def regenerate(self) -> Answer | None:
        conv_id = self.current_id
        if conv_id is None or conv_id in self.answers:
            return None
        users = [m for m in self.store.messages(conv_id) if m.role == "user"]
        if not users:
            return None
        self._guard(lambda: self.store.delete_messages_after(users[-1].id))
        self.select(conv_id)
        return self._start(conv_id, use_cache=False)

    def edit_last(self) -> None:
        conv_id = self.current_id
        if conv_id is None or conv_id in self.answers:
            return
        users = [m for m in self.store.messages(conv_id) if m.role == "user"]
        if users:
            self._editing = (conv_id, users[-1].id)
            self.composer.set_editing(users[-1].content)

    def _start(self, conv_id: int, *, use_cache: bool) -> Answer | None:
        conv = self.store.get(conv_id)
        history = [m.message for m in self.store.messages(conv_id)
                   if m.status != "error" and m.role in ("user", "assistant") and m.content.strip()]
        widget = self.view.add(MessageWidget("assistant", "", status="streaming"))
        try:
            request = self.assistant.request(messages=history, system=conv.system_prompt or None,
                                             model=conv.model, temperature=conv.temperature,
                                             max_tokens=conv.max_tokens, top_p=conv.top_p,
                                             use_cache=use_cache, operation="chat", source="chat")
        except JarvisError as e:
            widget.set_text(str(e))
            widget.finish(status="error")
            return None
        model = conv.model or self.assistant.default_model()
        answer = Answer(conv_id, request, model, widget=widget)
        widget.set_state("thinking…")
        self.answers[conv_id] = answer
        answer.task = self.tasks.spawn(self._run(answer), name=f"answer-{conv_id}")
        self.composer.set_answering(True)
        self._waiting_timer.start()
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
                        answer.widget.set_state(waiting_line(answer.queue, answer.queue_since))
                if chunk.text:
                    if not answer.first_token:
                        answer.first_token = True
                        answer.queue = None
                        if answer.widget is not None:
                            answer.widget.set_state("")
                    answer.text += chunk.text
                    answer.chunks += 1
                    if answer.widget is not None:
                        answer.widget.append(chunk.text)
                if chunk.done:
                    answer.record = chunk.record
        except asyncio.CancelledError:
            self._finish(answer, "stopped")
            raise
        except JarvisError as e:
            self._finish(answer, "error", error=str(e))
        except Exception as e:
            self._finish(answer, "error", error=f"Unexpected error: {e}")
            raise
        else:
            self._finish(answer, "complete")

    def _finish(self, answer: Answer, status: str, error: str = "") -> None:
        if self.answers.get(answer.conversation_id) is answer:
            del self.answers[answer.conversation_id]
        stats = "" if status == "error" else stats_line(answer.record, answer.model, status)
        if answer.tool_rounds and stats:
            stats += f" · {answer.tool_rounds} tool round{'s' if answer.tool_rounds > 1 else ''}, " \
                     f"{answer.tool_ms:.0f} ms in tools"
        content = error if status == "error" else answer.text
        meta = {"stats": stats, "model": answer.model,
                "record": answer.record.figures() if answer.record else None}
        if answer.tool_log:  # calls, approvals and results survive a restart: shown again on reopening
            meta["tools"] = answer.tool_log
        try:
            self.store.add_message(answer.conversation_id, "assistant", content, status, meta)
        except JarvisError as e:  # a deleted conversation, a database gone read-only
            if status != "stopped":
                self.status_message.emit(str(e))
        if answer.widget is not None:
            answer.widget.set_text(content)
            answer.widget.finish(status=status, stats=stats)
        if answer.conversation_id == self.current_id:
            self.composer.set_answering(False)
        if not self.answers:
            self._waiting_timer.stop()
        self.answering_changed.emit()

    def _update_waiting(self) -> None:
        manager = self.assistant.manager
        loading = set(manager.loading())
        for answer in self.answers.values():
            if answer.first_token or answer.widget is None:
                continue
            engine = manager.engine_of(answer.model)
            if answer.model in loading:
                answer.widget.set_state("loading model…")
            elif answer.queue is not None:  # its place in line, from the engine's queue
                answer.widget.set_state(waiting_line(answer.queue, answer.queue_since))
            elif engine is not None and engine.queue_depth > 0 and engine.active_slots >= engine.config.batch_size:
                answer.widget.set_state("waiting in queue")
            else:
                answer.widget.set_state("thinking…")

    async def stop_all(self) -> None:
        """Closing: cancel every answer; each saves what it had as 'stopped'."""
        await self.tasks.cancel_all()

    def _guard(self, action):
        try:
            return action()
        except JarvisError as e:
            self.status_message.emit(str(e))
            return None


def _title_from(text: str) -> str:
    line = text.strip().splitlines()[0]
    return line if len(line) <= 40 else line[:39].rstrip() + "…"
