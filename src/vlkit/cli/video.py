"""`vlkit video study`: every temporal module of the video captioner trained the same way on generated clips
whose captions need time, beside the nearest-clip and shuffled-frame baselines
(`vlkit.pipelines.video_study`), and its table."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Video captioning: the temporal modules measured.", no_args_is_help=True)
console = Console()


@app.command("study")
def study(
    out: Path = typer.Option(
        ...,
        "--out",
        help="Folder of the study: clips, captioners, study.json (RUN/video shows in `vlkit report RUN`).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the clips, the new weights and the data order."),
    quick: bool = typer.Option(False, "--quick", help="A few clips and steps: checks the path, not quality."),
    workers: int = typer.Option(
        None,
        "--workers",
        min=1,
        help="Runs at a time, each in its own one-thread process (default 2; 1 quick).",
    ),
    steps: int = typer.Option(
        None, "--steps", min=1, help="Training steps of every run (default 1200; 4 quick)."
    ),
) -> None:
    """Make the clips (real MP4 files under OUT/clips), train meanp, concat and seq (and seq on fewer
    frames) with the same budget, caption the validation clips in order and shuffled; write study.json,
    study.md, study.png and the frames x words figures."""
    from vlkit.pipelines.video_study import VideoStudyRequest, run_video_study

    document = run_video_study(VideoStudyRequest(out, seed, quick, workers, steps))
    table = Table(title="Video study (validation)")
    for column in ("temporal", "CIDEr-D", "order accuracy", "CHAIR-i", "train (s)"):
        table.add_column(column, justify="left" if column == "temporal" else "right")
    for row in document["variants"]:
        table.add_row(row["temporal"], _cell(row["cider"], ".3f"), _cell(row["order_accuracy"]),
                      _cell(row["chair_i"]), _cell(row["train_s"], ".0f"))  # fmt: skip
    for name, entry in document["baselines"].items():
        table.add_row(f"[i]{name}[/]", _cell(entry["cider"], ".3f"), _cell(entry["order_accuracy"]),
                      _cell(entry.get("chair_i")), "")  # fmt: skip
    console.print(table)
    for bar in document["bars"].values():
        console.print(f"bar: {bar['text']}: {'[green]met[/]' if bar['met'] else '[red]missed[/]'}")
    console.print(f"[green]done[/] in {document['total_s']:.0f} s; outputs in {out}")


def _cell(value, pattern: str = ".1%") -> str:
    return "n/a" if value is None else format(value, pattern)
