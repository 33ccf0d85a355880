"""`jarvis` with no display (a server, CI, ssh) chats in the terminal instead of an invisible window."""

import subprocess
import sys

from tests.support.process import ROOT


def test_no_display_falls_back_to_the_terminal_chat(env):
    env = {k: v for k, v in env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, "-m", "ui.launcher"], env=env, input="/exit\n", text=True,
                       capture_output=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "No display found" in r.stderr and "terminal chat" in r.stderr
    assert "JARVIS on SmolLM2-135M-Instruct.Q4_1" in r.stdout
