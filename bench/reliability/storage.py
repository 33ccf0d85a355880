"""Storage faults: a data directory that cannot be written, and kill -9 of a process in the middle
of writing conversations (no committed message may be lost or changed)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from bench.reliability.result import Result
from bench.support.chat import bounded, greedy
from bench.support.settings import tune

ROOT = Path(__file__).resolve().parents[2]


# ---- unwritable data directory -------------------------------------------------------------
async def unwritable_data_dir(workdir: Path, base_settings) -> Result:
    import logging

    from jarvis.runtime import Runtime

    r = Result("unwritable data dir")
    blocker = workdir / "a_file"
    blocker.write_text("not a directory")
    settings = tune(base_settings, general={"data_dir": str(blocker / "data")})
    warnings: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda rec: warnings.append(rec.getMessage()) if rec.levelno >= logging.WARNING else None
    logger = logging.getLogger("jarvis")
    level = logger.level
    logger.setLevel(logging.WARNING)  # whatever the root logger's level is
    logger.addHandler(handler)
    rt = Runtime(settings)
    try:
        await rt.start(http=False, warmup=False)
        a = rt.assistant
        for i in range(3):
            r.tried += 1
            r.faults += 1
            reply = await bounded(a.chat(greedy(a, f"Say the number {i}.", 4)), 120)
            if reply.text:
                r.handled += 1
            else:
                r.lost += 1
        await asyncio.get_running_loop().run_in_executor(None, rt.request_log.flush)
        said = [w for w in warnings if "request log" in w]
        r.notes["warnings"] = len(said)
        if len(said) != 1:
            r.fail(f"expected one request-log warning, got {warnings}")
    finally:
        await rt.close()
        logger.removeHandler(handler)
        logger.setLevel(level)
    return r


# ---- kill -9 of a conversation writer ------------------------------------------------------
WRITER = textwrap.dedent("""
    import sys
    from jarvis.conversations import ConversationStore
    store = ConversationStore(sys.argv[1])
    conv = store.create("Crash %s" % sys.argv[2])
    print("conv", conv.id, flush=True)
    for i in range(10_000_000):
        m = store.add_message(conv.id, "assistant" if i % 2 else "user", "reply %d " % i + "x" * (i % 300),
                              meta={"i": i})
        print(m.id, i, flush=True)
""")


def kill9_conversations(workdir: Path, rounds: int = 20, seed: int = 0) -> Result:
    from jarvis.conversations import ConversationStore

    r = Result(f"kill -9 conversation writer x{rounds}")
    rng = random.Random(seed)
    db = workdir / "conv.sqlite3"
    expected: dict[int, tuple[int, int]] = {}  # message id -> (conversation, i)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for k in range(rounds):
        r.tried += 1
        r.faults += 1
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(k)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 30
        while not lines and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))  # the kill lands wherever the loop happens to be
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        reader.join(10)
        proc.stdout.close()
        proc.stderr.close()
        if not lines:
            r.fail(f"round {k}: the writer printed nothing")
            continue
        conv_id = int(lines[0].split()[1])
        for line in lines[1:]:
            parts = line.split()
            if len(parts) == 2 and line.endswith("\n"):
                expected[int(parts[0])] = (conv_id, int(parts[1]))
        conn = sqlite3.connect(db)
        ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
        conn.close()
        if ok != "ok":
            r.crashes += 1
            r.fail(f"round {k}: integrity_check = {ok}")
            continue
        r.handled += 1
    with ConversationStore(db) as store:
        stored = {}
        for conv in store.list():
            stored.update({m.id: (conv.id, m) for m in store.messages(conv.id)})
    for mid, (conv_id, i) in expected.items():
        got = stored.get(mid)
        if got is None or got[0] != conv_id or got[1].meta != {"i": i} or not got[1].content.startswith(f"reply {i} "):
            r.lost += 1
    if r.lost:
        r.fail(f"{r.lost} committed messages missing or changed")
    r.notes["committed_messages_checked"] = len(expected)
    return r
