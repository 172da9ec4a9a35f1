"""Progress bars for long loops, shared by the library and the CLI.

rich draws the bars; this module only holds the switch (`set_enabled`) so that library code can wrap its
loops without knowing whether it runs under the CLI, a test, or a notebook.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

_enabled = os.environ.get("VLKIT_PROGRESS", "1") != "0"


def set_enabled(enabled: bool) -> None:
    """Turn every progress bar on or off (the CLI's `--quiet`; tests turn them off)."""
    global _enabled
    _enabled = enabled


def is_enabled() -> bool:
    return _enabled


def make_progress() -> Progress:
    """A rich Progress with the columns vlkit uses everywhere; disabled when bars are off."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        disable=not _enabled,
        transient=False,
    )


def track(iterable: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar (when bars are on)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with make_progress() as progress:
        task = progress.add_task(description, total=total, status="")
        for item in iterable:
            yield item
            progress.advance(task)
