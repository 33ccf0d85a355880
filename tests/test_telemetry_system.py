import pynvml
import pytest

from jarvis.telemetry import gpu as gpu_module
from jarvis.telemetry.gpu import GpuProbe, nvml_library_present
from jarvis.telemetry.system import SystemSampler

from tests.fake_nvml import GIB, FakeNvml


@pytest.mark.skipif(nvml_library_present(), reason="this machine has an NVIDIA driver")
def test_no_driver_means_no_gpu_without_an_exception():
    probe = GpuProbe()
    assert probe.available is False
    assert probe.snapshot() == []
    probe.close()



def test_looking_for_the_driver_starts_no_child_process(monkeypatch):
    """Every `jarvis serve` and desktop start asks; find_library's `ldconfig -p` child (~15 ms,
    a fork of a process loading a model) was the answer's cost on Linux, where dlopen says the same."""
    import subprocess
    import sys

    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a) or pytest.fail("a child process"))
    present = nvml_library_present()
    assert started == [] or not sys.platform.startswith("linux")
    assert isinstance(present, bool)

def test_real_pynvml_whose_init_fails_is_not_available(monkeypatch):
    # The library probe says yes, but NVML cannot start (no driver here, or a broken one).
    monkeypatch.setattr(gpu_module, "nvml_library_present", lambda: True)
    monkeypatch.setattr(pynvml, "nvmlInit", FakeNvml(fail_init=True).nvmlInit)
    probe = GpuProbe()
    assert probe.available is False and probe.snapshot() == []


def test_fake_gpus_are_read_and_failures_become_none():
    nvml = FakeNvml()
    probe = GpuProbe(nvml=nvml)
    assert probe.available
    first, second = probe.snapshot()
    assert (first.index, first.name, first.utilization_pct, first.temperature_c) == (0, "NVIDIA H100", 37.0, 61.0)
    assert first.memory_used_bytes == 3 * GIB and first.memory_total_bytes == 80 * GIB
    assert first.process_memory_bytes == GIB  # only this PID, a None entry counts 0
    assert second.name == "NVIDIA A10" and second.temperature_c is None and second.process_memory_bytes == 0
    probe.close()
    assert nvml.shutdowns == 1


def test_a_fake_driver_that_fails_to_start_gives_nothing():
    probe = GpuProbe(nvml=FakeNvml(fail_init=True))
    assert probe.available is False and probe.snapshot() == []


def test_sampler_gives_sane_numbers_and_the_gpus():
    sampler = SystemSampler(gpu=GpuProbe(nvml=FakeNvml()))
    sum(i * i for i in range(200_000))  # some CPU time between the priming call and the sample
    snap = sampler.sample()
    assert 0.0 <= snap.cpu_percent <= 100.0
    assert 0.0 <= snap.process_cpu_percent <= 100.0
    assert 0.0 < snap.ram_percent <= 100.0
    assert 0 < snap.ram_used_bytes <= snap.ram_total_bytes
    assert snap.process_rss_bytes > 10 * 1024 * 1024  # a Python process with psutil loaded
    assert snap.gpu_available and [g.name for g in snap.gpus] == ["NVIDIA H100", "NVIDIA A10"]


def test_sampler_without_gpu_on_this_machine():
    snap = SystemSampler(gpu=GpuProbe(nvml=FakeNvml(fail_init=True))).sample()
    assert snap.gpu_available is False and snap.gpus == ()
