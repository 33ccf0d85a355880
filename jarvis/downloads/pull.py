"""One pull: a file from a hub repo into the user's models folder.

plan (list the repo, pick the file, HEAD it, check the disk) -> fetch into <data>/downloads,
resuming what an earlier attempt left -> verify (SHA-256, GGUF header) -> move into
<data>/models in one rename. The partial folder sits beside the models folder, never inside it,
so the catalog never sees half a file. A failed check removes the file; a broken connection
keeps it for the next attempt, which resumes only if the hub still serves the same file (its
ETag, commit and size are kept beside the partial file).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from jarvis.downloads import hub
from jarvis.downloads.errors import DownloadError, DownloadStopped, NotEnoughDisk
from jarvis.downloads.names import check_plain_name
from jarvis.downloads.transfer import ConnectionLost, Control, Progress, fetch
from jarvis.downloads.verify import check_gguf, check_sha256

log = logging.getLogger("jarvis.downloads")
_SHA256_HEX = set("0123456789abcdef")


@dataclass(frozen=True)
class Plan:
    repo: str
    revision: str
    path: str          # the file inside the repo
    name: str          # the file name in the models folder
    url: str
    size: int
    sha256: str
    etag: str | None
    commit: str | None
    target: Path
    partial: Path
    already_installed: bool = False

    def identity(self) -> dict:
        """What a resumed download must match: the same bytes on the hub."""
        return {"repo": self.repo, "path": self.path, "size": self.size, "sha256": self.sha256, "etag": self.etag}


def partial_folder(settings) -> Path:
    return settings.user_models_path.parent / "downloads"


class Pull:
    """States: new, listing, downloading, verifying, done, paused, cancelled, failed."""

    def __init__(self, settings, repo: str, file: str | None = None, *, quant: str | None = None,
                 revision: str = "main", expected_sha256: str | None = None) -> None:
        self.settings = settings
        self.expected_sha256 = expected_sha256  # from the curated list, when it knows one
        self.repo, self.file, self.quant, self.revision = repo, file, quant, revision
        self.progress = Progress()
        self.control = Control()
        self.state = "new"
        self.error: str | None = None
        self.plan: Plan | None = None
        self.refused_names: list[str] = []

    @property
    def label(self) -> str:
        return f"{self.repo}/{self.plan.path if self.plan else self.file or self.quant or '?'}"

    # ---- plan ------------------------------------------------------------------------------
    def prepare(self) -> Plan:
        self.state = "listing"
        commit, files, self.refused_names = hub.list_gguf(self.repo, self.revision)
        for name in self.refused_names:
            log.warning("%s lists the file %r, which is a path out of its folder: ignored", self.repo, name)
        remote = hub.choose(self.repo, files, self.file, self.quant, self.refused_names)
        head = hub.head(self.repo, remote, commit or self.revision)
        size = head.size if head.size is not None else remote.size
        sha = remote.sha256 or (head.etag if head.etag and len(head.etag) == 64 and set(head.etag) <= _SHA256_HEX
                                else None)
        if size is None or sha is None:
            raise DownloadError(f"The hub gives no {'size' if size is None else 'SHA-256'} for {self.repo}/"
                                f"{remote.path}, so it cannot be verified; JARVIS installs verified files only.")
        if self.expected_sha256 and self.expected_sha256.lower() != sha:
            raise DownloadError(f"{self.repo}/{remote.path} on the hub (SHA-256 {sha[:12]}…) is not the file the "
                                f"curated list names ({self.expected_sha256[:12]}…); it was not downloaded.")
        models = self.settings.user_models_path
        name = check_plain_name(remote.name)
        plan = Plan(self.repo, self.revision, remote.path, name, head.url, size, sha, head.etag, head.commit,
                    target=models / name, partial=partial_folder(self.settings) / f"{name}.part",
                    already_installed=(models / name).exists())
        self.plan = plan
        if not plan.already_installed:
            self._check_disk(plan)
        return plan

    def _check_disk(self, plan: Plan) -> None:
        """Before any byte: the rest of the file must fit and leave downloads.keep_free_mb free."""
        keep_free = int(self.settings.downloads.keep_free_mb * 2**20)
        plan.partial.parent.mkdir(parents=True, exist_ok=True)
        plan.target.parent.mkdir(parents=True, exist_ok=True)
        have = plan.partial.stat().st_size if self._resumable(plan) else 0
        need = plan.size - have
        free = shutil.disk_usage(plan.partial.parent).free
        if free - need < keep_free:
            raise NotEnoughDisk(plan.partial.parent, need, free, keep_free)
        if os.stat(plan.partial.parent).st_dev != os.stat(plan.target.parent).st_dev:  # a copy, not a rename
            free = shutil.disk_usage(plan.target.parent).free
            if free - plan.size < keep_free:
                raise NotEnoughDisk(plan.target.parent, plan.size, free, keep_free)

    @staticmethod
    def _sidecar(plan: Plan) -> Path:
        return plan.partial.with_name(plan.partial.name + ".json")

    def _resumable(self, plan: Plan) -> bool:
        """A partial file is reused only for the very same hub file."""
        try:
            kept = json.loads(self._sidecar(plan).read_text())
        except (OSError, ValueError):
            kept = None
        if kept == plan.identity() and plan.partial.is_file():
            return True
        self._discard(plan)
        return False

    def _discard(self, plan: Plan) -> None:
        plan.partial.unlink(missing_ok=True)
        self._sidecar(plan).unlink(missing_ok=True)

    def discard(self) -> None:
        """Remove what a stopped pull left beside the models folder."""
        if self.plan is not None:
            self._discard(self.plan)

    # ---- run -------------------------------------------------------------------------------
    def run(self, retries: int = 3) -> Path:
        """Blocking: call it from a worker thread (the desktop) or the CLI. Returns the model file."""
        from filelock import FileLock, Timeout

        try:
            plan = self.plan or self.prepare()
            if plan.already_installed:
                self.state = "done"
                return plan.target
            lock = FileLock(str(plan.partial) + ".lock")
            try:
                lock.acquire(timeout=0)
            except Timeout:
                raise DownloadError(f"{plan.name} is already being downloaded by another JARVIS.") from None
            try:
                return self._fetch_verify_install(plan, retries)
            finally:
                lock.release()
                Path(lock.lock_file).unlink(missing_ok=True)
        except DownloadStopped as e:
            self.state = "cancelled" if e.cancelled else "paused"
            self.error = str(e)
            raise
        except OSError as e:  # the partial or models folder cannot be written (full, read-only)
            self.state = "failed"
            self.error = f"Cannot write {e.filename or 'the download'}: {e.strerror or e}."
            raise DownloadError(self.error) from e
        except Exception as e:
            self.state, self.error = "failed", str(e)
            raise

    def _fetch_verify_install(self, plan: Plan, retries: int) -> Path:
        self._resumable(plan)  # drops a partial file of some other version of the file
        self._sidecar(plan).write_text(json.dumps(plan.identity()))
        self.state = "downloading"
        attempt = 0
        while True:
            try:
                sha = fetch(plan.url, plan.partial, size=plan.size, headers=hub.auth_headers(plan.url),
                            progress=self.progress, control=self.control)
                break
            except ConnectionLost as e:
                attempt += 1
                if attempt > retries:
                    raise
                log.warning("%s; retry %d of %d", e, attempt, retries)
                if self.control.wait(min(2 ** attempt, 30)):
                    raise DownloadStopped(self.control.cancelled) from None
            except DownloadStopped as e:
                if e.cancelled:
                    self._discard(plan)
                raise
        self.state = "verifying"
        try:
            check_sha256(plan.partial, sha, plan.sha256)
            check_gguf(plan.partial)
            self._install(plan)
        except BaseException:
            self._discard(plan)
            raise
        self._sidecar(plan).unlink(missing_ok=True)
        self.state = "done"
        return plan.target

    @staticmethod
    def _install(plan: Plan) -> None:
        """One rename into the models folder (a copy to a hidden name first across file systems)."""
        with open(plan.partial, "rb+") as f:
            os.fsync(f.fileno())
        if plan.target.exists():
            raise DownloadError(f"{plan.target} appeared while downloading; the download was not installed.")
        try:
            os.replace(plan.partial, plan.target)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            hidden = plan.target.with_name(f".{plan.name}.incoming")
            shutil.copyfile(plan.partial, hidden)
            os.replace(hidden, plan.target)
            plan.partial.unlink()

    def snapshot(self) -> dict:
        p = self.progress
        return {"label": self.label, "state": self.state, "error": self.error, "done": p.done, "total": p.total,
                "speed": p.speed(), "eta_s": p.eta_s(), **({"plan": asdict(self.plan)} if self.plan else {})}
