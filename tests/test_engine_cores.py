"""engine.n_threads = 0 counts one compute thread per physical core the process may use, and
performance cores only on a hybrid CPU, as llama.cpp's own default does (jarvis/engine/cores.py).
This machine has neither SMT nor a hybrid CPU, so those topologies are sysfs trees written here:
the kernel's own file layout, read by the same code."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil
import pytest

from jarvis.engine.config import auto_threads
from jarvis.engine.cores import compute_cpus, parse_cpu_list

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sysfs is Linux's")


def sysfs(root: Path, cores: list[list[int]], performance: str | None = None, old_kernel: bool = False) -> str:
    """A /sys/devices tree: each inner list is one physical core's logical CPUs."""
    for siblings in cores:
        listed = ",".join(map(str, siblings))
        for cpu in siblings:
            topology = root / "system" / "cpu" / f"cpu{cpu}" / "topology"
            topology.mkdir(parents=True)
            (topology / "thread_siblings_list").write_text(listed + "\n")
            if not old_kernel:  # core_cpus_list came in Linux 5.3; thread_siblings_list before it
                (topology / "core_cpus_list").write_text(listed + "\n")
    if performance is not None:
        (root / "cpu_core").mkdir()
        (root / "cpu_core" / "cpus").write_text(performance + "\n")
    return str(root)


def test_the_kernels_cpu_lists_are_read_with_their_ranges():
    assert parse_cpu_list("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert parse_cpu_list("5") == {5}


def test_smt_siblings_count_once(tmp_path):
    """8 cores with 2 threads each, numbered as Linux numbers them (siblings n and n + 8)."""
    root = sysfs(tmp_path, [[n, n + 8] for n in range(8)])
    assert compute_cpus(list(range(16)), root) == list(range(8))


def test_an_older_kernel_without_core_cpus_list_is_read_from_thread_siblings_list(tmp_path):
    root = sysfs(tmp_path, [[0, 1], [2, 3]], old_kernel=True)
    assert compute_cpus([0, 1, 2, 3], root) == [0, 2]


def test_a_taskset_of_one_cores_two_threads_is_one_core(tmp_path):
    """Only the CPUs this process may use count: a container given CPUs 3 and 11 (one core's two
    threads) runs one compute thread, not two and not the machine's eight."""
    root = sysfs(tmp_path, [[n, n + 8] for n in range(8)])
    assert compute_cpus([3, 11], root) == [3]
    assert compute_cpus([1, 2, 9], root) == [1, 2]


def test_a_hybrid_cpu_counts_its_performance_cores_only(tmp_path):
    """6 performance cores with 2 threads each (CPUs 0-11) and 8 efficiency cores (12-19): 6
    compute threads, as llama.cpp counts them. A process allowed only efficiency cores runs on
    those rather than on nothing."""
    root = sysfs(tmp_path, [[2 * n, 2 * n + 1] for n in range(6)] + [[n] for n in range(12, 20)],
                 performance="0-11")
    assert compute_cpus(list(range(20)), root) == [0, 2, 4, 6, 8, 10]
    assert compute_cpus([12, 13, 14], root) == [12, 13, 14]


def test_where_the_topology_cannot_be_read_every_logical_cpu_counts(tmp_path):
    assert compute_cpus([0, 1, 2, 3], str(tmp_path)) == [0, 1, 2, 3]


@linux_only
def test_on_this_machine_the_default_is_its_physical_core_count():
    """psutil reads the same topology its own way, for the whole machine: the default is never
    more, and with every CPU allowed and no hybrid CPU the two counts agree (on this 2-core machine
    without SMT: 2)."""
    physical = psutil.cpu_count(logical=False)
    assert 1 <= auto_threads() <= physical
    whole_machine = os.sched_getaffinity(0) == set(range(os.cpu_count() or 1))
    if whole_machine and not os.path.exists("/sys/devices/cpu_core"):
        assert auto_threads() == physical


def test_where_the_platform_has_no_affinity_mask_the_physical_cores_are_counted(monkeypatch):
    """Windows has no sched_getaffinity: psutil's physical core count, not the logical CPUs."""
    from jarvis.engine import cores

    monkeypatch.setattr(cores, "usable_cpus", lambda: [])  # what the platform says there
    assert cores.compute_core_count() == psutil.cpu_count(logical=False)
