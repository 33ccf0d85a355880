"""Deleting a model: only a file in the user's models folder, named as `jarvis models` lists it."""

from __future__ import annotations

from pathlib import Path

from jarvis.downloads.errors import DownloadError
from jarvis.downloads.names import check_plain_name, file_in_folder


def removable_path(settings, name: str) -> Path:
    """The file `name` stands for in the user's models folder; refuses paths and outside links."""
    check_plain_name(name)
    file = name if name.lower().endswith(".gguf") else f"{name}.gguf"
    folder = settings.user_models_path
    path = file_in_folder(folder, file) if folder.is_dir() else folder / file
    if not (path.is_file() or path.is_symlink()):
        raise DownloadError(f"No model {name!r} in your models folder ({folder}). JARVIS deletes only files there; "
                            "`jarvis models` lists each model's folder.")
    return path


def remove_model(settings, name: str) -> Path:
    path = removable_path(settings, name)
    path.unlink()
    return path
