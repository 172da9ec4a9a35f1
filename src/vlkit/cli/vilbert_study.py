"""`vlkit vilbert study`: ViLBERT's ablations, peers and baselines trained the same way, side by side
(`vlkit.pipelines.vilbert_study`), and its table."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def study(
    out: Path = typer.Option(
        ..., "--out", help="Folder of the study (RUN/vilbert shows in `vlkit report RUN`)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the first run of every model (later seeds: +1, +2)."),
    quick: bool = typer.Option(
        False, "--quick", help="A tiny world and a few steps: checks the path, not quality."
    ),
    world: Path = typer.Option(
        None, "--world", help="An existing shapes world (default: made in OUT/world)."
    ),
    seeds: int = typer.Option(None, "--seeds", help="Seeds per model (default 2; 1 with --quick)."),
    budget_minutes: float = typer.Option(
        None,
        "--budget-minutes",
        help="Later seeds run only while they fit in this (default 25; none with --quick).",
    ),
    threads: int = typer.Option(
        None, "--threads", help="Torch CPU threads of every run (default: 1 with several workers)."
    ),
    workers: int = typer.Option(
        None, "--workers", help="Runs at a time, each in its own process (default 2; 1 with --quick)."
    ),
) -> None:
    """Train and evaluate two-stream, no-standard-layers, sequential, single-stream, no-pretraining,
    grid-regions, crop-regions, LXMERT and VisualBERT, the question-only and image-only baselines and the CLIP
    baseline; write study.json, study.md, study.png and the co-attention figures."""
    from vlkit.pipelines.vilbert_study import StudyRequest, run_study

    budget = None if budget_minutes is None else 60 * budget_minutes
    document = run_study(StudyRequest(out, seed, quick, world, seeds, budget, threads, workers))
    _print_study(document)
    console.print(f"[green]done[/] in {document['total_s']:.0f} s; outputs in {out}")


def _cell(value, pattern: str = ".1%") -> str:
    return "n/a" if value is None else format(value, pattern)


def _print_study(document: dict) -> None:
    table = Table(title="ViLBERT study (validation; mean over seeds)")
    for column in ("model", "VQA", "retrieval R@1", "referring", "parameters", "train (s)", "seeds"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in document["variants"]:
        table.add_row(
            row["name"], _cell(row["vqa_accuracy"]), _cell(row["retrieval_r1"]), _cell(row["refer_accuracy"]),
            _cell(row["params"], ",d"), _cell(row["train_s"], ".0f"), str(len(row["seeds"])),
        )  # fmt: skip
    base = document["baselines"]
    table.add_row("question-only", _cell(base["question_only"]["vqa_accuracy"]), "", "", "", "", "")
    table.add_row("image-only", _cell(base["image_only"]["vqa_accuracy"]), "", "", "", "", "")
    table.add_row("CLIP", "", _cell(base["clip"]["retrieval_r1"]), "", "", "", "")
    table.add_row("centre / largest box", "", "", " / ".join(
        _cell(base[k]["refer_accuracy"]) for k in ("refer_centre", "refer_largest")), "", "", "")  # fmt: skip
    console.print(table)
    marks = {True: "[green]met[/]", False: "[red]missed[/]", None: "n/a"}
    for bar in document["bars"].values():
        console.print(f"bar: {bar['text']}: {_cell(bar['value'])} {marks[bar['met']]}")
