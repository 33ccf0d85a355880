"""llama-cpp-python's own OpenAI-compatible server (`python -m llama_cpp.server`, the [server]
extra of the pinned llama-cpp-python) on loopback: a real third-party engine for the remote
bench (jarvis/bench/remote_bench.py) and the remote tests (tests/support/remote_servers.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, headers: dict | None = None) -> None:
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as r:
                if r.status < 500:
                    return
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return
            last = e
        except OSError as e:
            last = e
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s ({last})")


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JARVIS_", "LLAMA_"))}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # llama.cpp's threads must not spin on a small machine
    return env


class LlamaCppServer:
    """`python -m llama_cpp.server` on the bundled model, as model id `alias`."""

    def __init__(self, model_path: Path, *, api_key: str | None = None, alias: str = "smol", n_ctx: int = 512,
                 embedding: bool = False):
        self.port = free_port()
        self.alias = alias
        self.api_key = api_key
        self.cmd = [sys.executable, "-m", "jarvis.bench.llama_cpp_server", "--model", str(model_path), "--model_alias", alias,
                    "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(n_ctx), "--n_threads", "1",
                    "--verbose", "False",
                    "--interrupt_requests", "False"] + (["--api_key", api_key] if api_key else []) \
            + (["--embedding", "True"] if embedding else [])
        # interrupt_requests False: concurrent requests wait their turn (by default a new one cuts the running one off)
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "LlamaCppServer":
        self.proc = subprocess.Popen(self.cmd, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_http(self.base_url + "/models", 120, self.proc,
                      headers={"Authorization": f"Bearer {self.api_key}"} if self.api_key else None)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
