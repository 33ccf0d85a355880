"""The user's own data at scale (issue 27, item 7): 10,000 conversations / 1 M messages in the
chat, 1,000 rows in the request explorer, 7 days of per-minute history in the charts. Not a test:
it prints figures and ratios against a baseline measured in the same run.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m bench.chat_history_bench [--data DIR] [--conversations 10000]

--data: a folder seeded by bench.seed_conversations (seeded here, into a temporary folder, when
not given). Targets: the desktop lists the conversations in < 500 ms; a search over all chats
answers in < 100 ms; the explorer and the 7-day charts repaint in under one frame (16.7 ms).

Baselines: listing every conversation into the sidebar at once (what the sidebar did before it
paged); searching the messages with LIKE '%word%' (a scan of every message, what search costs
without the FTS5 index).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
FRAME_MS = 1000 / 60


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def _median_ms(fn, n: int = 5) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(_ms(t0))
    return statistics.median(times)


def store_figures(path: Path) -> None:
    from bench.seed_conversations import COMMON_WORD, RARE_WORD
    from jarvis.conversations import PAGE, ConversationStore

    t0 = time.perf_counter()
    store = ConversationStore(path)
    opened = _ms(t0)
    try:
        n = store.count()
        messages = store._read("SELECT COUNT(*) FROM messages")[0][0]
        print(f"Store: {n:,} conversations, {messages:,} messages, {path.stat().st_size / 2**20:.0f} MB "
              f"(CPU load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
        print(f"  open (schema check, migrations)            {opened:8.1f} ms")
        page = _median_ms(lambda: store.page(None, PAGE + 1))
        everything = _median_ms(store.list, 3)
        print(f"  first page of {PAGE} (keyset)                {page:8.1f} ms   baseline: all {n:,} at once "
              f"{everything:8.1f} ms  ({everything / page:.0f}x)")
        last = store.page(None, n)[-1]
        deep = _median_ms(lambda: store.page(last, PAGE))
        print(f"  a page at the very end                     {deep:8.1f} ms")
        t0 = time.perf_counter()
        like = store._read("SELECT DISTINCT conversation_id FROM messages WHERE content LIKE ?", (f"%{RARE_WORD}%",))
        scan = _ms(t0)
        print(f"  search (target < 100 ms; baseline: LIKE scan of every message, {scan:.0f} ms, {len(like)} hit):")
        for query in (RARE_WORD, RARE_WORD[:5], COMMON_WORD, f"{COMMON_WORD} thread", "dragon castle", "no-such-word",
                      f"Chat {n - 1}"):
            hits = len(store.search(query))
            took = _median_ms(lambda: store.search(query))
            print(f"    {query!r:28} {hits:4d} chats  {took:8.1f} ms  ({scan / took:.0f}x faster than the scan)")
    finally:
        store.close()


async def desktop_figures(data_dir: Path, app) -> None:
    from bench.seed_conversations import COMMON_WORD, RARE_WORD
    from jarvis.config import load_settings
    from jarvis.conversations import ConversationStore
    from ui.app import Desktop

    from PySide6.QtWidgets import QListWidget

    env = {k: v for k, v in os.environ.items() if not k.startswith("JARVIS_")}
    env.update({"JARVIS_GENERAL_DATA_DIR": str(data_dir), "JARVIS_MODELS_WARMUP": ""})
    marks: dict[str, float] = {}
    t0 = time.perf_counter()
    desktop = Desktop(load_settings(environ=env))
    load = desktop.chat.load

    async def timed_load():
        marks["load_called"] = _ms(t0)
        result = await load()
        marks["listed"] = _ms(t0)
        return result

    desktop.chat.load = timed_load
    made = _ms(t0)
    desktop.window.resize(1280, 820)
    desktop.window.show()
    try:
        await desktop.start(http=False, warmup=False)
        started = _ms(t0)
        t1 = time.perf_counter()
        desktop.window.repaint()
        paint = _ms(t1)
        chat = desktop.chat
        shown = chat.sidebar.list.count()
        print("Desktop over that history (offscreen; the model is not loaded)")
        print(f"  Desktop() constructed (runtime, catalog, widgets)  {made:8.1f} ms")
        print(f"  start() -> sidebar listed + latest chat open       {marks['listed'] - marks['load_called']:8.1f} ms  "
              f"(target < 500 ms; {shown} rows, {len(chat.view.messages())} messages on screen)")
        print(f"  Desktop() -> sidebar listed + latest chat open     {marks['listed']:8.1f} ms")
        print(f"  Desktop() -> start() done (runtime included)       {started:8.1f} ms")
        print(f"  the window's paint after that                      {paint:8.1f} ms")

        # Baseline, same run: every conversation read and put into a list widget at once.
        t1 = time.perf_counter()
        with ConversationStore(desktop.settings.database_path) as sync_store:
            everything = sync_store.list()
        widget = QListWidget()
        for conv in everything:
            widget.addItem(conv.title)
        baseline = _ms(t1)
        widget.deleteLater()
        print(f"  baseline: all {len(everything):,} read and listed at once       {baseline:8.1f} ms")

        for query in (RARE_WORD, COMMON_WORD):
            times = []
            for _ in range(5):
                await chat.search("")
                t1 = time.perf_counter()
                await chat.search(query)
                times.append(_ms(t1))
            print(f"  search {query!r:12} from the box to the list shown   {statistics.median(times):8.1f} ms  "
                  f"({chat.sidebar.list.count()} chats)")
        await chat.search("")
        target = chat.sidebar.ids()[1]
        t1 = time.perf_counter()
        await chat.select(target)
        print(f"  open another chat ({len(chat.view.messages())} messages)                  {_ms(t1):8.1f} ms")
        t1 = time.perf_counter()
        chat.sidebar.list.scrollToBottom()
        while chat._paging or chat.sidebar.list.count() == shown:
            await asyncio.sleep(0.001)
        print(f"  scroll to the end: the next page in                 {_ms(t1):8.1f} ms")
    finally:
        await desktop.shutdown()


async def monitor_figures(app) -> None:
    from PySide6.QtCore import Qt

    from jarvis.config import load_settings
    from jarvis.runtime import Runtime
    from jarvis.telemetry.records import RequestRecord
    from ui.monitor.monitor_view import MonitorView

    with tempfile.TemporaryDirectory() as data_dir:
        runtime = Runtime(load_settings(environ={"JARVIS_GENERAL_DATA_DIR": data_dir, "JARVIS_MODELS_WARMUP": ""}))
        rng = random.Random(3)
        now = time.time()
        rollups = runtime.hub.rollups
        minute = int(now // 60 * 60)
        # The last 7 days, one row a minute (the oldest minute is the retention's edge: left out).
        rows = [{"minute": minute - k * 60, "requests": rng.randint(0, 30), "errors": rng.randint(0, 2),
                 "latency_p50_ms": rng.uniform(200, 900), "latency_p95_ms": rng.uniform(900, 3000),
                 "latency_p99_ms": rng.uniform(3000, 6000), "ttft_p50_ms": rng.uniform(50, 200),
                 "ttft_p95_ms": rng.uniform(200, 600), "completion_tokens": rng.randint(0, 5000),
                 "cpu_percent": rng.uniform(5, 95), "ram_percent": rng.uniform(30, 60)}
                for k in range(1, 7 * 24 * 60)]
        await asyncio.to_thread(lambda: [rollups.write(r) for r in rows])
        monitor = MonitorView(runtime, interval_ms=3_600_000)
        monitor.resize(1280, 780)
        monitor.show()
        monitor.charts.finish_reveal()
        try:
            monitor.details.setCurrentWidget(monitor.explorer)
            for i in range(1000):
                runtime.hub.recent.observe(RequestRecord(
                    request_id=f"req-{i}", model=rng.choice(["smollm2", "gemma3-270m"]), source="chat",
                    total_ms=rng.lognormvariate(6, 0.6), ttft_ms=rng.uniform(50, 400), completion_tokens=rng.randint(8, 300),
                    decode_tokens_per_s=rng.uniform(40, 120), status=rng.choice(["ok"] * 9 + ["error"]),
                    timestamp=now - 1000 + i))
            t0 = time.perf_counter()
            monitor.explorer.refresh()
            fill = _ms(t0)
            app.processEvents()
            table = monitor.explorer.table.viewport()
            repaint = _median_ms(table.repaint, 30)
            monitor.explorer.table.sortByColumn(9, Qt.SortOrder.DescendingOrder)
            sort_paint = _median_ms(table.repaint, 30)
            print(f"Request explorer, {monitor.explorer.model.rowCount()} rows")
            print(f"  fill from the ring buffer (once)                   {fill:8.1f} ms")
            print(f"  repaint (median of 30)                             {repaint:8.2f} ms  "
                  f"({repaint / FRAME_MS:.2f} of a frame)")
            print(f"  repaint, sorted by total time                      {sort_paint:8.2f} ms  "
                  f"({sort_paint / FRAME_MS:.2f} of a frame)")

            # What the charts cost with little to draw: the last hour, 60 points a curve.
            monitor.rollup_rows = []
            monitor.range_bar.select(3600)
            while not monitor.rollup_rows:
                await asyncio.sleep(0.001)
            app.processEvents()
            views = [c.viewport() for c in monitor.charts.visible_charts()]
            hour = _median_ms(lambda: [v.repaint() for v in views], 20)

            monitor.rollup_rows = []
            t0 = time.perf_counter()
            monitor.range_bar.select(7 * 86400)
            while not monitor.rollup_rows:  # read on a thread, then drawn
                await asyncio.sleep(0.001)
            loaded = _ms(t0)
            app.processEvents()
            views = [c.viewport() for c in monitor.charts.visible_charts()]
            repaint = _median_ms(lambda: [v.repaint() for v in views], 20)  # every chart's view, drawn now
            points = sum(c.point_count(k) for c in monitor.charts.visible_charts() for k in c.curves)
            print(f"7-day range, {len(monitor.rollup_rows):,} minute rows ({points:,} points on the charts)")
            print(f"  read on a thread + drawn, from the click            {loaded:8.1f} ms")
            print(f"  all {len(views)} charts repaint (median of 20)             {repaint:8.2f} ms  "
                  f"({repaint / FRAME_MS:.2f} of a frame)")
            print(f"  the same charts over 1 hour (60 points a curve)    {hour:8.2f} ms  "
                  f"({hour / FRAME_MS:.2f} of a frame: what a chart costs to paint at all)")
            # Baseline, same run: the same range drawn point by point (no bucket peaks).
            import ui.monitor.charts as charts_module
            from ui.monitor.history_range import rollup_points
            buckets, charts_module.RANGE_BUCKETS = charts_module.RANGE_BUCKETS, 10**9
            monitor.charts.show_range(rollup_points(monitor.rollup_rows), 7 * 86400, False)
            app.processEvents()
            raw = _median_ms(lambda: [v.repaint() for v in views], 10)
            charts_module.RANGE_BUCKETS = buckets
            print(f"  baseline: every point drawn                        {raw:8.2f} ms  "
                  f"({raw / FRAME_MS:.2f} of a frame; peaks are {raw / repaint:.1f}x faster)")
        finally:
            monitor.stop()
            await monitor.tasks.cancel_all()
            monitor.deleteLater()
            await runtime.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a folder seeded by bench.seed_conversations")
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=100)
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from bench.seed_conversations import seed
    from ui.async_bridge import new_event_loop

    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data or Path(scratch)
        if not (data_dir / "conversations.sqlite3").exists():
            t0 = time.perf_counter()
            seed(data_dir, args.conversations, args.messages)
            print(f"seeded {args.conversations:,} x {args.messages} messages in {_ms(t0) / 1000:.1f} s")
        store_figures(data_dir / "conversations.sqlite3")
        app = QApplication.instance() or QApplication([])
        app.setQuitOnLastWindowClosed(False)  # the desktop's window closes between the parts
        loop = new_event_loop(app)
        asyncio.set_event_loop(loop)
        with loop:
            loop.run_until_complete(desktop_figures(data_dir, app))
            # The closed desktop's widgets are garbage now: collected here, on the Qt thread, and
            # not by a later collection on a worker thread (Qt then warns "Timers cannot be
            # started from another thread" as their C++ halves go).
            import gc
            gc.collect()
            loop.run_until_complete(monitor_figures(app))
    return 0


if __name__ == "__main__":
    sys.exit(main())
