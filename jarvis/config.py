"""Settings: packaged defaults < the user's settings.toml < --config / JARVIS_CONFIG < environment.

The defaults ship inside the package (jarvis/defaults/settings.toml, read with importlib.resources),
so an installed wheel finds them wherever it lives; config/settings.toml in a checkout is a link
to the same file.

Every value is validated by pydantic; a bad one raises one ConfigError naming the file (or
environment variable) it came from, the key, the value and what is allowed.
"""

from __future__ import annotations

import os
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from jarvis.errors import ConfigError
from jarvis.mcp.settings import McpSettings, validate_server
from jarvis.remote.settings import RemoteSettings, validate_remote
from jarvis.sampling import SamplingParams

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = Path(str(resources.files("jarvis") / "defaults" / "settings.toml"))
APP_NAME = "jarvis"
# An origin as browsers send it (scheme://host[:port]); ":*" in a setting means any port.
ORIGIN_PATTERN = re.compile(r"https?://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:(\d{1,5}|\*))?")


def checkout_models_dir() -> Path | None:
    """models/ of a source checkout when JARVIS runs from one; None for an installed package."""
    folder = PROJECT_ROOT / "models"
    return folder if folder.is_dir() and (PROJECT_ROOT / "pyproject.toml").is_file() else None


def user_settings_file() -> Path:
    """The per-user settings file, read when it exists (platformdirs' config folder)."""
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "settings.toml"

