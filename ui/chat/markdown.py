"""Markdown -> the HTML subset Qt's rich text understands (QLabel / QTextDocument).

Raw HTML in a message is escaped, never interpreted. Each fenced code block is rendered in a
monospace box with a "copy code" link whose href is `copy:N`; `render()` returns the blocks' text
so the message widget can put block N on the clipboard.
"""

from __future__ import annotations

import html

import mistune

CODE_STYLE = ("background-color:#f3f4f6; font-family:'DejaVu Sans Mono',monospace; "
              "white-space:pre-wrap; margin:0px; padding:6px;")


class _QtRenderer(mistune.HTMLRenderer):
    def __init__(self) -> None:
        super().__init__(escape=True)
        self.code_blocks: list[str] = []

    def block_code(self, code: str, info: str | None = None) -> str:
        index = len(self.code_blocks)
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


def render(text: str) -> tuple[str, list[str]]:
    """(HTML for Qt rich text, the text of each code block). Call on the UI thread only."""
    _renderer.code_blocks = []
    body = _markdown(text)
    body = body.replace("<table>", '<table border="1" cellspacing="0" cellpadding="4" '
                                   'style="border-color:#d1d5db; border-collapse:collapse;">')
    return body, list(_renderer.code_blocks)
