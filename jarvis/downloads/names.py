"""Names are never paths. A model name given to `jarvis rm`, and a file name listed by a hub (which
may be hostile), must name one plain file inside one folder: no `..`, no absolute path, no
backslash or NUL, and no symlink that leads out of the folder. And a name must be one every
common file system can hold: no control or direction-changing characters, no Windows device
name (CON, NUL, COM1, ...), no trailing dot or space, at most 255 bytes.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path, PurePosixPath

from jarvis.downloads.errors import UnsafeName

_FORBIDDEN_CHARS = ("\\", "\x00", ":", "<", ">", '"', "|", "?", "*")
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
                    *(f"{p}{n}" for p in ("COM", "LPT") for n in (*"0123456789", "¹", "²", "³"))}
MAX_NAME_BYTES = 255  # ext4, NTFS, APFS: one path component
FOLDER_JOIN = "--"    # sub/x.gguf installs as sub--x.gguf: never collapsed onto x.gguf


def _problem(name: str) -> str | None:
    """Why `name` cannot be a file name on every common file system, or None."""
    for c in name:
        if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs"):
            return f"it contains a control character (U+{ord(c):04X})"
    if bad := [c for c in _FORBIDDEN_CHARS if c in name]:
        return f"it contains {bad[0]!r}"
    if name.endswith((".", " ")):
        return "it ends in a dot or a space, which Windows drops"
    if name.split(".")[0].rstrip(" ").upper() in _WINDOWS_DEVICES:
        return f"{name.split('.')[0]!r} is a device name Windows has reserved"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"it is {len(name.encode('utf-8'))} bytes long, too long for a file name (at most {MAX_NAME_BYTES})"
    return None


def _refuse(rfilename: str, reason: str) -> UnsafeName:
    e = UnsafeName(f"Refusing the hub file name {rfilename!r}: {reason}.")
    e.reason = reason  # what `jarvis pull` prints beside the name
    return e


def check_repo_file(rfilename: str) -> str:
    """A hub file name (`sub/dir/x.gguf` is allowed: repos have folders); returns the file name it
    installs as: folders joined with `--` (`sub--dir--x.gguf`), the suffix in lower case (so an
    upper-case `.GGUF` is a model like any other). Anything that could climb out of a folder, or
    that a file system cannot hold, is refused with the reason."""
    if not rfilename or "\\" in rfilename or "\x00" in rfilename:
        raise _refuse(rfilename, "it is not a plain relative path")
    path = PurePosixPath(rfilename)
    if path.is_absolute() or any(part in ("", ".", "..") for part in rfilename.split("/")):
        raise _refuse(rfilename, "it climbs out of the repository")
    name = FOLDER_JOIN.join(rfilename.split("/"))
    if name.lower().endswith(".gguf"):
        name = name[:-5] + ".gguf"
    if problem := _problem(name) or (name.startswith(".") and "it is a hidden file name"):
        raise _refuse(rfilename, problem)
    return name


def check_plain_name(name: str) -> str:
    """One file name, no folder part."""
    if not name or name in (".", "..") or "/" in name or name.startswith(".") or "\\" in name:
        raise UnsafeName(f"Refusing the name {name!r}: give a model name as `jarvis models` lists it, not a path.")
    if problem := _problem(name):
        raise UnsafeName(f"Refusing the name {name!r}: {problem}.")
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
