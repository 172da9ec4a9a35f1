"""`vlkit demo`: the whole study on the embedded default (the shapes world), end to end.

Each stage writes into its own folder under --out and is skipped when its output is already complete, so a
demo stopped half way continues where it stopped (the CLIP resumes from its newest checkpoint).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from vlkit.attend import AttendRequest, grounding_summary, run_attend
from vlkit.baselines import retrieval_captions
from vlkit.cli.zeroshot import run_zeroshot
from vlkit.data.captions import CaptionDataset
from vlkit.data.files import write_json_atomic
from vlkit.embedded import (
    EmbeddedPlan,
    embedded_plan,
    ensure_clip,
    ensure_lm,
    ensure_world,
    is_made_from,
    start_from,
)
from vlkit.evaluate import EvaluationRequest, run_evaluation
from vlkit.generate import predict_captions
from vlkit.models.captioner import load_captioner
from vlkit.models.clip import ClipSpec, load_clip
from vlkit.report import write_report
from vlkit.train.caption_trainer import CaptionTrainConfig, train_captioner

console = Console()


def _stage(name: str) -> float:
    console.rule(f"[bold]{name}")
    return time.perf_counter()


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for every output of the demo."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice in the demo."),
    quick: bool = typer.Option(
        False, "--quick", help="A tiny world and a few steps: checks the path, not quality."
    ),
) -> None:
    """Run the study on the embedded default: shapes world, CLIP from scratch, zero-shot prompt analysis,
    a GPT-2 and a cross-attention captioner, caption metrics."""
    plan, timings = embedded_plan(seed, quick), {}
    world, clip_dir = out / "world", out / "clip"

    start = _stage("1. the shapes world")
    # Read (and checked) once, for the CLIP, the LM and the captioner.
    train_set, val_set, summary = ensure_world(plan.world, world)
    if summary is not None:  # (a reused world is logged by ensure_world)
        console.print(
            f"{summary.n_train} train / {summary.n_val} val images, {len(summary.classes)} classes, "
            f"held out: {', '.join(f'{c} {s}' for c, s in summary.heldout)}"
        )
    timings["world_s"] = time.perf_counter() - start

    start = _stage("2. a CLIP trained from scratch on the world's alt-text corpus")
    if ensure_clip(plan.clip, world, clip_dir):
        console.print(f"reusing {clip_dir}")
    timings["clip_train_s"] = time.perf_counter() - start

    start = _stage("3. zero-shot prompt analysis")
    results = {}
    for templates in ("seed", "imagenet80"):
        results[templates] = run_zeroshot(
            ClipSpec(str(clip_dir)),
            world / "classification" / "val",
            templates,
            out / "zeroshot" / f"{templates}.json",
        )
    timings["zeroshot_s"] = time.perf_counter() - start

    captioning = _captioning_stages(plan, world, train_set, val_set, clip_dir, out, timings)
    _print_summary(results)
    _print_caption_metrics(captioning["metrics"], captioning["retrieval_baseline"])
    write_json_atomic(
        out / "summary.json",
        {
            "timings": timings,
            "zeroshot": {
                name: {"best_template": r["best_template"], "best": _best(r), "ensemble": r["ensemble"]}
                for name, r in results.items()
            },
            "captioning": captioning,
        },
    )
    if captioning.get("grounding"):
        console.print(grounding_summary(captioning["grounding"]))
    index = write_report(out)
    console.print(f"[green]done[/] in {sum(timings.values()):.0f} s; outputs in {out}")
    console.print(f"[bold]report:[/] {index}")


def _captioning_stages(
    plan: EmbeddedPlan,
    world: Path,
    train_set: CaptionDataset,
    val_set: CaptionDataset,
    clip_dir: Path,
    out: Path,
    timings: dict,
) -> dict:
    """The decoder LM, the cross-attention captioner on the CLIP's frozen vision tower, and its evaluation."""
    lm_dir, captioner_dir = out / "lm", out / "captioner"

    start = _stage("4. a GPT-2 trained on the captions alone")
    if ensure_lm(plan.lm, train_set, val_set, world, lm_dir):
        console.print(f"reusing {lm_dir}")
    timings["lm_train_s"] = time.perf_counter() - start

    start = _stage("5. the cross-attention captioner (CLIP vision tower and GPT-2 frozen)")
    if is_made_from(captioner_dir, world):
        console.print(f"reusing {captioner_dir}")
    else:
        config = CaptionTrainConfig(encoder=str(clip_dir), decoder=str(lm_dir), tuning="cross-attn")
        config.loop.seed, config.loop.steps = plan.clip.loop.seed, plan.captioner_steps
        config.loop.checkpoint_every = max(1, plan.captioner_steps // 4)
        train_captioner(config, train_set, val_set, captioner_dir, resume=start_from(captioner_dir, world))
    timings["captioner_train_s"] = time.perf_counter() - start

    start = _stage("6. captions for the validation images, evaluated")
    captioner = load_captioner(captioner_dir)
    predictions_path = out / "captions" / "val_predictions.json"
    write_json_atomic(predictions_path, predict_captions(captioner, val_set.image_paths()))
    request = EvaluationRequest(
        predictions=predictions_path,
        annotations=world / "val.json",
        images=world / "images",
        out=out / "captions" / "evaluation",
        model=str(clip_dir),
        metrics=("cider", "clip_score", "ref_clip_score", "chair", "attributes"),
        allow_empty=True,  # a model's empty caption is a result to score, not a broken file
    )
    clip = load_clip(str(clip_dir))
    report = run_evaluation(request, clip)
    console.print(f"captions evaluated: {request.out / 'metrics.json'}")
    # The bar to beat: the caption of the nearest training image by the same CLIP's image embedding.
    retrieval_path = out / "captions" / "retrieval_predictions.json"
    write_json_atomic(retrieval_path, retrieval_captions(clip, train_set, val_set.image_paths()))
    retrieval = run_evaluation(
        dataclasses.replace(
            request, predictions=retrieval_path, out=out / "captions" / "retrieval_evaluation"
        ),
        clip,
    )
    timings["captioning_eval_s"] = time.perf_counter() - start

    start = _stage("7. attention maps for every word, and grounding measured")
    pairs = report["pairs"]
    stems = {Path(p["file_name"]).stem for key in ("top", "bottom") for p in pairs.get(key, [])}
    attend = run_attend(
        captioner,
        AttendRequest(out=out / "attention", annotations=world / "val.json", figure_stems=stems),
    )
    timings["attention_s"] = time.perf_counter() - start
    return {
        "metrics_file": str(request.out / "metrics.json"),
        "metrics": report["metrics"],
        "retrieval_baseline": retrieval["metrics"],
        "grounding": attend.get("grounding"),
    }


def _print_caption_metrics(metrics: dict, baseline: dict) -> None:
    table = Table(title="cross-attention captioner on the validation images")
    table.add_column("metric")
    table.add_column("captioner", justify="right")
    table.add_column("retrieval baseline", justify="right")
    for name, entry in metrics.items():
        cells = [entry.get("value"), baseline.get(name, {}).get("value")]
        table.add_row(name, *("unavailable" if value is None else f"{value:.4f}" for value in cells))
    console.print(table)


def _best(result: dict) -> dict:
    return max(result["templates"], key=lambda t: t["top1"])


def _print_summary(results: dict[str, dict]) -> None:
    table = Table(title="zero-shot top-1 on the shapes world (classification/val)")
    for column in ("templates", "prompt", "all", "seen", "unseen"):
        table.add_column(column)
    for name, result in results.items():
        for label, row in (("best template", _best(result)), ("ensemble", result["ensemble"])):
            prompt = (
                row.get("template", f"{len(result['templates'])} templates") if label != "ensemble" else label
            )
            table.add_row(name, prompt, *(f"{row[k]:.1%}" for k in ("top1", "seen_top1", "unseen_top1")))
    console.print(table)
