"""`vlkit demo`: the whole study on the embedded default (`vlkit.pipelines.demo`), and its tables."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for every output of the demo."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice in the demo."),
    quick: bool = typer.Option(
        False, "--quick", help="A tiny world and a few steps: checks the path, not quality."
    ),
) -> None:
    """Run the study on the embedded default: shapes world, CLIP from scratch, zero-shot prompt analysis,
    a GPT-2 and a cross-attention captioner, caption metrics, attention maps, the HTML report."""
    from vlkit.pipelines.attend import grounding_summary
    from vlkit.pipelines.demo import run_demo

    summary = run_demo(out, seed, quick)
    for folder in summary["reused"]:
        console.print(f"reusing {folder} (complete, made from this world)")
    _print_summary(summary["zeroshot_results"])
    captioning = summary["captioning"]
    _print_caption_metrics(captioning["metrics"], captioning["retrieval_baseline"])
    if captioning.get("grounding"):
        console.print(grounding_summary(captioning["grounding"]))
    console.print(f"[green]done[/] in {sum(summary['timings'].values()):.0f} s; outputs in {out}")
    console.print(f"[bold]report:[/] {summary['report']}")


def _print_caption_metrics(metrics: dict, baseline: dict) -> None:
    table = Table(title="cross-attention captioner on the validation images")
    table.add_column("metric")
    table.add_column("captioner", justify="right")
    table.add_column("retrieval baseline", justify="right")
    for name, entry in metrics.items():
        cells = [entry.get("value"), baseline.get(name, {}).get("value")]
        table.add_row(name, *("unavailable" if value is None else f"{value:.4f}" for value in cells))
    console.print(table)


def _print_summary(results: dict[str, dict]) -> None:
    from vlkit.pipelines.demo import best_template

    table = Table(title="zero-shot top-1 on the shapes world (classification/val)")
    for column in ("templates", "prompt", "all", "seen", "unseen"):
        table.add_column(column)
    for name, result in results.items():
        for label, row in (("best template", best_template(result)), ("ensemble", result["ensemble"])):
            prompt = (
                row.get("template", f"{len(result['templates'])} templates") if label != "ensemble" else label
            )
            table.add_row(name, prompt, *(f"{row[k]:.1%}" for k in ("top1", "seen_top1", "unseen_top1")))
    console.print(table)
