"""OpenAI-compatible /v1 routes (built in the OpenAI-API issue)."""

from __future__ import annotations


def openai_routes(runtime):
    def register(app) -> None:
        return None

    return register
