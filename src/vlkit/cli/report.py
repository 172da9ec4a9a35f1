"""`vlkit report RUN_DIR`: the study's self-contained HTML report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from vlkit.pipelines.report import write_report

console = Console()


def report(
    run_dir: Path = typer.Argument(..., help="A run folder, e.g. the output of `vlkit demo`."),
    out: Path = typer.Option(None, "--out", help="Report folder to write (default: RUN_DIR/report)."),
    sweep: Path = typer.Option(
        None, "--sweep", help="A SWEEP.json to include (default: RUN_DIR/sweep/SWEEP.json)."
    ),
) -> None:
    """Write index.html and its images: data, zero-shot analysis, sweep, metrics, pairs, attention, config."""
    index = write_report(run_dir, out, sweep)
    console.print(f"[green]report[/] {index}")
