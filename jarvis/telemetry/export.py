"""The history as CSV: one row per 1 Hz point (or per-minute rollup), the dict keys as columns.
GET /api/performance/history?format=csv and the monitor's "Export CSV" both write this."""

from __future__ import annotations

import csv
import io


def to_csv(rows: list[dict]) -> str:
    """Columns in the first row's order; None is an empty cell; floats as Python writes them
    (repr round-trips, so the CSV parses back to the very same numbers)."""
    out = io.StringIO()
    if not rows:
        return ""
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()
