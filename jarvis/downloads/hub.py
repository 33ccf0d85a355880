"""The one module that talks to the Hugging Face hub (or a mirror named by HF_ENDPOINT).

Listing and file metadata go through huggingface_hub (`HfApi.model_info(files_metadata=True)`:
sizes and LFS SHA-256; `get_hf_file_metadata`: the HEAD of `resolve/`). The bytes themselves go
through transfer.py: huggingface_hub 2.x writes each download to a process-unique temporary file
and deletes it on failure, so an interrupted download cannot be resumed by a later run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlparse

from jarvis.downloads.errors import DownloadError, HubUnreachable, UnsafeName
from jarvis.downloads.names import check_repo_file
from jarvis.errors import InvalidRequest

DEFAULT_ENDPOINT = "https://huggingface.co"
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SPLIT = re.compile(r"-\d{5}-of-\d{5}\.gguf$")


@dataclass(frozen=True)
class RemoteFile:
    """A GGUF file as the hub lists it. `sha256` comes from its LFS pointer (None: not in LFS)."""

    path: str          # inside the repo, e.g. "Q4_K_M/model.gguf"
    name: str          # the plain file name it installs as ("Q4_K_M--model.gguf")
    size: int | None
    sha256: str | None


@dataclass(frozen=True)
class FileHead:
    """The HEAD of resolve/{revision}/{file}: what a resumed download must still match."""

    url: str           # where the bytes are (a CDN location on the real hub)
    commit: str | None
    etag: str | None
    size: int | None


def endpoint() -> str:
    """Read at call time, not at import (huggingface_hub reads HF_ENDPOINT once, on import)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def token() -> str | None:
    from huggingface_hub import get_token

    return get_token()  # HF_TOKEN, else the token `hf auth login` stored


def check_repo(repo: str) -> str:
    if not _REPO.match(repo or "") or ".." in repo:
        raise DownloadError(f"{repo!r} is not a Hugging Face repository name: use OWNER/NAME, "
                            "e.g. bartowski/SmolLM2-135M-Instruct-GGUF.")
    return repo


def _hub_errors(what: str):
    """Turn huggingface_hub and httpx2 failures into one line that says what to do."""
    import contextlib

    import httpx2
    from huggingface_hub import errors as hf

    @contextlib.contextmanager
    def translate():
        try:
            yield
        except hf.GatedRepoError:
            raise DownloadError(f"{what} is gated: accept its licence on the hub's web page, then set HF_TOKEN "
                                "to a token of that account.") from None
        except hf.RepositoryNotFoundError:
            raise DownloadError(f"{what} was not found on {endpoint()} (or it is private: set HF_TOKEN).") from None
        except hf.RevisionNotFoundError:
            raise DownloadError(f"{what}: no such revision on {endpoint()}.") from None
        except hf.EntryNotFoundError:
            raise DownloadError(f"{what} was not found on {endpoint()}.") from None
        except hf.OfflineModeIsEnabled:
            raise DownloadError("HF_HUB_OFFLINE is set: unset it to download models.") from None
        except hf.HfHubHTTPError as e:
            status = e.response.status_code if e.response is not None else "?"
            raise DownloadError(f"{what}: the hub at {endpoint()} answered HTTP {status}.") from None
        except (httpx2.TransportError, OSError) as e:
            raise HubUnreachable(endpoint(), type(e).__name__ if not str(e) else str(e).splitlines()[0]) from None
    return translate()


class Ambiguous(InvalidRequest):
    """Several files fit what was asked: the caller lists them and asks which one."""

    def __init__(self, message: str, choices: list[RemoteFile]):
        self.choices = choices
        super().__init__(message)


