"""The replicas of one remote: base URLs serving the same models, each with its health and the
requests it has outstanding. A request goes to the healthy replica with the fewest outstanding
(ties: the order they were configured in).

A replica is "down" after its first probe failed, after DOWN_AFTER failures in a row, or at once
when a request could not connect to it; a probe that succeeds brings it back up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DOWN_AFTER = 2  # failures in a row (probes or requests) that mark a replica that was up as down


@dataclass(eq=False)
class Replica:
    url: str
    client: Any = None  # openai.AsyncOpenAI, made on first use
    http: Any = None  # an httpx AsyncClient for /metrics (one connection, kept alive), made on first use
    state: str = "unknown"  # unknown (not probed yet) | up | down
    outstanding: int = 0  # requests sent here and not finished
    started: int = 0  # requests ever sent here (first attempts and retries)
    failures: int = 0  # in a row
    last_error: str = ""
    rtt_ms: float | None = None  # the last successful probe's round trip
    model_ids: tuple[str, ...] = ()
    context_lengths: dict[str, int] = field(default_factory=dict)  # by model id, where its listing says
    checked_at: float = 0.0  # time.time() of the last probe
    metrics: Any = None  # the last ServerMetrics read from its /metrics, or None
    metrics_state: str = "unknown"  # unknown | yes | none (the server has no /metrics we can read)
    extra: dict = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.state != "down"

    def succeeded(self, rtt_ms: float | None = None) -> None:
        self.state = "up"
        self.failures = 0
        self.last_error = ""
        if rtt_ms is not None:
            self.rtt_ms = rtt_ms

    def failed(self, error: str, hard: bool = False) -> None:
        """`hard`: the server could not even be connected to; down at once."""
        self.failures += 1
        self.last_error = error
        if hard or self.state == "unknown" or self.failures >= DOWN_AFTER:
            self.state = "down"

    def status(self) -> dict:
        return {"url": self.url, "state": self.state, "reachable": self.state == "up",
                "outstanding": self.outstanding, "started": self.started, "last_error": self.last_error or None,
                "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 1), "checked_at": self.checked_at,
                "models": list(self.model_ids), "key_refused": self.extra.get("refused"),
                "server_metrics": self.metrics.as_dict() if self.metrics is not None else None}


def pick(replicas: list[Replica], exclude: list[Replica] = ()) -> Replica | None:
    """The healthy replica with the fewest requests outstanding, not one of `exclude`."""
    candidates = [(r.outstanding, i, r) for i, r in enumerate(replicas) if r.healthy and r not in exclude]
    return min(candidates, key=lambda c: (c[0], c[1]))[2] if candidates else None
