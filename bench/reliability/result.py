"""What one reliability scenario reports: a row of the table, plus what went wrong."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Result:
    scenario: str
    tried: int = 0
    faults: int = 0
    handled: int = 0
    lost: int = 0
    crashes: int = 0
    notes: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)  # what went wrong, for the test's message

    def fail(self, what: str) -> None:
        self.problems.append(what)