def list_gguf(repo: str, revision: str = "main") -> tuple[str | None, list[RemoteFile], dict[str, str]]:
    """(commit, GGUF files, {refused name: why}) of a repo. Names a hostile hub could use to climb
    out of a folder, or that a file system cannot hold, are refused here, before anything is written."""
    from huggingface_hub import HfApi

    check_repo(repo)
    with _hub_errors(repo):
        info = HfApi(endpoint=endpoint(), token=token()).model_info(repo, revision=revision, files_metadata=True)
    files, refused = [], {}
    for sibling in info.siblings or []:
        if not sibling.rfilename.lower().endswith(".gguf"):
            continue
        try:
            name = check_repo_file(sibling.rfilename)
        except UnsafeName as e:
            refused[sibling.rfilename] = getattr(e, "reason", str(e))
            continue
        lfs_sha = (sibling.lfs or {}).get("sha256") if sibling.lfs else None
        sha = lfs_sha.lower() if isinstance(lfs_sha, str) and _SHA256.match(lfs_sha.lower()) else None
        size = sibling.lfs["size"] if sibling.lfs else sibling.size
        files.append(RemoteFile(sibling.rfilename, name, size if isinstance(size, int) else None, sha))
    return info.sha, sorted(files, key=lambda f: f.path), refused


def quant_tokens(path: str) -> list[str]:
    """The quantisation-like tokens of a file name: the parts between `-`, `.` and `/`
    (`_` joins a token: Q4_K_M, Q4_0_4_4 and Q6_K_L are each one token)."""
    stem = path[:-5] if path.lower().endswith(".gguf") else path
    return [t.lower() for t in re.split(r"[-./]", stem) if t]


def choose(repo: str, files: list[RemoteFile], file: str | None, quant: str | None,
           refused: dict[str, str] | None = None) -> RemoteFile:
    """The file asked for: by exact path, else by file name (asked back when two folders hold
    it), else the one whose name carries the quantisation as a whole token, else the only one."""
    refused = refused or {}
    if file in refused:
        raise UnsafeName(f"{repo} lists the file {file!r}; refused: {refused[file]}.")
    listing = ", ".join(f.path for f in files) or "none"
    if not files:
        raise DownloadError(f"{repo} has no .gguf files. Pick a repository whose name ends in -GGUF.")
    if file:
        match = ([f for f in files if f.path == file]
                 or [f for f in files if file in (f.name, f.path.rsplit("/", 1)[-1])])
        if not match:
            raise DownloadError(f"{repo} has no file {file!r}. Its GGUF files: {listing}.")
        if len(match) > 1:
            raise Ambiguous(f"{repo} has {len(match)} files named {file!r}: "
                            f"{', '.join(f.path for f in match)}. Name one by its path.", match)
        chosen = match[0]
    elif quant:
        want = quant.lower().replace("-", "_")
        match = [f for f in files if want in quant_tokens(f.path)]
        if not match:
            raise DownloadError(f"{repo}: no file matches --quant {quant}. Its GGUF files: {listing}.")
        if len(match) > 1:
            raise Ambiguous(f"{repo}: {len(match)} files match --quant {quant}: "
                            f"{', '.join(f.path for f in match)}. Name one with FILE.", match)
        chosen = match[0]
    elif len(files) == 1:
        chosen = files[0]
    else:
        raise DownloadError(f"{repo} has several GGUF files; name one (FILE or --quant): {listing}.")
    if _SPLIT.search(chosen.name):
        raise DownloadError(f"{chosen.path} is one part of a split model; JARVIS loads single-file GGUFs only.")
    return chosen


def head(repo: str, remote: RemoteFile, revision: str) -> FileHead:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo, remote.path, revision=revision, endpoint=endpoint())
    with _hub_errors(f"{repo}/{remote.path}"):
        meta = get_hf_file_metadata(url, token=token(), endpoint=endpoint())
    return FileHead(url=meta.location or url, commit=meta.commit_hash, etag=meta.etag, size=meta.size)


def auth_headers(url: str) -> dict[str, str]:
    """The token goes to the hub's own host only, never to a CDN a redirect named."""
    tok = token()
    same_host = urlparse(url).netloc == urlparse(endpoint()).netloc
    return {"authorization": f"Bearer {tok}"} if tok and same_host else {}
