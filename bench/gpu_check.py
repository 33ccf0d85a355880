"""`python -m bench.gpu_check` (`make gpu-check`): on a machine with an NVIDIA GPU and a CUDA build
of llama-cpp-python (`jarvis setup-cuda`), prove end to end that JARVIS offloads the model and that
what the System Monitor shows about the GPU is what the driver says. Never part of `make test`:
CI and most development machines have no NVIDIA GPU (there the same code paths run against the
fake NVML in tests/fake_nvml.py).

The checks, each printed as `ok` or `FAIL` with what was seen:
  build      llama_supports_gpu_offload() of the installed llama-cpp-python
  setup      `jarvis setup-cuda --check` reads the driver through NVML and exits 0
  offload    `jarvis serve`, default settings, loads the bundled model with every layer on the GPU
             (/api/models/stats), and nvidia-smi lists that process with GPU memory
  telemetry  under 4 streams: /api/system/metrics reports GPU load > 0, the device's memory, and
             this process's own GPU memory as nvidia-smi reports it for the same pid; /metrics
             exports jarvis_gpu_memory_used_bytes
  cpu-only   a `jarvis serve` with JARVIS_GPU_USE_GPU=false holds no GPU memory (nvidia-smi)
  cpu        the same 8 greedy prompts on a second `jarvis serve` with JARVIS_GPU_USE_GPU=false:
             GPU over CPU tokens/s, and how many replies are identical (reported, not required:
             CUDA and CPU kernels round differently, so greedy texts may part after a few tokens)
Prints one line per check, then one JSON line; exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

from jarvis.bench import peer_bench


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def smi_process_mib(pid: int) -> int | None:
    """GPU memory nvidia-smi attributes to `pid` (MiB); None when nvidia-smi is missing or lists it not."""
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=30).stdout
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid) and parts[1].isdigit():
            return int(parts[1])
    return None


class Checks:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, name: str, ok: bool, seen: str) -> bool:
        self.rows.append({"check": name, "ok": bool(ok), "seen": seen})
        print(f"{'ok  ' if ok else 'FAIL'} {name:10} {seen}", flush=True)
        return ok

    @property
    def passed(self) -> bool:
        return all(r["ok"] for r in self.rows)


def check_build(checks: Checks) -> None:
    import llama_cpp

    offload = bool(llama_cpp.llama_supports_gpu_offload())
    checks.add("build", offload, f"llama-cpp-python {llama_cpp.__version__}, llama_supports_gpu_offload()={offload}")


def check_setup(checks: Checks) -> None:
    r = subprocess.run([sys.executable, "-m", "jarvis", "setup-cuda", "--check"], capture_output=True, text=True,
                       timeout=180, env=peer_bench.code_path(dict(os.environ)))
    text = " | ".join(line.strip() for line in (r.stdout + r.stderr).splitlines() if line.strip())
    checks.add("setup", r.returncode == 0 and "NVML" in text, f"exit {r.returncode}: {text[:600]}")


class MetricsPoller(threading.Thread):
    """Reads /api/system/metrics every `period` s while the load runs (the sampler ticks at 1 Hz)."""

    def __init__(self, url: str, period: float = 0.25) -> None:
        super().__init__(name="gpu-check-poller", daemon=True)
        self.url, self.period = url, period
        self.samples: list[dict] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                m = get_json(self.url + "/api/system/metrics")
                if m.get("gpus"):
                    self.samples.append(m)
            except OSError:
                pass
            self.stop.wait(self.period)


def check_serve(checks: Checks, prompts: list[str], max_tokens: int, log) -> dict:
    url, proc = peer_bench.start_jarvis(0, {"JARVIS_MODELS_WARMUP": "true"}, log)
    try:
        asyncio.run(peer_bench.run_load(url, 1, 8, {"cache": False}, prompts[:1]))  # the model is loaded
        loaded = get_json(url + "/api/models/stats").get("loaded_models", [])
        layers = [f"{m.get('gpu_layers')}/{m.get('layers')}" for m in loaded]
        smi_before = smi_process_mib(proc.pid)
        every = bool(loaded) and all(m.get("layers") and m.get("gpu_layers") == m.get("layers") for m in loaded)
        checks.add("offload", every and bool(smi_before),
                   f"loaded models' gpu_layers {layers}; nvidia-smi: pid {proc.pid} holds {smi_before} MiB")
        poller = MetricsPoller(url)
        poller.start()
        time.sleep(1.5)  # the sampler starts on the first read and ticks once a second
        load = asyncio.run(peer_bench.run_load(url, 4, max_tokens, {"cache": False}, prompts * 2))
        time.sleep(1.2)
        poller.stop.set()
        poller.join()
        smi_after = smi_process_mib(proc.pid)
        gpus = [g for s in poller.samples for g in s["gpus"]]
        util = max((g.get("utilization_pct") or 0 for g in gpus), default=0)
        own = max((g.get("process_memory_bytes") or 0 for g in gpus), default=0) / 2**20
        used = max((g.get("memory_used_bytes") or 0 for g in gpus), default=0) / 2**20
        name = gpus[0]["name"] if gpus else "-"
        # NVML and nvidia-smi read the same counter; allow for a pool growing between the two reads.
        agree = smi_after is not None and own > 0 and abs(own - smi_after) <= max(64, 0.1 * smi_after)
        checks.add("telemetry", util > 0 and used > 0 and agree,
                   f"{len(poller.samples)} samples of {name}: load max {util:.0f} %, device memory {used:.0f} MiB, "
                   f"this process {own:.0f} MiB (nvidia-smi: {smi_after} MiB)")
        prom = get_text(url + "/metrics")
        gauge = [line for line in prom.splitlines() if line.startswith("jarvis_gpu_memory_used_bytes{")]
        checks.add("metrics", bool(gauge) and float(gauge[0].split()[-1]) > 0, gauge[0] if gauge else "no gauge")
        return {"tok_s_c4": load.tok_s, "tokens": load.tokens, "gpu_name": name, "util_max_pct": util,
                "process_mib": own, "smi_process_mib": smi_after}
    finally:
        peer_bench._stop(proc)


def compare_cpu(checks: Checks, prompts: list[str], max_tokens: int, log) -> dict:
    results, smi = {}, {}
    for label, env in (("gpu", {}), ("cpu", {"JARVIS_GPU_USE_GPU": "false"})):
        url, proc = peer_bench.start_jarvis(0, {"JARVIS_MODELS_WARMUP": "true", **env}, log)
        try:
            asyncio.run(peer_bench.run_load(url, 1, 8, {"cache": False}, prompts[:1]))  # loaded, warm
            results[label] = {c: asyncio.run(peer_bench.run_load(url, c, max_tokens, {"cache": False}, prompts))
                              for c in (1, 4)}
            smi[label] = smi_process_mib(proc.pid)
        finally:
            peer_bench._stop(proc)
    # gpu.use_gpu = false is the CPU alone: no CUDA context, no prompt batch sent to the GPU.
    checks.add("cpu-only", smi["cpu"] is None, f"nvidia-smi lists the use_gpu=false server with {smi['cpu']} MiB "
               f"(the GPU one: {smi['gpu']} MiB)")
    same = sum(a == b for a, b in zip(results["gpu"][1].texts, results["cpu"][1].texts))
    out = {f"{label}_tok_s_c{c}": r.tok_s for label, by in results.items() for c, r in by.items()}
    out.update({"ratio_c1": out["gpu_tok_s_c1"] / out["cpu_tok_s_c1"], "ratio_c4": out["gpu_tok_s_c4"] / out["cpu_tok_s_c4"],
                "identical_replies": same, "prompts": len(prompts)})
    checks.add("cpu", out["ratio_c1"] > 0, f"GPU {out['gpu_tok_s_c1']:.0f} / CPU {out['cpu_tok_s_c1']:.0f} tok/s at 1 stream "
               f"({out['ratio_c1']:.2f}x), {out['gpu_tok_s_c4']:.0f} / {out['cpu_tok_s_c4']:.0f} at 4 "
               f"({out['ratio_c4']:.2f}x); identical greedy replies {same}/{len(prompts)}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--max-tokens", type=int, default=peer_bench.MAX_TOKENS)
    p.add_argument("--no-cpu", action="store_true", help="skip the CPU comparison")
    p.add_argument("--log", default="", help="file for the servers' output (default: discarded)")
    args = p.parse_args(argv)
    checks = Checks()
    res: dict = {}
    log = open(args.log, "ab") if args.log else subprocess.DEVNULL
    try:
        check_build(checks)
        check_setup(checks)
        res["serve"] = check_serve(checks, peer_bench.PROMPTS, args.max_tokens, log)
        if not args.no_cpu:
            res["cpu_vs_gpu"] = compare_cpu(checks, peer_bench.PROMPTS, args.max_tokens, log)
    finally:
        if log is not subprocess.DEVNULL:
            log.close()
    res["checks"] = checks.rows
    print(json.dumps(res))
    return 0 if checks.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
