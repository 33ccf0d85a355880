"""Errors of the download side. Each says what went wrong and what the user can do."""

from __future__ import annotations

from jarvis.errors import InvalidRequest, JarvisError


class DownloadError(JarvisError):
    """A pull that cannot go on: the hub refused, a check failed, the disk is full, ..."""

    http_status = 502
    code = "download_error"


class HubUnreachable(DownloadError):
    def __init__(self, endpoint: str, reason: str):
        self.endpoint = endpoint
        super().__init__(f"Cannot reach the model hub at {endpoint} ({reason}). Check the network, "
                         "or point HF_ENDPOINT at a mirror.")


class NotEnoughDisk(DownloadError):
    def __init__(self, folder: object, needed: int, free: int, keep_free: int):
        self.needed, self.free = needed, free
        gb = lambda n: f"{n / 1e9:.2f} GB"  # noqa: E731
        super().__init__(f"Not enough disk space in {folder}: the download needs {gb(needed)} and "
                         f"{gb(keep_free)} must stay free (downloads.keep_free_mb), but only {gb(free)} is free. "
                         "Free some space or lower downloads.keep_free_mb.")


class DownloadStopped(DownloadError):
    """Paused or cancelled by the user; a paused download keeps its partial file."""

    def __init__(self, cancelled: bool):
        self.cancelled = cancelled
        super().__init__("The download was cancelled." if cancelled else
                         "The download was paused; start it again to resume.")


class UnsafeName(InvalidRequest):
    """A model or file name that is a path (../x, /etc/x, a symlink leaving the folder)."""
