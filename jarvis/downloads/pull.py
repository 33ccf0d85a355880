"""One pull: a file from a hub repo into the user's models folder.

plan (list the repo, pick the file, HEAD it, check what the models folder holds and the disk) ->
take the file's lock -> fetch into <data>/downloads, resuming what an earlier attempt left ->
verify (SHA-256, GGUF header) -> move into <data>/models in one rename. The partial folder sits
beside the models folder, never inside it, so the catalog never sees half a file.

A partial file is keyed by repo + revision + path (two repos publish files of the same name), and
nothing deletes one without holding its lock. A failed check removes the file; a broken
connection, a busy server or an expired link keeps it for the next attempt, which resumes only
if the hub still serves the same file (identity kept beside the partial file; the byte server's
ETag is checked with If-Range). A failed install keeps the verified file for a retry of the
install alone. The lock files stay: deleting one after release would let two pulls hold it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from jarvis.downloads import hub
from jarvis.downloads.errors import DownloadError, DownloadStopped, NotEnoughDisk
from jarvis.downloads.names import check_plain_name
from jarvis.downloads.transfer import (CHUNK, Control, FileChanged, LinkExpired, Progress, Retryable, StaleRange,
                                       TooLong, fetch)
from jarvis.downloads.verify import check_gguf, check_sha256

log = logging.getLogger("jarvis.downloads")
_SHA256_HEX = set("0123456789abcdef")


def backoff_s(attempt: int) -> float:
    """The wait before retry `attempt` (1, 2, ...): 2 s, 4 s, 8 s, ... at most 30 s."""
    return min(2.0 ** attempt, 30.0)


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
        return {"repo": self.repo, "revision": self.revision, "path": self.path, "size": self.size,
                "sha256": self.sha256, "etag": self.etag}

    @property
    def label(self) -> str:
        return f"{self.repo}/{self.path}"

    @property
    def sidecar(self) -> Path:
        return self.partial.with_name(self.partial.name + ".json")

    @property
    def lock(self) -> Path:
        return self.partial.parent / "locks" / (self.partial.name.removesuffix(".part") + ".lock")


def partial_folder(settings) -> Path:
    return settings.user_models_path.parent / "downloads"


def partial_path(settings, repo: str, revision: str, path: str, name: str) -> Path:
    """<data>/downloads/NAME.KEY.part, KEY from repo + revision + path: one partial file per hub file."""
    key = hashlib.sha256(f"{repo}\n{revision}\n{path}".encode()).hexdigest()[:16]
    stem = name.removesuffix(".gguf").encode()[:120].decode("utf-8", "ignore")  # room for the suffixes
    return partial_folder(settings) / f"{stem}.{key}.part"


def same_file(path: Path, size: int, sha256: str) -> bool:
    """Whether `path` holds exactly these bytes (size first: hashing is skipped when it differs)."""
    try:
        if path.stat().st_size != size:
            return False
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(CHUNK):
                h.update(block)
    except OSError:
        return False
    return h.hexdigest() == sha256.lower()


class Pull:
    """States: new, listing, downloading, verifying, done, paused, cancelled, failed."""

    def __init__(self, settings, repo: str, file: str | None = None, *, quant: str | None = None,
                 revision: str = "main", expected_sha256: str | None = None,
                 expected_size: int | None = None) -> None:
        self.settings = settings
        # Pins, from the curated list; when none is given the list is asked for this repo and file.
        self.expected_sha256, self.expected_size = expected_sha256, expected_size
        self.repo, self.file, self.quant, self.revision = repo, file, quant, revision
        self.progress = Progress()
        self.control = Control()
        self.state = "new"
        self.error: str | None = None
        self.plan: Plan | None = None
        self.refused_names: dict[str, str] = {}

    @property
    def label(self) -> str:
        return f"{self.repo}/{self.plan.path if self.plan else self.file or self.quant or '?'}"

    # ---- plan ------------------------------------------------------------------------------
    def prepare(self) -> Plan:
        self.state = "listing"
        commit, files, self.refused_names = hub.list_gguf(self.repo, self.revision)
        for name, why in self.refused_names.items():
            log.warning("%s lists the file %r: ignored (%s)", self.repo, name, why)
        remote = hub.choose(self.repo, files, self.file, self.quant, self.refused_names)
        head = hub.head(self.repo, remote, commit or self.revision)
        size = head.size if head.size is not None else remote.size
        sha = remote.sha256 or (head.etag if head.etag and len(head.etag) == 64 and set(head.etag) <= _SHA256_HEX
                                else None)
        if size is None or sha is None:
            raise DownloadError(f"The hub gives no {'size' if size is None else 'SHA-256'} for {self.repo}/"
                                f"{remote.path}, so it cannot be verified; JARVIS installs verified files only.")
        self._check_pins(remote.path, size, sha)
        models = self.settings.user_models_path
        name = check_plain_name(remote.name)
        plan = Plan(self.repo, self.revision, remote.path, name, head.url, size, sha, head.etag, head.commit,
                    target=models / name, partial=partial_path(self.settings, self.repo, self.revision,
                                                               remote.path, name))
        plan = replace(plan, already_installed=self._installed(plan, before=True))
        self.plan = plan
        if not plan.already_installed:
            self._check_disk(plan)
        return plan

    def _check_pins(self, path: str, size: int, sha: str) -> None:
        """The curated list's size and SHA-256, where it has them (the hub's LFS SHA-256 is checked anyway)."""
        pin_size, pin_sha = self.expected_size, self.expected_sha256
        if pin_size is None and pin_sha is None and self.revision == "main":
            from jarvis.downloads.curated import pins_for

            pin_size, pin_sha = pins_for(self.repo, path)
        where = f"{self.repo}/{path} on the hub"
        if pin_size is not None and pin_size != size:
            raise DownloadError(f"{where} is {size:,} bytes, not the file the curated list names ({pin_size:,} "
                                "bytes); it was not downloaded. The repository may have changed the file.")
        if pin_sha and pin_sha.lower() != sha:
            raise DownloadError(f"{where} (SHA-256 {sha[:12]}…) is not the file the curated list names "
                                f"({pin_sha[:12]}…); it was not downloaded.")

    def _installed(self, plan: Plan, *, before: bool) -> bool:
        """True when the models folder already has this very file (same size and SHA-256); False when
        it has nothing of that name. Another file of that name is never replaced: that is an error."""
        if not (plan.target.exists() or plan.target.is_symlink()):
            return False
        if same_file(plan.target, plan.size, plan.sha256):
            return True
        stem = plan.name.removesuffix(".gguf")
        kept = "" if before else (" The verified download is kept: run the same pull again after that and "
                                  "it is installed without downloading it again.")
        raise DownloadError(f"Your models folder already has {plan.name}, and it is a different file (another "
                            f"repository or revision, or a damaged copy), so {plan.label} was not installed. "
                            f"JARVIS replaces nothing you have: delete it first (`jarvis rm {stem}`).{kept}")

    def _check_disk(self, plan: Plan) -> None:
        """Before any byte: the rest of the file must fit and leave downloads.keep_free_mb free."""
        keep_free = int(self.settings.downloads.keep_free_mb * 2**20)
        plan.partial.parent.mkdir(parents=True, exist_ok=True)
        plan.target.parent.mkdir(parents=True, exist_ok=True)
        have = plan.partial.stat().st_size if self._kept(plan) is not None else 0  # reads only: no lock held
        need = plan.size - have
        free = shutil.disk_usage(plan.partial.parent).free
        if free - need < keep_free:
            raise NotEnoughDisk(plan.partial.parent, need, free, keep_free)
        if os.stat(plan.partial.parent).st_dev != os.stat(plan.target.parent).st_dev:  # a copy, not a rename
            free = shutil.disk_usage(plan.target.parent).free
            if free - plan.size < keep_free:
                raise NotEnoughDisk(plan.target.parent, plan.size, free, keep_free)

    # ---- the partial file and its lock -----------------------------------------------------
    @staticmethod
    def _kept(plan: Plan) -> dict | None:
        """The sidecar of a partial file of this very hub file, or None."""
        try:
            kept = json.loads(plan.sidecar.read_text())
        except (OSError, ValueError):
            return None
        ok = isinstance(kept, dict) and kept.get("identity") == plan.identity() and plan.partial.is_file()
        return kept if ok else None

    @staticmethod
    def _remember(plan: Plan, validator: str | None) -> None:
        """Written before the first byte of a fresh start: the identity, and the byte server's ETag."""
        tmp = plan.sidecar.with_name(plan.sidecar.name + ".tmp")
        tmp.write_text(json.dumps({"identity": plan.identity(), "validator": validator}))
        os.replace(tmp, plan.sidecar)

    @staticmethod
    def _discard(plan: Plan) -> None:
        """Only with the lock held."""
        plan.partial.unlink(missing_ok=True)
        plan.sidecar.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self, plan: Plan):
        """This hub file's lock (across processes), or a clear error when another pull holds it."""
        from filelock import FileLock, Timeout

        plan.lock.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(plan.lock))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise DownloadError(f"{plan.label} is already being downloaded by another JARVIS.") from None
        try:
            yield
        finally:
            lock.release()  # the file stays: unlinking it would let a waiter and a newcomer both hold it

    def discard(self) -> None:
        """Remove what a stopped pull left beside the models folder (not while another pull holds it)."""
        if self.plan is None:
            return
        try:
            with self._locked(self.plan):
                self._discard(self.plan)
        except DownloadError:
            log.info("%s is being downloaded by another pull: its partial file stays", self.plan.label)

    # ---- run -------------------------------------------------------------------------------
    def run(self, retries: int = 3) -> Path:
        """Blocking: call it from a worker thread (the desktop) or the CLI. Returns the model file."""
        try:
            plan = self.plan or self.prepare()
            if plan.already_installed:
                self.state = "done"
                return plan.target
            with self._locked(plan):
                return self._fetch_verify_install(plan, retries)
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
        plan, sha = self._fetch(plan, retries)
        if plan.already_installed:  # a re-plan found the new version already in the models folder
            self.state = "done"
            return plan.target
        self.state = "verifying"
        try:
            check_sha256(plan.partial, sha, plan.sha256)
            check_gguf(plan.partial)
        except DownloadError:
            self._discard(plan)
            raise
        self._install(plan)
        plan.sidecar.unlink(missing_ok=True)
        self.state = "done"
        return plan.target

    def _fetch(self, plan: Plan, retries: int) -> tuple[Plan, str]:
        """The bytes, with retries: a dropped connection or a busy server waits and resumes; an expired
        link is renewed by the hub; a changed file is planned again and fetched whole. A cancel at any
        point (in the retry wait too) removes the partial file."""
        attempt, renewed = 0, False
        try:
            while True:
                kept = self._kept(plan)
                if kept is None:  # a part of some other version of the file (or none): start clean
                    self._discard(plan)
                    self._remember(plan, None)
                    kept = {}
                self.state = "downloading"
                try:
                    sha = fetch(plan.url, plan.partial, size=plan.size, sha256=plan.sha256,
                                headers=hub.auth_headers(plan.url), progress=self.progress, control=self.control,
                                label=plan.label, validator=kept.get("validator"),
                                on_start=lambda etag, p=plan: self._remember(p, etag))
                    return plan, sha
                except LinkExpired:
                    if renewed:  # a fresh link from the hub is refused too: not an expiry
                        raise
                    renewed = True
                    plan = self._renew_link(plan)
                    if plan.already_installed:
                        return plan, plan.sha256
                    continue
                except TooLong:
                    self._discard(plan)
                    raise
                except (FileChanged, StaleRange, Retryable) as e:
                    renewed = False
                    attempt += 1
                    if attempt > retries:
                        if not isinstance(e, Retryable):
                            self._discard(plan)
                        raise
                    if isinstance(e, FileChanged):
                        log.warning("%s; fetching it again whole", e)
                        self._discard(plan)
                        plan = self._plan_again(plan)
                        if plan.already_installed:
                            return plan, plan.sha256
                    elif isinstance(e, StaleRange):
                        log.warning("%s; starting over", e)
                        self._discard(plan)
                    else:
                        log.warning("%s; retry %d of %d", e, attempt, retries)
                        if self.control.wait(backoff_s(attempt)):
                            raise DownloadStopped(self.control.cancelled) from None
        except DownloadStopped as e:
            if e.cancelled:
                self._discard(plan)
            raise

    def _plan_again(self, plan: Plan) -> Plan:
        """What the hub says now about the same path (its partial key, and so its lock, are the same)."""
        self.file, self.quant = plan.path, None
        new = self.prepare()
        self.state = "downloading"
        return new

    def _renew_link(self, plan: Plan) -> Plan:
        """A fresh (signed) URL from the hub; if the hub now describes another file, plan it again."""
        log.warning("the download link for %s was refused (expired?); asking the hub for a fresh one", plan.label)
        remote = hub.RemoteFile(plan.path, plan.name, plan.size, plan.sha256)
        head = hub.head(plan.repo, remote, plan.commit or plan.revision)
        if (head.etag, head.size if head.size is not None else plan.size) != (plan.etag, plan.size):
            self._discard(plan)
            return self._plan_again(plan)
        self.plan = replace(plan, url=head.url)
        return self.plan

    def _install(self, plan: Plan) -> None:
        """Into the models folder without ever replacing a file there (across file systems: a copy to a
        hidden name there first, removed whatever happens). A failure keeps the verified file for a
        retry of the install alone."""
        try:
            with open(plan.partial, "rb+") as f:
                os.fsync(f.fileno())
            try:
                try:
                    _place(plan.partial, plan.target)
                except OSError as e:
                    if e.errno != errno.EXDEV:
                        raise
                    incoming = plan.target.with_name(f".{plan.partial.stem}.incoming")
                    try:
                        shutil.copyfile(plan.partial, incoming)
                        with open(incoming, "rb+") as f:
                            os.fsync(f.fileno())
                        _place(incoming, plan.target)
                    finally:
                        incoming.unlink(missing_ok=True)
                    plan.partial.unlink()
            except FileExistsError:  # another pull put a file of that name there meanwhile
                if not self._installed(plan, before=False):  # raises unless it is this very file
                    raise
                self._discard(plan)
        except OSError as e:
            raise DownloadError(f"{plan.label} was downloaded and verified, but could not be put in "
                                f"{plan.target.parent}: {e.strerror or e}. It is kept beside the models folder: "
                                "run the same pull again (or Resume) to install it without downloading it "
                                "again.") from e


    def snapshot(self) -> dict:
        p = self.progress
        return {"label": self.label, "state": self.state, "error": self.error, "done": p.done, "total": p.total,
                "speed": p.speed(), "eta_s": p.eta_s(), **({"plan": asdict(self.plan)} if self.plan else {})}


def _place(src: Path, target: Path) -> None:
    """Move `src` to `target` on one file system, failing (FileExistsError) if `target` exists: a hard
    link cannot replace a file, so two pulls of one name never overwrite each other. Where the file
    system has no hard links, a check and a rename (a narrow window)."""
    try:
        os.link(src, target)
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno == errno.EXDEV:
            raise
        if target.exists() or target.is_symlink():
            raise FileExistsError(errno.EEXIST, "File exists", str(target)) from None
        os.replace(src, target)
        return
    os.unlink(src)
