"""The small formatters the studies' Markdown tables share (study.md of `vlkit vilbert study` and
`vlkit video study`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MET = {True: "met", False: "missed"}


def pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def num(value: Any, pattern: str) -> str:
    return "n/a" if value is None else format(value, pattern)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
