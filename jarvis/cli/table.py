"""The one table format of the command line: left-aligned columns, a rule under the headers."""

from __future__ import annotations


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]

    def line(row) -> str:
        return "  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def mb(n: int) -> str:
    """Bytes as whole MB; '-' for 0 (unknown)."""
    return f"{n / 2**20:.0f} MB" if n else "-"
