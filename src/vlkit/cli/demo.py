"""`vlkit demo`: the whole study on the embedded default (the shapes world), end to end.

Each stage writes into its own folder under --out and is skipped when its output is already complete, so a
demo stopped half way continues where it stopped (the CLIP resumes from its newest checkpoint).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from vlkit.cli.zeroshot import run_zeroshot
from vlkit.data.captions import CaptionDataset, load_caption_dataset
from vlkit.data.files import write_json_atomic
from vlkit.data.shapes import ShapesConfig, generate_world, load_world_meta
from vlkit.evaluate import EvaluationRequest, run_evaluation
from vlkit.generate import predict_captions
from vlkit.models.captioner import load_captioner
from vlkit.models.clip import ClipSpec
from vlkit.models.lm import LmTrainConfig, train_lm
from vlkit.train.caption_trainer import CaptionTrainConfig, train_captioner
from vlkit.train.clip_trainer import ClipTrainConfig, train_clip

console = Console()


@dataclass
class DemoPlan:
    """Sizes of the demo; `quick` shrinks everything for a smoke test of the whole path."""

    world: ShapesConfig
    clip: ClipTrainConfig
    lm: LmTrainConfig
    captioner_steps: int


def demo_plan(seed: int, quick: bool) -> DemoPlan:
    world = ShapesConfig(seed=seed)
    clip = ClipTrainConfig()
    clip.loop.seed, clip.group_size = seed, world.contrast_group
    lm = LmTrainConfig()
    lm.loop.seed, captioner_steps = seed, 1000
    if quick:
        world = ShapesConfig(seed=seed, n_train=64, n_val=16, per_class_train=1, per_class_val=1, workers=1)
        clip.loop.steps, clip.loop.checkpoint_every, clip.batch_size = 4, 2, 16
        lm.loop.steps, lm.batch_size, captioner_steps = 4, 16, 4
    return DemoPlan(world, clip, lm, captioner_steps)


def _stage(name: str) -> float:
    console.rule(f"[bold]{name}")
    return time.perf_counter()


def _world_is_current(world: Path, config: ShapesConfig) -> bool:
    if not (world / "meta.json").is_file():
        return False
    meta = load_world_meta(world)
    return (meta["seed"], meta["n_train"], meta["n_val"]) == (config.seed, config.n_train, config.n_val)


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for every output of the demo."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice in the demo."),
    quick: bool = typer.Option(
        False, "--quick", help="A tiny world and a few steps: checks the path, not quality."
    ),
) -> None:
    """Run the study on the embedded default: shapes world, CLIP from scratch, zero-shot prompt analysis,
    a GPT-2 and a cross-attention captioner, caption metrics."""
    plan, timings = demo_plan(seed, quick), {}
    world, clip_dir = out / "world", out / "clip"

    start = _stage("1. the shapes world")
    if _world_is_current(world, plan.world):
        console.print(f"reusing {world}")
    else:
        summary = generate_world(plan.world, world)
        console.print(
            f"{summary.n_train} train / {summary.n_val} val images, {len(summary.classes)} classes, "
            f"held out: {', '.join(f'{c} {s}' for c, s in summary.heldout)}"
        )
    timings["world_s"] = time.perf_counter() - start
    # Read (and checked) once, for the CLIP, the LM and the captioner.
    train_set = load_caption_dataset(world / "train.json", world / "images")
    val_set = load_caption_dataset(world / "val.json", world / "images")

    start = _stage("2. a CLIP trained from scratch")
    if (clip_dir / "model.safetensors").is_file():
        console.print(f"reusing {clip_dir}")
    else:
        train_clip(plan.clip, train_set, val_set, clip_dir, resume=True)
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
    _print_caption_metrics(captioning["metrics"])
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
    console.print(f"[green]done[/] in {sum(timings.values()):.0f} s; outputs in {out}")


def _captioning_stages(
    plan: DemoPlan,
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
    if (lm_dir / "model.safetensors").is_file():
        console.print(f"reusing {lm_dir}")
    else:
        train_lm(plan.lm, train_set.all_captions(), lm_dir, val_set.all_captions(), resume=True)
    timings["lm_train_s"] = time.perf_counter() - start

    start = _stage("5. the cross-attention captioner (CLIP vision tower and GPT-2 frozen)")
    if (captioner_dir / "model.safetensors").is_file():
        console.print(f"reusing {captioner_dir}")
    else:
        config = CaptionTrainConfig(encoder=str(clip_dir), decoder=str(lm_dir), tuning="cross-attn")
        config.loop.seed, config.loop.steps = plan.clip.loop.seed, plan.captioner_steps
        config.loop.checkpoint_every = max(1, plan.captioner_steps // 4)
        train_captioner(config, train_set, val_set, captioner_dir, resume=True)
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
    report = run_evaluation(request)
    timings["captioning_eval_s"] = time.perf_counter() - start
    metrics = report["metrics"]
    console.print(f"captions evaluated: {request.out / 'metrics.json'}")
    return {"metrics_file": str(request.out / "metrics.json"), "metrics": metrics}


def _print_caption_metrics(metrics: dict) -> None:
    table = Table(title="cross-attention captioner on the validation images")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, entry in metrics.items():
        value = entry.get("value")
        table.add_row(name, "unavailable" if value is None else f"{value:.4f}")
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
