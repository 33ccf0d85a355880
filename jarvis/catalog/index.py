"""The persisted header index: what each model file's header said, keyed by (path, size, mtime_ns).

A start-up scan begins from it, so a second start parses no header that did not change: a file
whose path, size and modification time match an entry is listed from the entry. The file is
`<data_dir>/model-index.json`, read and written on the catalog's thread only, written whole (a
temporary file renamed over the old one) after a scan that changed something. An unreadable,
corrupt or foreign file is ignored with a warning: the headers are simply read again.

The same LocalModel <-> JSON translation serves the header reader's child process (reader.py).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterable

from pydantic import TypeAdapter, ValidationError

from jarvis.catalog.model_info import LocalModel

log = logging.getLogger("jarvis.catalog")
FORMAT = 2  # bump when ModelInfo's fields change meaning; an index of another format is read again

Key = tuple[str, int, int]  # path, size in bytes, mtime in ns
_INFO = TypeAdapter(LocalModel)
_INFOS = TypeAdapter(list[LocalModel])


def info_to_json(info: LocalModel) -> dict:
    return _INFO.dump_python(info, mode="json")


def info_from_json(fields: dict) -> LocalModel:
    """Raises ValueError (pydantic's ValidationError) when the fields do not make a LocalModel."""
    return _INFO.validate_python(fields)


def key_of(info: LocalModel) -> Key:
    return (str(info.path), info.size_bytes, info.mtime_ns)


def load(path: Path) -> dict[Key, LocalModel]:
    """The index's entries; {} when there is none, or it cannot be trusted (with a warning)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as e:
        log.warning("the model header index %s cannot be read (%s); headers are read again", path, e.strerror or e)
        return {}
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or "models" not in data:
            raise ValueError("not a JARVIS model index")
        if data.get("format") != FORMAT:
            log.info("the model header index %s is of format %r, not %d; headers are read again",
                     path, data.get("format"), FORMAT)
            return {}
        infos = _INFOS.validate_python(data["models"])
    except (ValueError, ValidationError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        log.warning("the model header index %s is corrupt and was ignored (%s); headers are read again",
                    path, str(e).splitlines()[0])
        return {}
    return {key_of(info): info for info in infos}


def save(path: Path, infos: Iterable[LocalModel]) -> bool:
    """Write the index whole (a partial write never replaces a good one). False, with a warning,
    when the data folder cannot be written: the index is a speed-up, never a requirement."""
    body = json.dumps({"format": FORMAT, "models": _INFOS.dump_python(list(infos), mode="json")})
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        log.warning("the model header index %s cannot be written (%s); the next start reads every header",
                    path, e.strerror or e)
        return False
    return True
