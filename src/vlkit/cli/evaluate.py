"""`vlkit evaluate`: the command line of `vlkit.pipelines.evaluate` (parses, calls `run_evaluation`,
prints)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from vlkit.errors import VlkitError
from vlkit.metrics.names import DEFAULT_PREFIX, METRICS
from vlkit.runtime.precision import PRECISION_HELP

console = Console()


def evaluate(
    ctx: typer.Context,
    predictions: Path = typer.Option(
        ...,
        "--predictions",
        help='PRED.json: {"file stem": caption} (DLCV) or [{"image_id", "caption"}] (COCO results).',
    ),
    annotations: Path = typer.Option(
        ..., "--annotations", help="COCO-layout caption file with the references."
    ),
    images: Path = typer.Option(..., "--images", help="Folder the annotation file names are relative to."),
    out: Path = typer.Option(..., "--out", help="OUT_DIR for metrics.json, per_image.csv/.json, pairs.png."),
    model: str = typer.Option(
        None,
        "--model",
        help="CLIP (or SigLIP) for clip_score / ref_clip_score: hub id, local folder, or "
        "open_clip:ARCH/PRETRAINED.",
    ),
    metrics: str = typer.Option(
        None,
        "--metrics",
        help="Comma-separated, from: " + ", ".join(METRICS) + " (default: all; the CLIP ones need --model).",
    ),
    no_prefix: bool = typer.Option(
        False,
        "--no-prefix",
        help=f"Encode plain captions, not {DEFAULT_PREFIX!r} + caption (the CLIPScore paper's prefix).",
    ),
    tokenizer: str = typer.Option(
        "ptb",
        "--tokenizer",
        help="CIDEr's PTB tokenization: ptb (vlkit's, no Java) or ptb-java (pycocoevalcap's).",
    ),
    top_k: int = typer.Option(5, "--top-k", help="Best and worst pairs by CLIPScore to draw and list."),
    allow_partial: bool = typer.Option(False, "--allow-partial", help="Score only the predicted images."),
    allow_empty: bool = typer.Option(
        False, "--allow-empty", help="Score empty captions as they are instead of refusing the file."
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="Images or texts per CLIP forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    on_bad_image: str = typer.Option(
        "error",
        "--on-bad-image",
        help="error: stop at an unreadable image; skip: leave it out of the CLIP metrics and count it.",
    ),
) -> None:
    """Score predicted captions: CIDEr, CLIPScore, RefCLIPScore, BLEU, METEOR, ROUGE-L, CHAIR, attributes."""
    from vlkit.cli.context import allow_pickle
    from vlkit.pipelines.evaluate import EvaluationRequest, run_evaluation
    from vlkit.runtime.distributed import is_main_process

    request = EvaluationRequest(
        predictions=predictions,
        annotations=annotations,
        images=images,
        out=out,
        model=model,
        metrics=None if metrics is None else parse_metric_names(metrics),
        prefix=None if no_prefix else DEFAULT_PREFIX,
        tokenizer=tokenizer,
        top_k=top_k,
        allow_partial=allow_partial,
        allow_empty=allow_empty,
        batch_size=batch_size,
        device=device,
        precision=precision,
        on_bad_image=on_bad_image,
        allow_pickle=allow_pickle(ctx),
    )
    report = run_evaluation(request)
    if not is_main_process():
        return
    print_table(report)
    drawn = ", pairs.png" if report["pairs"].get("top") else ""
    console.print(f"wrote metrics.json, per_image.csv, per_image.json{drawn} in {out}")


def parse_metric_names(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise VlkitError(
            f"--metrics: unknown {', '.join(map(repr, unknown)) or 'empty list'}; "
            f"choose from {', '.join(METRICS)}"
        )
    return names


def print_table(report: dict[str, Any]) -> None:
    table = Table(title=f"caption metrics on {report['n_images']} images")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, result in report["metrics"].items():
        value = result["value"]
        table.add_row(
            name, f"{value:.4f}" if value is not None else f"[dim]unavailable: {result['unavailable']}[/]"
        )
    console.print(table)
