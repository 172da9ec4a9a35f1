"""What every benchmark row reports, and the one timing helper they share.

A row compares vlkit with the library people would otherwise use (its "peer") on the same work. `ratio`
is always oriented so that above 1 means vlkit is better: vlkit/peer when higher is better (throughput),
peer/vlkit when lower is better (seconds), so "20x faster" reads as a ratio of 20 either way.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class BenchRow:
    """One line of BENCHMARKS.md."""

    name: str  # the bench module's name: `python -m bench <name>` reruns it
    metric: str  # what was measured, in words
    vlkit: float
    peer: float
    unit: str
    higher_is_better: bool
    target: str  # the goal in words ("report" when there is none)
    met: bool
    command: str  # the command that reproduces the row
    notes: str

    @property
    def ratio(self) -> float:
        """How many times better vlkit is than the peer (above 1: better, whatever the unit)."""
        if self.higher_is_better:
            return self.vlkit / self.peer if self.peer else float("inf")
        return self.peer / self.vlkit if self.vlkit else float("inf")

    @property
    def status(self) -> str:
        """"reported" for a row with no target, else "met" or "**MISSED**"."""
        if self.target == "report":
            return "reported"
        return "met" if self.met else "**MISSED**"

    def ratio_text(self) -> str:
        """The ratio, with a worse-than-the-peer result said in words ("0.91x: vlkit slower")."""
        text = f"{self.ratio:.2f}x"
        if self.ratio < 1:
            timed = self.unit == "s" or self.unit.endswith("/s")
            text += f": vlkit {'slower' if timed else 'worse'}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}

    @staticmethod
    def from_json(data: dict[str, Any]) -> BenchRow:
        return BenchRow(**{key: value for key, value in data.items() if key != "ratio"})


def best_of(function: Callable[[], T], repeats: int = 3, warmup: bool = True) -> tuple[float, T]:
    """Best wall time of `repeats` calls (after one untimed warm-up call), and the last call's result.

    The best of several runs is the least disturbed by other processes; garbage is collected before each
    run so that one run's garbage does not land in the next one's time.
    """
    if warmup:
        function()
    best, result = float("inf"), None
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result  # type: ignore[return-value]
