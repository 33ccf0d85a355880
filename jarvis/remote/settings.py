"""`[remotes.NAME]` tables: one remote OpenAI-compatible server (and its replicas) per NAME.

Validated by pydantic like every other setting; `--remote NAME=URL` adds one from the command
line (`with_remotes`). The key itself is never a setting: `api_key_env` names the environment
variable that holds it, so settings files, logs and stats never carry it.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jarvis.errors import ConfigError
from jarvis.named_tables import validate_named_table

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
URL_PATTERN = re.compile(r"https?://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?(/[^\s?#]*)?")
ENV_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _url(value: str) -> str:
    if not URL_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} is not a base URL: write http(s)://host:port/v1, e.g. \"http://gpu-box:8000/v1\"")
    return value.rstrip("/")


class RemoteSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    base_url: str
    api_key_env: str = ""  # the NAME of an environment variable holding the key; "" = no key
    models: list[str] = []  # allow-list of the server's model ids; [] = whatever /v1/models lists
    max_concurrency: int = Field(8, ge=1, le=4096)  # requests in flight upstream (all replicas together)
    timeout_s: float = Field(60, gt=0, le=86400)  # connect / read timeout of one upstream call
    replicas: list[str] = []  # more base URLs serving the same models
    health_interval_s: float = Field(30, gt=0, le=86400)  # seconds between health probes
    # How the server takes a JSON schema for structured output: OpenAI's `json_schema` (vLLM,
    # llama-server, LM Studio, Ollama, JARVIS) or `json_object` with a `schema` (llama-cpp-python's server).
    json_schema_as: Literal["json_schema", "json_object"] = "json_schema"

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return _url(value)

    @field_validator("replicas")
    @classmethod
    def _replicas(cls, value: list[str]) -> list[str]:
        return [_url(v) for v in value]

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if value and not ENV_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not an environment variable name (write the variable's name, "
                             "never the key itself)")
        return value

    @property
    def urls(self) -> list[str]:
        """Every replica's base URL, the main one first, without duplicates."""
        return list(dict.fromkeys([self.base_url, *self.replicas]))


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"Remote name {name!r} is invalid: use letters, digits, '_', '.' or '-' "
                          "(it becomes the model prefix NAME/<model id>).")
    return name


def validate_remote(name: str, values: dict, where: str) -> RemoteSettings:
    """One [remotes.NAME] table -> RemoteSettings, or one ConfigError naming where, key and value."""
    check_name(name)

    def describe(key: str, err: dict) -> str:
        if err["type"] == "missing":
            return f"{where}: remotes.{name}.{key} is missing: every remote needs one, e.g. base_url = " \
                   "\"http://gpu-box:8000/v1\"."
        return f"{where}: remotes.{name}.{key} = {err.get('input')!r} is invalid: {err['msg']}."
    return validate_named_table(RemoteSettings, "remotes", name, values, where, describe)


def parse_remote_arg(spec: str) -> tuple[str, RemoteSettings]:
    """`NAME=URL` (from --remote) -> (NAME, its settings)."""
    name, sep, url = spec.partition("=")
    if not sep or not name or not url:
        raise ConfigError(f"--remote {spec!r}: write NAME=URL, e.g. --remote gpu=http://gpu-box:8000/v1")
    return name.strip(), validate_remote(name.strip(), {"base_url": url.strip()}, f"--remote {spec}")


def with_remotes(settings, specs: list[str] | None):
    """The settings plus the remotes given as --remote NAME=URL (a NAME already set is replaced)."""
    if not specs:
        return settings
    remotes = dict(settings.remotes)
    for spec in specs:
        name, remote = parse_remote_arg(spec)
        remotes[name] = remote
    return settings.model_copy(update={"remotes": remotes})