# Names the seed used, kept working beside the generic JARVIS_<SECTION>_<KEY>.
ENV_ALIASES: dict[str, tuple[str, str]] = {
    "LLAMA_USE_GPU": ("gpu", "use_gpu"),
    "LLAMA_GPU_LAYERS": ("gpu", "gpu_layers"),
    "CUDA_VISIBLE_DEVICES": ("gpu", "cuda_visible_devices"),
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class GeneralSettings(_Section):
    default_model: str = ""
    models_dirs: list[str] = []
    data_dir: str = ""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"


MAX_STREAM_INTERVAL_MS = 1000  # slower than this, a stream no longer reads as one (a request's own too)


class EngineSettings(_Section):
    batch_size: int = Field(4, ge=1, le=16)
    context_length: int = Field(4096, ge=0, le=131072)
    prefill_chunk: int = Field(256, ge=16, le=8192)
    n_threads: int = Field(0, ge=0, le=512)
    max_queue: int = Field(64, ge=1, le=100000)
    request_timeout_s: float = Field(300, ge=0)
    truncate: bool = True
    lookup_draft: int = Field(8, ge=0, le=64)
    prompt_cache_mb: int = Field(2048, ge=0, le=1048576)
    stream_interval_ms: float = Field(16, ge=0, le=MAX_STREAM_INTERVAL_MS)
    weight_repacking: Literal["auto", "on", "off"] = "auto"
    worker_nice: int = Field(5, ge=0, le=19)
    pin_threads: bool = True  # one core per llama.cpp thread, only where they fill every core


# [generation] is the sampling parameters' one definition: the defaults of every request.
GenerationSettings = SamplingParams
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")  # OpenAI's reasoning_effort names


class ReasoningSettings(_Section):
    """The thinking budget (tokens) each reasoning effort name stands for; "none" is 0."""

    minimal: int = Field(64, ge=0, le=131072)
    low: int = Field(256, ge=0, le=131072)
    medium: int = Field(1024, ge=0, le=131072)
    high: int = Field(4096, ge=0, le=131072)
    xhigh: int = Field(16384, ge=0, le=131072)

    def budget(self, effort: str | None) -> int | None:
        """A reasoning_effort name -> its token budget; None (no effort named) = no limit."""
        if effort is None:
            return None
        return 0 if effort == "none" else getattr(self, effort)

    def effort_for(self, budget: int) -> str:
        """The smallest effort whose budget covers `budget` tokens: what a remote server is told
        when a client gave a number (Anthropic's thinking.budget_tokens)."""
        return next((e for e in EFFORTS if self.budget(e) >= budget), EFFORTS[-1])


class GpuSettings(_Section):
    use_gpu: bool = True
    gpu_layers: int = Field(-1, ge=-1)
    cuda_visible_devices: str = ""


class ModelsSettings(_Section):
    max_loaded_models: int = Field(2, ge=1, le=64)
    memory_budget_mb: int = Field(0, ge=0)
    keep_alive_s: float = Field(1800, ge=-1)
    warmup: list[str] = ["default"]


class CacheSettings(_Section):
    enabled: bool = True
    max_size: int = Field(200, ge=1, le=1_000_000)
    ttl_s: float = Field(86400, gt=0)  # the default lifetime; per kind below, 0 = this
    ttl_chat_s: float = Field(0, ge=0)
    ttl_completion_s: float = Field(0, ge=0)
    ttl_embeddings_s: float = Field(0, ge=0)
    ttl_structured_s: float = Field(0, ge=0)
    disk_max_mb: float = Field(256, gt=0)
    semantic: bool = False
    semantic_model: str = ""
    semantic_threshold: float = Field(0.90, gt=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _ttl_seconds_is_ttl_s(cls, data: Any) -> Any:
        """`ttl_seconds` (the single TTL of earlier versions) still works: it is ttl_s."""
        if isinstance(data, dict) and "ttl_seconds" in data:
            data = dict(data)
            data.setdefault("ttl_s", data.pop("ttl_seconds"))
            data.pop("ttl_seconds", None)
        return data

    def ttl_for(self, kind: str) -> float:
        """Seconds a reply of this kind (chat, completion, embeddings, structured) stays valid."""
        return getattr(self, f"ttl_{kind}_s", 0) or self.ttl_s


class TelemetrySettings(_Section):
    window_s: float = Field(300, gt=0, le=86400)
    history_s: int = Field(600, ge=10, le=86400)
    request_log: str = ""
    request_log_max_mb: float = Field(10, gt=0)
    request_log_backups: int = Field(3, ge=0, le=100)
    log_prompts: bool = False
    heartbeat_ms: int = Field(8, ge=0, le=1000)
    rollup_days: float = Field(7, ge=0, le=365)
    target_latency_p95_ms: float = Field(0, ge=0)
    target_latency_p99_ms: float = Field(0, ge=0)
    target_ttft_p95_ms: float = Field(0, ge=0)


class ServerSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(5050, ge=0, le=65535)
    token: str = ""
    max_body_kb: int = Field(1024, ge=1, le=1_048_576)
    rate_limit_rps: float = Field(0.0, ge=0)
    rate_limit_burst: int = Field(10, ge=1)
    allowed_origins: list[str] = []
    # Tools only a provider's servers run (web_search, file_search, MCP, ...): "reject" = a 400 that
    # names them, "drop" = leave them out of the request (for clients that always send them).
    unsupported_tools: Literal["reject", "drop"] = "reject"
    responses_retention_days: float = Field(30.0, ge=0)  # stored /v1/responses; 0 = store none

    @field_validator("allowed_origins")
    @classmethod
    def _origins_are_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not ORIGIN_PATTERN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin: write scheme://host or scheme://host:port "
                                 "(port * = any), e.g. \"http://192.168.1.20:*\", with no path")
        return [origin.lower() for origin in value]


class ConversationSettings(_Section):
    database: str = ""


class DownloadSettings(_Section):
    keep_free_mb: int = Field(1024, ge=0)


class Settings(_Section):
    general: GeneralSettings = GeneralSettings()
    engine: EngineSettings = EngineSettings()
    generation: GenerationSettings = GenerationSettings()
    reasoning: ReasoningSettings = ReasoningSettings()
    gpu: GpuSettings = GpuSettings()
    models: ModelsSettings = ModelsSettings()
    cache: CacheSettings = CacheSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    server: ServerSettings = ServerSettings()
    conversations: ConversationSettings = ConversationSettings()
    downloads: DownloadSettings = DownloadSettings()
    # [mcp] and its [mcp.servers.NAME] tables: the MCP servers whose tools the assistant may call.
    mcp: McpSettings = McpSettings()
    # [remotes.NAME] tables: remote OpenAI-compatible servers whose models appear as NAME/<id>.
    remotes: dict[str, RemoteSettings] = {}
    _file: Path | None = PrivateAttr(default=None)  # set by load_settings: where a change is written

    # ---- derived paths -------------------------------------------------------------------
    @property
    def settings_file(self) -> Path:
        """The file a change made in the app goes to (`jarvis mcp add`, "Always allow"): the one named
        by --config / JARVIS_CONFIG when there was one, else the per-user settings.toml."""
        return self._file or user_settings_file()

    @property
    def data_path(self) -> Path:
        return Path(self.general.data_dir or platformdirs.user_data_dir(APP_NAME, appauthor=False))

    @property
    def user_models_path(self) -> Path:
        """The user's own models folder: downloads land here, `jarvis rm` deletes only here."""
        return self.data_path / "models"

    @property
    def request_log_path(self) -> Path:
        return Path(self.telemetry.request_log) if self.telemetry.request_log else self.data_path / "logs" / "requests.jsonl"

    @property
    def app_log_path(self) -> Path:
        """The app's log: warnings and errors, and every thread's stack after a native crash."""
        return self.data_path / "logs" / "jarvis.log"

    @property
    def benchmarks_path(self) -> Path:
        return self.data_path / "benchmarks.jsonl"

    @property
    def rollups_path(self) -> Path:
        return self.data_path / "telemetry.sqlite3"

    @property
    def responses_path(self) -> Path:
        return self.data_path / "responses.sqlite3"

    @property
    def database_path(self) -> Path:
        return Path(self.conversations.database) if self.conversations.database else self.data_path / "conversations.sqlite3"


SECTIONS: dict[str, type[BaseModel]] = {
    name: field.annotation for name, field in Settings.model_fields.items()  # type: ignore[misc]
    if name != "remotes"  # a table of tables, validated by jarvis.remote.settings
}
# Keys that hold a table of tables (merged per NAME across files, validated on their own) and so
# have no JARVIS_<SECTION>_<KEY> variable: [mcp.servers.NAME].
TABLE_KEYS = {("mcp", "servers")}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"Settings file {path} does not exist.") from None
    except tomllib.TOMLDecodeError as e:
        # tomllib's message carries "(at line L, column C)".
        raise ConfigError(f"Settings file {path} is not valid TOML: {e}. Fix that line and start again.") from None
    except OSError as e:
        raise ConfigError(f"Settings file {path} cannot be read: {e.strerror}.") from None


