"""The desktop's system needs are checked before Qt exists: a missing xcb library or an X server
that does not answer gives a message naming the packages, and the terminal chat, never Qt's
SIGABRT."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.support.process import ROOT
from jarvis.desktop_check import PACKAGES, DesktopCheck, check_desktop, chosen_platform, missing_libraries, plugins_dir

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Qt's platform plugins are .so files")


def _loads_in_a_child(plugin) -> tuple[bool, str]:
    """The independent oracle: can the dynamic loader load the plugin at all?"""
    r = subprocess.run([sys.executable, "-c", f"import ctypes; ctypes.CDLL({str(plugin)!r})"],
                       capture_output=True, text=True, timeout=60)
    return r.returncode == 0, r.stderr


def test_missing_libraries_agree_with_the_dynamic_loader():
    for name in ("xcb", "offscreen"):
        plugin = plugins_dir() / f"libq{name}.so"
        missing = missing_libraries(plugin)
        loads, error = _loads_in_a_child(plugin)
        assert loads == (not missing), (missing, error)
        if missing:  # the loader names the first library it could not open: one of ours
            assert any(lib in error for lib in missing), (missing, error)
            assert all(lib in PACKAGES for lib in missing), f"no package known for {missing}"


def test_the_platform_is_chosen_as_qt_chooses_it():
    assert chosen_platform({}) == "xcb"
    assert chosen_platform({"QT_QPA_PLATFORM": "offscreen"}) == "offscreen"
    assert chosen_platform({"QT_QPA_PLATFORM": "wayland;xcb"}) == "wayland"
    assert chosen_platform({"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}) == "wayland"


def test_an_x_display_nobody_serves_is_a_problem_not_an_abort():
    check = check_desktop({"DISPLAY": ":1789"})
    assert not check.ok and check.problem == "No X server answers at DISPLAY=:1789."
    assert not check_desktop({}).ok and "DISPLAY is unset" in check_desktop({}).problem


def test_a_listening_x_socket_counts_as_a_display():
    """A real AF_UNIX listener (abstract name: nothing left in /tmp) stands in for the X server:
    only the connection is what the check tests."""
    from jarvis.desktop_check import _x_display_reachable

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind("\0/tmp/.X11-unix/X1790")
        server.listen(1)
        assert _x_display_reachable(":1790") and _x_display_reachable("unix/:1790.0")
        assert not _x_display_reachable(":1791")
        assert not _x_display_reachable("not a display")
    finally:
        server.close()


def test_the_advice_names_debian_and_fedora_packages():
    check = DesktopCheck("xcb", None, ["libxcb-cursor.so.0", "libxcb-icccm.so.4"], problem="missing")
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4" in check.advice
    assert "sudo dnf install xcb-util-cursor xcb-util-wm" in check.advice


def test_offscreen_needs_no_display():
    assert check_desktop({"QT_QPA_PLATFORM": "offscreen"}).ok


def test_an_unknown_platform_lists_the_real_ones():
    check = check_desktop({"QT_QPA_PLATFORM": "nonesuch"})
    assert not check.ok and "offscreen" in check.problem and "xcb" in check.problem


def test_jarvis_on_a_display_it_cannot_open_explains_and_chats_in_the_terminal(env):
    """The user's case: DISPLAY points at no X server (or this machine lacks xcb libraries).
    Before this check Qt aborted with SIGABRT (exit 134) and JARVIS said nothing."""
    env = {k: v for k, v in env.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "XDG_SESSION_TYPE")}
    env["DISPLAY"] = ":1789"
    r = subprocess.run([sys.executable, "-m", "ui.launcher"], env=env, input="/exit\n", text=True,
                       capture_output=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "terminal chat" in r.stderr
    assert "No X server answers at DISPLAY=:1789" in r.stderr
    assert "JARVIS on SmolLM2-135M-Instruct.Q4_1" in r.stdout


def test_doctor_reports_the_desktop(env):
    env = {**env, "DISPLAY": ":1789"}
    env.pop("QT_QPA_PLATFORM", None)
    env.pop("WAYLAND_DISPLAY", None)
    r = subprocess.run([sys.executable, "-m", "jarvis", "doctor"], env=env, text=True, capture_output=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "Desktop          cannot open a window" in r.stdout
