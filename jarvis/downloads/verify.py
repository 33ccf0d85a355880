"""The two checks a downloaded file passes before the catalog may see it."""

from __future__ import annotations

from pathlib import Path

from jarvis.downloads.errors import DownloadError


def check_sha256(path: Path, actual: str, expected: str) -> None:
    if actual.lower() != expected.lower():
        raise DownloadError(f"{path.name} is damaged: its SHA-256 is {actual}, the hub says {expected}. "
                            "The file was removed; pull it again (a mirror that keeps failing serves a bad copy).")


def check_gguf(path: Path) -> None:
    """JARVIS's bounds-checked header reader (the catalog's), so llama.cpp never parses a bad file."""
    from jarvis.catalog import read_gguf_info

    info = read_gguf_info(path, path.name, "download")
    if not info.ok:
        raise DownloadError(f"{path.name} is not a usable GGUF model ({info.error}). The file was removed.")
