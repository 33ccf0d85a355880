"""Can the desktop window open here? Checked before any Qt object exists.

Qt aborts the whole process (SIGABRT, "could not load the Qt platform plugin") when its platform
plugin cannot load its system libraries or cannot reach the display, and nothing after that can
explain it to the user. So the launcher asks first, without importing Qt: which platform Qt
will pick, whether that plugin's shared libraries resolve (`ldd`, else one trial `dlopen`), and
whether the display server answers. `jarvis doctor` prints the same verdict.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Shared libraries Qt's xcb plugin needs that a fresh desktop install may lack: soname ->
# (Debian/Ubuntu package, Fedora/RHEL package). Qt's own libraries travel inside PySide6.
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-xinerama.so.0": ("libxcb-xinerama0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-glx.so.0": ("libxcb-glx0", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libwayland-client.so.0": ("libwayland-client0", "libwayland-client"),
    "libwayland-cursor.so.0": ("libwayland-cursor0", "libwayland-cursor"),
    "libwayland-egl.so.1": ("libwayland-egl1", "libwayland-egl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libGLX.so.0": ("libglx0", "libglvnd-glx"),
}
NEEDS_NO_DISPLAY = {"offscreen", "minimal", "vnc", "eglfs", "linuxfb"}


@dataclass(frozen=True)
class DesktopCheck:
    """The verdict: `ok`, else `problem` says what is wrong and `advice` how to fix it."""

    platform: str
    plugin: Path | None = None
    missing_libraries: list[str] = field(default_factory=list)
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem

    @property
    def advice(self) -> str:
        if not self.missing_libraries:
            return ""
        debian = sorted({PACKAGES.get(lib, (lib, lib))[0] for lib in self.missing_libraries})
        fedora = sorted({PACKAGES.get(lib, (lib, lib))[1] for lib in self.missing_libraries})
        return (f"Install them with:\n  sudo apt-get install {' '.join(debian)}      (Debian, Ubuntu)\n"
                f"  sudo dnf install {' '.join(fedora)}      (Fedora, RHEL)")

    def message(self) -> str:
        return self.problem + (f"\n{self.advice}" if self.advice else "")


def chosen_platform(environ: dict[str, str]) -> str:
    """The platform plugin Qt will try first, by Qt's own rules on Linux."""
    forced = environ.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if forced:
        return forced
    if environ.get("XDG_SESSION_TYPE") == "wayland" and environ.get("WAYLAND_DISPLAY"):
        return "wayland"
    return "xcb"


def plugins_dir() -> Path | None:
    spec = importlib.util.find_spec("PySide6")  # finds the package without importing Qt
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "Qt" / "plugins" / "platforms"
    return folder if folder.is_dir() else None


def missing_libraries(plugin: Path) -> list[str]:
    """Shared libraries `plugin` needs that the dynamic loader cannot find."""
    ldd = shutil.which("ldd")
    if ldd:
        try:
            out = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        found = re.findall(r"^\s*(\S+) => not found", out, flags=re.M)
        if found or "=>" in out:
            return sorted(set(found))
    try:  # no ldd: one trial load names the first missing library only
        ctypes.CDLL(str(plugin))
    except OSError as e:
        name = re.match(r"(\S+?): cannot open shared object file", str(e))
        return [name.group(1)] if name else [str(e)]
    return []


def _x_display_reachable(display: str) -> bool:
    """Does an X server answer at DISPLAY (":1", "host:0.0", "unix/:0")?"""
    m = re.fullmatch(r"(?:(unix)/)?([^:]*):(\d+)(?:\.\d+)?", display.strip())
    if not m:
        return False
    proto, host, number = m.groups()
    if proto == "unix" or host in ("", "unix"):
        # The socket file, then the abstract name some X servers listen on only.
        for address in (f"/tmp/.X11-unix/X{number}", f"\0/tmp/.X11-unix/X{number}"):
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(2)
                    s.connect(address)
                    return True
            except OSError:
                continue
        return False
    try:
        socket.create_connection((host, 6000 + int(number)), timeout=2).close()
        return True
    except OSError:
        return False


def _wayland_reachable(environ: dict[str, str]) -> bool:
    name = environ.get("WAYLAND_DISPLAY", "")
    path = Path(name) if os.path.isabs(name) else Path(environ.get("XDG_RUNTIME_DIR", "/nonexistent")) / name
    return bool(name) and path.exists()


def check_desktop(environ: dict[str, str] | None = None) -> DesktopCheck:
    environ = dict(os.environ if environ is None else environ)
    if not sys.platform.startswith("linux"):
        return DesktopCheck(platform="native")
    platform = chosen_platform(environ)
    folder = plugins_dir()
    if folder is None:
        return DesktopCheck(platform, problem="PySide6 is not installed, so the window cannot open. "
                                              "Install JARVIS with its dependencies (make run does).")
    plugin = folder / f"libq{platform}.so"
    if not plugin.is_file():
        known = sorted(p.name[4:-3] for p in folder.glob("libq*.so"))
        return DesktopCheck(platform, problem=f"QT_QPA_PLATFORM={platform!r}: Qt has no such platform plugin. "
                                              f"Available: {', '.join(known)}.")
    # The display first: on a server with no display, missing X libraries are beside the point.
    if platform == "wayland" and not _wayland_reachable(environ):
        return DesktopCheck(platform, plugin, problem=f"No Wayland compositor answers at "
                                                      f"WAYLAND_DISPLAY={environ.get('WAYLAND_DISPLAY', '')!r}.")
    if platform not in NEEDS_NO_DISPLAY and platform != "wayland":
        display = environ.get("DISPLAY", "")
        if not display:
            return DesktopCheck(platform, plugin, problem="No display found (DISPLAY is unset).")
        if not _x_display_reachable(display):
            return DesktopCheck(platform, plugin, problem=f"No X server answers at DISPLAY={display}.")
    missing = missing_libraries(plugin)
    if missing:
        return DesktopCheck(platform, plugin, missing,
                            problem=f"Qt's {platform} platform plugin cannot load: these system libraries are "
                                    f"missing: {', '.join(missing)}.")
    return DesktopCheck(platform, plugin)
