"""Names are never paths. A model name given to `jarvis rm`, and a file name listed by a hub (which
may be hostile), must name one plain file inside one folder: no `..`, no absolute path, no
backslash or NUL, and no symlink that leads out of the folder.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from jarvis.downloads.errors import UnsafeName

_FORBIDDEN_CHARS = ("\\", "\x00", ":")


def check_repo_file(rfilename: str) -> str:
    """A hub file name (`sub/dir/x.gguf` is allowed: repos have folders); returns the plain file
    name it installs as. Anything that could climb out of a folder is refused."""
    if not rfilename or any(c in rfilename for c in _FORBIDDEN_CHARS) or any(ord(c) < 32 for c in rfilename):
        raise UnsafeName(f"Refusing the hub file name {rfilename!r}: it is not a plain relative path.")
    path = PurePosixPath(rfilename)
    if path.is_absolute() or any(part in ("", ".", "..") for part in rfilename.split("/")):
        raise UnsafeName(f"Refusing the hub file name {rfilename!r}: it climbs out of the repository.")
    return check_plain_name(path.name)


def check_plain_name(name: str) -> str:
    """One file name, no folder part."""
    if (not name or name in (".", "..") or "/" in name or any(c in name for c in _FORBIDDEN_CHARS)
            or any(ord(c) < 32 for c in name) or name.startswith(".")):
        raise UnsafeName(f"Refusing the name {name!r}: give a model name as `jarvis models` lists it, not a path.")
    return name


def file_in_folder(folder: Path, name: str) -> Path:
    """`folder/name`, refusing names that are paths and symlinks whose target leaves the folder."""
    name = check_plain_name(name)
    folder = Path(folder)
    candidate = folder / name
    try:
        real_folder = folder.resolve(strict=True)
        real = candidate.resolve(strict=False)
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop
        raise UnsafeName(f"Refusing {name!r}: {getattr(e, 'strerror', None) or e}.") from None
    if real.parent != real_folder:
        raise UnsafeName(f"Refusing {name!r}: it is a link to {real}, outside {folder}.")
    return candidate
