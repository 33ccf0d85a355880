"""From a request to prompt tokens: the model's own chat template, then fitting the context."""

from __future__ import annotations

from dataclasses import dataclass

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from jarvis.errors import ContextOverflow, InvalidRequest
from jarvis.request import ChatRequest, Message

# Used only when a GGUF carries no tokenizer.chat_template.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class PreparedPrompt:
    tokens: list[int]
    dropped_turns: int


class PromptBuilder:
    def __init__(self, model, chat_template: str):
        self._model = model
        template = chat_template or CHATML_TEMPLATE
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_text(model.eos_id) if model.eos_id >= 0 else "",
            bos_token=model.token_text(model.bos_id) if model.bos_id >= 0 else "",
        )

    def render(self, messages: tuple[Message, ...] | list[Message]) -> str:
        try:
            result = self._formatter(messages=[{"role": m.role, "content": m.content} for m in messages])
        except Exception as e:  # the template's own raise_exception, e.g. roles not alternating
            raise InvalidRequest(f"The model's chat template rejected the conversation: {e}", field="messages") from None
        return result.prompt

    def count(self, request: ChatRequest) -> int:
        """The prompt's tokens as the model would read it (template applied, nothing cut)."""
        text = request.prompt if request.prompt is not None else self.render(request.messages)
        return len(self._model.tokenize(text))

    def prepare(self, request: ChatRequest, n_ctx: int, truncate: bool) -> PreparedPrompt:
        # Room the reply needs: a context filled by the prompt alone could not answer at all.
        reserve = max(1, min(request.sampling.max_tokens, n_ctx // 4))
        limit = n_ctx - reserve
        if request.prompt is not None:
            return self._prepare_raw(request.prompt, n_ctx, limit, truncate)

        messages = list(request.messages)
        tokens = self._model.tokenize(self.render(messages))
        if len(tokens) <= limit:
            return PreparedPrompt(tokens, 0)
        if not truncate:
            raise ContextOverflow(len(tokens), n_ctx, f"It must leave {reserve} tokens for the reply. "
                                  + self._tools_hint(request) + "Shorten the conversation or enable engine.truncate.")
        # The system turn stays: it holds the tools' descriptions (jarvis.tools.plan), which go only after
        # every older turn has, so a long chat with tools loses its oldest history first, never its tools.
        system = [m for m in messages[:1] if m.role == "system"]
        body = messages[len(system):-1]
        newest = messages[-1:]
        dropped = 0
        while body:
            # Drop one turn: the oldest message and, when it is a user message, its answer.
            take = 2 if len(body) >= 2 and body[0].role == "user" and body[1].role == "assistant" else 1
            body = body[take:]
            dropped += 1
            tokens = self._model.tokenize(self.render(system + body + newest))
            if len(tokens) <= limit:
                return PreparedPrompt(tokens, dropped)
        raise ContextOverflow(
            len(tokens), n_ctx,
            f"Even the system prompt and the newest message alone leave no room for a {reserve}-token reply. "
            + (self._tools_hint(request) or "Shorten the message or raise engine.context_length."))

    def _tools_hint(self, request: ChatRequest) -> str:
        """What the tools take of the context, and what to do, when the prompt carries them; else ""."""
        plan = request.options.tools
        if plan is None or not plan.active:
            return ""
        tools = len(self._model.tokenize(plan.system_section(), add_special=False))
        return (f"The descriptions of its {len(plan.tools)} tools take {tools} of those tokens: switch some tools "
                "off in the Tools tab (or set enabled = false under [mcp.servers.NAME.tools.TOOL]), shorten the "
                "message, or raise engine.context_length. ")

    def _prepare_raw(self, prompt: str, n_ctx: int, limit: int, truncate: bool) -> PreparedPrompt:
        tokens = self._model.tokenize(prompt)
        if len(tokens) <= limit:
            return PreparedPrompt(tokens, 0)
        if not truncate:
            raise ContextOverflow(len(tokens), n_ctx)
        head = tokens[:1] if tokens and tokens[0] == self._model.bos_id else []
        return PreparedPrompt(head + tokens[len(tokens) - (limit - len(head)):], 0)