def _env_overrides(environ: dict[str, str]) -> dict[tuple[str, str], tuple[str, str]]:
    """(section, key) -> (raw value, variable name) for every variable that names a setting."""
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for section, model in SECTIONS.items():
        for key in model.model_fields:
            if (section, key) in TABLE_KEYS:
                continue
            var = f"JARVIS_{section}_{key}".upper()
            if var in environ:
                found[(section, key)] = (environ[var], var)
    for var, target in ENV_ALIASES.items():
        if var in environ and target not in found:
            found[target] = (environ[var], var)
    return found


def _parse_env_value(raw: str, section: str, key: str) -> Any:
    annotation = SECTIONS[section].model_fields[key].annotation
    if annotation in (list[str], tuple[str, ...]):
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw  # pydantic's lax mode turns "4", "0.5", "true" into the field's type


def _allowed(section: str, key: str) -> str:
    field = SECTIONS[section].model_fields[key]
    bounds = []
    for meta in field.metadata:
        for attr, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(meta, attr, None) is not None:
                bounds.append(f"{word} {getattr(meta, attr)}")
    kind = getattr(field.annotation, "__name__", str(field.annotation))
    return f"{kind}{' ' + ' and '.join(bounds) if bounds else ''}"


def load_settings(user_file: str | os.PathLike | None = None, environ: dict[str, str] | None = None,
                  defaults_file: Path = DEFAULTS_FILE) -> Settings:
    """Merge the three layers and validate them. Raises ConfigError."""
    environ = dict(os.environ if environ is None else environ)
    user_file = user_file or environ.get("JARVIS_CONFIG") or None

    merged: dict[str, dict[str, Any]] = {}
    source: dict[tuple[str, str], str] = {}
    remotes: dict[str, dict[str, Any]] = {}
    mcp_servers: dict[str, dict[str, Any]] = {}

    per_user = user_settings_file()
    layers = [Path(defaults_file)] + ([per_user] if per_user.is_file() else []) \
        + ([Path(user_file)] if user_file else [])
    for path in layers:
        data = _read_toml(path)
        for section, values in data.items():
            if section == "remotes":
                if not isinstance(values, dict):
                    raise ConfigError(f"{path}: remotes must be tables ([remotes.NAME]), not a value.")
                for name, table in values.items():
                    if not isinstance(table, dict):
                        raise ConfigError(f"{path}: remotes.{name} must be a table ([remotes.{name}]), not a value.")
                    # Validated as merged so far (a later file may change one key), errors naming this file.
                    remotes[name] = {**remotes.get(name, {}), **table}
                    validate_remote(name, remotes[name], str(path))
                continue
            if section not in SECTIONS:
                raise ConfigError(
                    f"{path}: unknown section [{section}]. Known sections: {', '.join(SECTIONS)}, remotes."
                )
            if not isinstance(values, dict):
                raise ConfigError(f"{path}: {section} must be a table ([{section}]), not a value.")
            for key, value in values.items():
                if (section, key) == ("mcp", "servers"):
                    _merge_servers(mcp_servers, value, str(path))
                    continue
                if key not in SECTIONS[section].model_fields:
                    known = ", ".join(SECTIONS[section].model_fields)
                    raise ConfigError(f"{path}: unknown key {section}.{key}. Keys of [{section}]: {known}.")
                merged.setdefault(section, {})[key] = value
                source[(section, key)] = str(path)

    for (section, key), (raw, var) in _env_overrides(environ).items():
        merged.setdefault(section, {})[key] = _parse_env_value(raw, section, key)
        source[(section, key)] = f"environment variable {var}"

    if mcp_servers:
        merged.setdefault("mcp", {})["servers"] = {name: validate_server(name, table, "settings")
                                                   for name, table in mcp_servers.items()}
    if remotes:
        merged["remotes"] = {name: validate_remote(name, table, "settings") for name, table in remotes.items()}
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(p) for p in err["loc"]]
        section, key = (loc + ["", ""])[:2]
        where = source.get((section, key), "settings")
        allowed = _allowed(section, key) if section in SECTIONS and key in SECTIONS[section].model_fields else ""
        raise ConfigError(
            f"{where}: {section}.{key} = {err.get('input')!r} is invalid: {err['msg']}"
            + (f" (allowed: {allowed})." if allowed else ".")
        ) from None
    settings._file = Path(user_file) if user_file else per_user
    return settings


def _merge_servers(servers: dict[str, dict[str, Any]], tables: Any, path: str) -> None:
    """A file's [mcp.servers.NAME] tables over those of the files before it, key by key."""
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: mcp.servers must be tables ([mcp.servers.NAME]), not a value.")
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: mcp.servers.{name} must be a table ([mcp.servers.{name}]), not a value.")
        servers[name] = {**servers.get(name, {}), **table}
        validate_server(name, servers[name], path)  # errors name this file


def apply_process_environment(settings: Settings) -> None:
    """Settings that only work as process environment (read by CUDA when llama.cpp loads)."""
    if settings.gpu.cuda_visible_devices:
        os.environ["CUDA_VISIBLE_DEVICES"] = settings.gpu.cuda_visible_devices
