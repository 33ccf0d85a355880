"""`jarvis cache stats` and `jarvis cache clear [--model NAME]`: the disk cache file, read and
emptied from the command line (a running app's memory level is cleared by its monitor's Clear)."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when the command runs: `jarvis --help` and `jarvis serve` need no numpy for it
    from jarvis.cache.disk import DiskLevel


def add_parser(sub) -> None:
    p = sub.add_parser("cache", help="the response cache on disk: stats, clear")
    actions = p.add_subparsers(dest="cache_action", required=True)
    s = actions.add_parser("stats", help="entries and MB on disk, by model and kind")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    c = actions.add_parser("clear", help="delete cached replies (all, or one model's)")
    c.add_argument("--model", metavar="NAME", help="only this model's replies (as `jarvis models` lists it)")
    p.set_defaults(func=run)


def _disk(args) -> DiskLevel:
    from jarvis.cache.disk import DiskLevel
    from jarvis.cache.levels import cache_path
    from jarvis.config import load_settings

    settings = load_settings(args.config)
    return DiskLevel(cache_path(settings.data_path), int(settings.cache.disk_max_mb * 2**20))


def run(args) -> int:
    disk = _disk(args)
    try:
        return _clear(disk, args.model) if args.cache_action == "clear" else _stats(disk, args.json)
    finally:
        disk.close()


def _clear(disk: DiskLevel, model: str | None) -> int:
    if not disk.path.exists():
        print(f"Nothing to clear: {disk.path} does not exist yet.")
        return 0
    n = disk.clear(model)
    which = f" of {model}" if model else ""
    print(f"Deleted {n} cached replies{which} from {disk.path}. A running JARVIS keeps its memory level: "
          "use the monitor's Clear button there.")
    return 0


def _size(n: int) -> str:
    return f"{n / 2**20:.2f} MB" if n >= 2**20 else f"{n / 1024:.1f} KB"


def _stats(disk: DiskLevel, as_json: bool) -> int:
    if not disk.path.exists():
        figures = {"path": str(disk.path), "entries": 0, "prompts": 0, "bytes": 0, "max_bytes": disk.max_bytes,
                   "by_model": {}, "by_kind": {}}
    else:
        figures = disk.counts()
        figures["by_model"], figures["by_kind"] = _breakdown(disk)
    if as_json:
        print(json.dumps(figures))
        return 0
    print(f"disk cache  {figures['path']}")
    print(f"  {figures['entries']} replies, {figures['prompts']} semantic prompts, "
          f"{_size(figures['bytes'])} of {figures['max_bytes'] / 2**20:.0f} MB")
    for title, key in (("by model", "by_model"), ("by kind", "by_kind")):
        for name, (count, size) in sorted(figures[key].items()):
            print(f"  {title:<9} {name:<40} {count:>6} replies {_size(size):>10}")
    return 0


def _breakdown(disk: DiskLevel) -> tuple[dict, dict]:
    def work(db: sqlite3.Connection):
        out = []
        for column in ("model", "kind"):
            rows = db.execute(f"SELECT {column}, COUNT(*), SUM(bytes) FROM replies GROUP BY {column}").fetchall()
            out.append({name: (count, size) for name, count, size in rows})
        return tuple(out)

    return disk._run(work, default=({}, {}))
