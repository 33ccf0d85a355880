"""Pulls against the faults a real network and a real disk produce, each made deterministic by the
loopback hub (tests/hub_server.py): two repos publishing the same file name at once, a cancel in
the retry wait, an install that fails after verification, a body longer than the file, a file
that changes mid-resume, an expired CDN link, 5xx, 416, hostile and awkward file names, a lock
file someone is waiting on."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from jarvis.cli import main
from jarvis.downloads.background import BackgroundPull
from jarvis.downloads.errors import DownloadError, DownloadStopped
from jarvis.downloads.pull import Pull
from jarvis.downloads.transfer import Control
from tests.support.until import until
from tests.hub_server import FILE, REPO, HubFile, gguf_file, hub  # noqa: F401 (fixtures)

OTHER_REPO = "other-org/Tiny-Chat-GGUF"  # publishes a file of the same name, with other bytes


def leftovers(settings) -> list[str]:
    """What a pull left in the partial folder (the lock files that must stay are not leftovers)."""
    folder = settings.user_models_path.parent / "downloads"
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.endswith(".lock"))


def models_folder(settings) -> list[str]:
    folder = settings.user_models_path
    return sorted(os.listdir(folder)) if folder.exists() else []


@pytest.fixture
def no_backoff(monkeypatch):
    """Retries go at once: the wait itself is tested through Control, not by sleeping."""
    monkeypatch.setattr("jarvis.downloads.pull.backoff_s", lambda attempt: 0.0, raising=False)


@pytest.fixture
def other_file(gguf_file) -> HubFile:
    """Another valid GGUF (the bundled one with padding after its tensors): other bytes, same header."""
    return HubFile(gguf_file.data + bytes(4096))


# ---- 1. a second pull never deletes a running download's file ---------------------------------
def test_a_pull_of_the_same_name_from_another_repo_leaves_the_running_one_alone(hub, gguf_file, other_file,
                                                                                 settings, capsys):
    hub.repos[OTHER_REPO] = {FILE: other_file}
    half = len(gguf_file.data) // 2
    hub.hold(half, path=f"/{REPO}/")  # only the first repo's bytes wait
    first = BackgroundPull(Pull(settings, REPO, FILE), retries=0)
    first.start()
    try:
        until(lambda: first.pull.progress.done == half)
        partial = first.pull.plan.partial
        # What is on disk now: up to half (the writer's file buffer may hold the last block until
        # its next write, which the hub holds back), and nothing moves it while it waits.
        held = partial.stat().st_size
        assert 0 < held <= half
        assert main(["pull", OTHER_REPO, FILE]) == 0  # runs beside it, to the end
        assert (settings.user_models_path / FILE).read_bytes() == other_file.data
        assert partial.stat().st_size == held  # the first download's file is still there, untouched
    finally:
        hub.release()
        first.join(60)
    # The first finishes, is verified, and finds the name taken by another file: it says so, and
    # keeps its verified download rather than replacing a file the user has.
    assert first.pull.state == "failed" and "different file" in first.pull.error
    assert (settings.user_models_path / FILE).read_bytes() == other_file.data
    assert partial.stat().st_size == len(gguf_file.data)


# ---- 2. cancel during the retry wait --------------------------------------------------------------
class CancelInTheRetryWait(Control):
    """The user presses Cancel exactly while the pull waits before its next attempt."""

    def wait(self, seconds: float) -> bool:
        self.cancel()
        return super().wait(seconds)


def test_cancel_during_the_retry_wait_leaves_nothing(hub, gguf_file, settings):
    hub.drop_at = len(gguf_file.data) // 2
    pull = Pull(settings, REPO, FILE)
    pull.control = CancelInTheRetryWait()
    with pytest.raises(DownloadStopped):
        pull.run(retries=3)
    assert pull.state == "cancelled"
    assert leftovers(settings) == [] and models_folder(settings) == []


# ---- 3. a failed install keeps the verified download ---------------------------------------------
def test_a_failed_install_keeps_the_verified_download_for_a_retry(hub, gguf_file, settings, monkeypatch, capsys):
    models = settings.user_models_path

    def other_file_system(real):  # the models folder is on another disk (no rename, no hard link there)...
        def move(src, dst, *args, **kwargs):
            if Path(dst).parent == models and Path(src).parent != models:
                raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))
            return real(src, dst, *args, **kwargs)
        return move

    def disk_full(src, dst, *args, **kwargs):  # ... and that disk fills up half way through the copy
        with open(src, "rb") as s, open(dst, "wb") as d:
            d.write(s.read(4096))
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    with monkeypatch.context() as faults:
        faults.setattr(os, "replace", other_file_system(os.replace))
        faults.setattr(os, "link", other_file_system(os.link))
        faults.setattr(shutil, "copyfile", disk_full)
        assert main(["pull", REPO, FILE]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "run the same pull again" in err.lower()
    assert models_folder(settings) == []  # no hidden half copy left among the user's models
    assert leftovers(settings)            # the verified download is kept

    gets = len(hub.gets())
    assert main(["pull", REPO, FILE]) == 0  # the install alone is retried: no byte fetched again
    assert len(hub.gets()) == gets
    assert (models / FILE).read_bytes() == gguf_file.data
    assert leftovers(settings) == []


# ---- 4. a body longer than the file -----------------------------------------------------------------
def test_a_body_longer_than_the_file_is_cut_at_its_size(hub, gguf_file, settings, capsys):
    hub.overlong = 3 * 1024 * 1024
    written = []
    pull = Pull(settings, REPO, FILE)
    with pytest.raises(DownloadError, match="the server sent more than the file's size"):
        try:
            pull.run(retries=2)
        finally:
            written.append(pull.progress.done)
    assert written == [len(gguf_file.data)]  # not one byte past the size reached the disk
    assert len(hub.gets()) == 1               # not retried: the server is wrong, not the network
    assert leftovers(settings) == [] and models_folder(settings) == []


# ---- 5. resume proves the file is unchanged; links expire; 5xx is retried -----------------------------
@pytest.mark.parametrize("honours_if_range", [True, False], ids=["if-range-honoured", "if-range-ignored"])
def test_a_file_changed_mid_resume_is_fetched_again_whole(hub, gguf_file, other_file, settings, no_backoff,
                                                          honours_if_range):
    half = len(gguf_file.data) // 2
    hub.ignore_if_range = not honours_if_range  # then only the 206's ETag shows the change
    hub.drop_at = half
    hub.on_drop = lambda: hub.replace(REPO, FILE, other_file.data)  # a new version lands as it drops
    assert main(["pull", REPO, FILE, "--retries", "3"]) == 0
    assert (settings.user_models_path / FILE).read_bytes() == other_file.data
    assert leftovers(settings) == []


def test_an_expired_cdn_link_is_renewed_by_the_hub(hub, gguf_file, settings, no_backoff, capsys):
    hub.cdn = True
    half = len(gguf_file.data) // 2
    hub.drop_at = half
    hub.on_drop = hub.expire_links  # the signed link expires while the connection is down
    assert main(["pull", REPO, FILE, "--retries", "3"]) == 0
    assert (settings.user_models_path / FILE).read_bytes() == gguf_file.data
    heads = [e for e in hub.log if e[0] == "HEAD"]
    assert len(heads) == 2  # the 403 sent the pull back to the hub for a fresh link
    assert [r for _, _, r in hub.gets()] == [None, f"bytes={half}-", f"bytes={half}-"]
    assert "X-Amz-Signature" not in capsys.readouterr().err


def test_server_errors_are_retried_with_backoff(hub, gguf_file, settings, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(Control, "wait", lambda self, seconds: waits.append(seconds) or False)
    hub.fail_next = [503, 502]
    assert main(["pull", REPO, FILE, "--retries", "3"]) == 0
    assert (settings.user_models_path / FILE).read_bytes() == gguf_file.data
    assert len(waits) == 2 and waits[0] < waits[1]  # backoff grows


def test_error_messages_never_show_signed_links(hub, settings, no_backoff, capsys):
    hub.cdn = True
    hub.fail_next = [404]
    assert main(["pull", REPO, FILE]) == 1
    err = capsys.readouterr().err
    assert "HTTP 404" in err and f"{REPO}/{FILE}" in err
    assert "X-Amz-Signature" not in err and "secret" not in err and "?" not in err


# ---- 6. 416 -------------------------------------------------------------------------------------------
def test_416_on_resume_verifies_or_starts_over(hub, gguf_file, settings, capsys):
    half = len(gguf_file.data) // 2
    hub.drop_at = half
    assert main(["pull", REPO, FILE, "--retries", "0"]) == 1
    hub.range_416 = True  # the server will not serve that range any more
    assert main(["pull", REPO, FILE]) == 0
    assert [r for _, _, r in hub.gets()] == [None, f"bytes={half}-", None]  # the part was stale: start over
    assert (settings.user_models_path / FILE).read_bytes() == gguf_file.data
    assert leftovers(settings) == []


# ---- 7. file names -------------------------------------------------------------------------------------
def test_an_upper_case_GGUF_is_installed_and_listed(hub, gguf_file, settings, model_path):
    from jarvis.catalog import Catalog

    hub.repos[REPO] = {"tiny-chat-Q4_0.GGUF": gguf_file}
    assert main(["pull", REPO]) == 0
    shutil.copyfile(model_path, settings.user_models_path / "Dropped-In.GGUF")  # and one the user put there
    paths = {m.path.name for m in Catalog.from_settings(settings).rescan().models if m.ok}
    assert {"tiny-chat-Q4_0.gguf", "Dropped-In.GGUF"} <= paths


def test_nested_files_do_not_collide_with_a_file_of_the_same_name(hub, gguf_file, other_file, settings, capsys):
    hub.repos[REPO] = {FILE: gguf_file, f"sub/{FILE}": other_file}
    assert main(["pull", REPO, FILE]) == 0
    assert main(["pull", REPO, f"sub/{FILE}"]) == 0
    assert "already" not in capsys.readouterr().out
    assert (settings.user_models_path / FILE).read_bytes() == gguf_file.data
    assert (settings.user_models_path / f"sub--{FILE}").read_bytes() == other_file.data


def test_a_file_of_that_name_is_installed_only_when_it_is_the_same_file(hub, gguf_file, settings, capsys):
    models = settings.user_models_path
    models.mkdir(parents=True)
    (models / FILE).write_bytes(gguf_file.data[:1000])  # a damaged copy, or another repo's file
    assert main(["pull", REPO, FILE]) == 1
    err = capsys.readouterr().err
    assert "different file" in err and "jarvis rm" in err
    assert (models / FILE).read_bytes() == gguf_file.data[:1000]  # nothing the user has is replaced
    assert hub.gets() == []
    (models / FILE).write_bytes(gguf_file.data)  # the very file: then it is already installed
    assert main(["pull", REPO, FILE]) == 0
    assert "already in your models folder" in capsys.readouterr().out and hub.gets() == []


@pytest.mark.parametrize("name, says", [
    ("CON.gguf", "reserved"), ("lpt1.Q4_0.gguf", "reserved"), ("x\x07y.gguf", "control character"),
    ("x\u202egguf.exe.gguf", "control character"), ("a" * 300 + ".gguf", "too long"),
    ("a|b.gguf", "contains '|'"),
])
def test_unsafe_file_names_are_refused_with_a_clear_message(hub, settings, capsys, name, says):
    hub.extra_siblings[REPO] = [name]
    assert main(["pull", REPO, name]) == 2
    err = capsys.readouterr().err
    assert says in err and "refused" in err
    assert hub.gets() == [] and models_folder(settings) == []


# ---- 8. --quant: exact tokens, several matches asked ---------------------------------------------------
def test_several_quant_matches_are_listed_and_asked(hub, gguf_file, other_file, settings, capsys, monkeypatch):
    import io

    hub.repos[REPO] = {"tiny-Q4_K_M.gguf": gguf_file, "tiny-Q4_K_M-imatrix.gguf": other_file,
                       "tiny-Q4_K_L.gguf": gguf_file}
    assert main(["pull", REPO, "--quant", "Q4_K_M"]) == 2  # no terminal to ask on: list them
    err = capsys.readouterr().err
    assert "tiny-Q4_K_M.gguf" in err and "tiny-Q4_K_M-imatrix.gguf" in err and "tiny-Q4_K_L" not in err

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True
    monkeypatch.setattr("sys.stdin", Terminal("2\n"))
    assert main(["pull", REPO, "--quant", "Q4_K_M"]) == 0
    out = capsys.readouterr().out
    assert "1) tiny-Q4_K_M-imatrix.gguf" in out and "2) tiny-Q4_K_M.gguf" in out
    assert (settings.user_models_path / "tiny-Q4_K_M.gguf").read_bytes() == gguf_file.data


# ---- 9. the lock file stays ------------------------------------------------------------------------
def test_the_lock_file_outlives_its_holder(hub, gguf_file, settings):
    fcntl = pytest.importorskip("fcntl")  # the race is the POSIX one: flock on an unlinked file
    half = len(gguf_file.data) // 2
    hub.hold(half)
    job = BackgroundPull(Pull(settings, REPO, FILE))
    job.start()
    until(lambda: job.pull.progress.done == half)
    locks = list((settings.user_models_path.parent / "downloads").rglob("*.lock"))
    assert len(locks) == 1
    waiting = os.open(locks[0], os.O_RDWR)  # another JARVIS opened the lock file and waits its turn
    try:
        hub.release()
        job.join(60)
        assert job.pull.state == "done"
        fcntl.flock(waiting, fcntl.LOCK_EX | fcntl.LOCK_NB)  # its turn: it holds the lock now
        os.remove(settings.user_models_path / FILE)
        third = Pull(settings, REPO, FILE)
        with pytest.raises(DownloadError, match="already being downloaded"):
            third.run()  # so nobody else may: on a re-created lock file both would hold "the" lock
    finally:
        os.close(waiting)


def test_two_pulls_of_one_file_in_one_process_one_waits_out(hub, gguf_file, settings):
    half = len(gguf_file.data) // 3
    hub.hold(half)
    first = BackgroundPull(Pull(settings, REPO, FILE))
    first.start()
    until(lambda: first.pull.progress.done == half)
    second = Pull(settings, REPO, FILE)
    with pytest.raises(DownloadError, match="already being downloaded"):
        second.run()
    assert first.pull.plan.partial.stat().st_size == half  # the refused pull deleted nothing
    hub.release()
    first.join(60)
    assert first.pull.state == "done"
