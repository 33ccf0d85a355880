"""Markdown -> the HTML subset Qt's rich text understands (QLabel / QTextDocument).

Raw HTML in a message is escaped, never interpreted. Each fenced code block is rendered in a
monospace box with a "copy code" link whose href is `copy:N`; `render()` returns the blocks' text
so the message widget can put block N on the clipboard.

While an answer streams, `settled_end()` tells how much of it is whole blocks that later text
cannot change: the message widget renders those once and re-renders only the block being written.
"""

from __future__ import annotations

import html
import re

import mistune

CODE_STYLE = ("background-color:#f3f4f6; font-family:'DejaVu Sans Mono',monospace; "
              "white-space:pre-wrap; margin:0px; padding:6px;")


class _QtRenderer(mistune.HTMLRenderer):
    def __init__(self) -> None:
        super().__init__(escape=True)
        self.code_blocks: list[str] = []
        self.first_index = 0  # copy links count on from the blocks of the message's earlier parts

    def block_code(self, code: str, info: str | None = None) -> str:
        index = self.first_index + len(self.code_blocks)
        self.code_blocks.append(code.rstrip("\n"))
        lang = html.escape((info or "").split()[0]) if info and info.strip() else "code"
        return (f'<table width="100%" cellspacing="0" cellpadding="0" style="margin-top:4px; margin-bottom:4px;">'
                f'<tr><td style="background-color:#e5e7eb; padding:2px 6px; color:#4b5563;">{lang}'
                f' &nbsp; <a href="copy:{index}">copy code</a></td></tr>'
                f'<tr><td style="{CODE_STYLE}"><pre style="{CODE_STYLE}">{html.escape(code.rstrip(chr(10)))}</pre>'
                f'</td></tr></table>\n')

    def codespan(self, text: str) -> str:
        return f'<code style="background-color:#f3f4f6; font-family:monospace;">{html.escape(text)}</code>'


_renderer = _QtRenderer()
_markdown = mistune.create_markdown(renderer=_renderer, plugins=["table", "strikethrough"])


def render(text: str, first_index: int = 0) -> tuple[str, list[str]]:
    """(HTML for Qt rich text, the text of each code block). Call on the UI thread only.
    `first_index`: the copy link of this text's first code block (a message rendered in parts)."""
    _renderer.code_blocks = []
    _renderer.first_index = first_index
    body = _markdown(text)
    body = body.replace("<table>", '<table border="1" cellspacing="0" cellpadding="4" '
                                   'style="border-color:#d1d5db; border-collapse:collapse;">')
    return body, list(_renderer.code_blocks)


_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")


def settled_end(text: str) -> int:
    """Where the complete blocks of a streaming Markdown text end: text[:n] ends at a blank line
    outside a code fence that a line starting at column 0 has already followed (an indented line
    could still continue a list item above it). Rendered alone, text[:n] and text[n:] give what
    the whole would, but for a list split at a blank line (two lists; an ordered one keeps its
    numbers) and reference links defined further down: the message renders whole when it ends."""
    settled = 0
    fence = ""
    blank_at = None  # just after the latest blank line outside a fence, not yet confirmed
    pos = 0
    for line in text.splitlines(keepends=True):
        end = pos + len(line)
        if not line.endswith("\n"):  # the line being written: its first character is enough
            if not fence and blank_at is not None and not line[0].isspace():
                settled = blank_at
            break
        opener = _FENCE.match(line)
        if fence:
            if opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence) \
                    and not line[opener.end():].strip():
                fence = ""
        elif not line.strip():
            blank_at = end
        else:
            if blank_at is not None and not line[0].isspace():
                settled = blank_at
            blank_at = None
            if opener:
                fence = opener.group(1)
        pos = end
    return settled
