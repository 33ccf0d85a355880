"""Settings for a test or a bench run: a private data dir, no warm-up, port 0, and nothing from the
developer's own JARVIS_* / LLAMA_* environment variables."""

from __future__ import annotations

import os
from pathlib import Path


def make_settings(data_dir: Path, **env_overrides: str):
    """Settings as `load_settings` builds them, with JARVIS_* overrides: make_settings(d, JARVIS_SERVER_TOKEN="t")."""
    from jarvis.config import load_settings

    env = {k: v for k, v in os.environ.items() if not k.startswith(("JARVIS_", "LLAMA_"))}
    env.update({"JARVIS_GENERAL_DATA_DIR": str(data_dir), "JARVIS_MODELS_WARMUP": "",
                "JARVIS_SERVER_PORT": "0", **env_overrides})
    return load_settings(environ=env)


def tune(settings, **sections):
    """settings with some fields of some sections replaced: tune(s, engine={"max_queue": 4})."""
    update = {name: getattr(settings, name).model_copy(update=fields) for name, fields in sections.items() if fields}
    return settings.model_copy(update=update)
