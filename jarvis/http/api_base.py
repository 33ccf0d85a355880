"""What every /v1 translator (OpenAI, Anthropic Messages, Responses) reads from the Runtime."""

from __future__ import annotations


class ApiBase:
    """The runtime, its Assistant and the settings tables the request translators read.

    Read once, when the routes are registered: settings do not change while a server runs.
    """

    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self.assistant = runtime.assistant
        self.generation = runtime.settings.generation
        self.reasoning = runtime.settings.reasoning
        self.server = runtime.settings.server
