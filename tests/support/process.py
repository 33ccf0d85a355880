"""Running JARVIS as a user would: `python -m jarvis ...` from the repository root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_jarvis(args: list[str], env: dict[str, str], input: str | None = None, timeout: float = 240):
    return subprocess.run([sys.executable, "-m", "jarvis", *args], env=env, input=input, text=True,
                          capture_output=True, timeout=timeout, cwd=ROOT)
