"""`vlkit demo`: the whole study on the embedded default (`vlkit.pipelines.demo`), and its tables."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for every output of the demo."),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the world and of every training; another seed needs --from-scratch."
    ),
    from_scratch: bool = typer.Option(
        False,
        "--from-scratch",
        help="Train the CLIP and the GPT-2 on this world (minutes) instead of loading the shipped stand-ins "
        "vlkit:shapes-clip and vlkit:shapes-gpt2.",
    ),
    quick: bool = typer.Option(
        False, "--quick", help="A tiny world and a few steps: checks the path, not quality."
    ),
) -> None:
    """Run the course study on the embedded default: P1 zero-shot prompt analysis, P2 the captioner with
    four tuning methods beside the retrieval baseline, P3 attention maps and grounding; the HTML report."""
    from vlkit.pipelines.attend import grounding_summary
    from vlkit.pipelines.demo import run_demo

    summary = run_demo(out, seed, quick, from_scratch)
    for folder in summary["reused"]:
        console.print(f"reusing {folder} (complete, made from the same inputs)")
    _print_summary(summary["zeroshot_results"])
    captioning = summary["captioning"]
    _print_methods(captioning)
    if summary.get("grounding"):
        console.print(grounding_summary(summary["grounding"]))
    _print_bars(summary["bars"])
    console.print(f"[green]done[/] in {sum(summary['timings'].values()):.0f} s; outputs in {out}")
    console.print(f"[bold]report:[/] {summary['report']}")


def _cell(value, pattern: str) -> str:
    return "n/a" if value is None else format(value, pattern)


def _print_methods(captioning: dict) -> None:
    table = Table(title=f"P2: the tuning methods (best by validation CIDEr-D: {captioning['best']})")
    for column in ("tuning", "CIDEr-D", "CLIPScore", "CHAIR-i", "trainable params"):
        table.add_column(column, justify="left" if column == "tuning" else "right")
    for row in captioning["methods"]:
        table.add_row(
            row["tuning"] + (" (best)" if row["tuning"] == captioning["best"] else ""),
            _cell(row["cider"], ".3f"),
            _cell(row["clip_score"], ".3f"),
            _cell(row["chair_i"], ".1%"),
            f"{row['trainable_params']:,}",
        )
    base = captioning["retrieval_baseline"]
    table.add_row(
        "retrieval baseline",
        _cell(base["cider"], ".3f"),
        _cell(base["clip_score"], ".3f"),
        _cell(base["chair_i"], ".1%"),
        "0",
    )
    console.print(table)


def _print_bars(bars: dict) -> None:
    def mark(value) -> str:
        return {True: "[green]met[/]", False: "[red]missed[/]", None: "n/a"}[value]

    console.print(
        f"bars: CIDEr-D above retrieval {mark(bars['cider_above_retrieval'])}; CLIPScore above retrieval "
        f"{mark(bars['clip_score_above_retrieval'])}; CHAIR-i {_cell(bars['chair_i'], '.1%')} at most half "
        f"the baseline's ({_cell(bars['chair_i_limit'], '.1%')}) "
        f"{mark(bars['chair_i_at_most_half_retrieval'])}; "
        f"pointing game {_cell(bars['pointing_game'], '.1%')} 15 points above the centre "
        f"({_cell(bars['pointing_game_centre'], '.1%')}) {mark(bars['pointing_game_15_above_centre'])}"
    )


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
