"""serve_profile's CPU accounting (jarvis/bench/serve_profile.py): which threads count as llama.cpp's
(compute) and which as the server's own (serving), for JARVIS and for llama-server alike, and the
per-thread counters it reads from /proc. Synthetic counters test the arithmetic; the /proc reader is
tested on this process's own thread, made busy for a known amount of CPU time."""

from __future__ import annotations

import os
import threading
import time

from jarvis.bench.serve_profile import compute_and_serving, measure, thread_counters


def test_compute_is_the_threads_that_ran_longest_and_serving_is_every_other():
    cpu = {10: 4.0, 11: 0.2, 12: 5.0, 13: 0.05, 14: 0.0}
    assert compute_and_serving(cpu, threads=2) == (9.0, 0.25)
    assert compute_and_serving(cpu, threads=1) == (5.0, 4.25)


def test_llama_server_is_counted_as_compute_and_serving_only():
    pid = 100
    before = {100: (1.0, 5), 101: (1.0, 0), 102: (0.0, 0), 103: (0.0, 0)}
    after = {100: (3.0, 9), 101: (2.9, 0), 102: (0.05, 7), 103: (0.02, 3), 104: (0.03, 1)}  # 104: a new HTTP thread
    m = measure(pid, {}, before, after, tokens=500, wall=2.0, threads=2, python=False)
    assert abs(m["compute_cpu_ms_per_token"] - 3.9 * 1000 / 500) < 1e-9
    assert abs(m["serving_cpu_ms_per_token"] - 0.1 * 1000 / 500) < 1e-9
    assert set(m["cpu_share"]) == {"compute", "serving"}
    assert "loop_cpu_ms_per_token" not in m  # its main thread is llama.cpp's, not an asyncio loop


def test_jarvis_keeps_its_loop_figures_beside_compute_and_serving():
    pid = 200  # the asyncio loop is the main thread
    before = {200: (0.0, 0), 201: (0.0, 0), 202: (0.0, 0)}
    after = {200: (0.1, 40), 201: (2.0, 0), 202: (1.9, 0)}
    m = measure(pid, {201: "engine:model"}, before, after, tokens=100, wall=2.0, threads=2)
    assert abs(m["loop_cpu_ms_per_token"] - 1.0) < 1e-9 and m["loop_wakeups_per_token"] == 0.4
    assert abs(m["serving_cpu_ms_per_token"] - 1.0) < 1e-9  # the loop is serving, not compute
    assert abs(m["compute_cpu_ms_per_token"] - 39.0) < 1e-9
    assert abs(m["cpu_s"]["engine"] - 2.0) < 1e-9 and abs(m["cpu_s"]["ggml"] - 1.9) < 1e-9


def test_thread_counters_read_a_threads_cpu_time_from_proc():
    spun, done, ident = threading.Event(), threading.Event(), []

    def spin():
        ident.append(threading.get_native_id())
        start = time.thread_time()
        while time.thread_time() - start < 0.05:  # 50 ms of this thread's own CPU, however long it takes
            pass
        spun.set()
        done.wait()  # alive while it is read

    t = threading.Thread(target=spin)
    before = thread_counters(os.getpid())
    t.start()
    spun.wait()
    after = thread_counters(os.getpid())
    done.set()
    t.join()
    assert ident[0] not in before and 0.04 <= after[ident[0]][0] < 5.0
