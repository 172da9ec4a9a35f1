"""`vlkit vilbert ...`: pre-train ViLBERT on a shapes world's captions, fine-tune it on the world's VQA,
referring expressions and retrieval, and evaluate it. Options come from `VilbertTrainConfig`'s fields; the
library loads on use, not for `--help`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from vlkit.cli.options import build, config_options
from vlkit.cli.vilbert_study import study
from vlkit.errors import VlkitError
from vlkit.train.vilbert_train_config import PHASE_STEPS, VilbertTrainConfig

app = typer.Typer(help="ViLBERT on the shapes world: pre-train, fine-tune, evaluate.", no_args_is_help=True)
console = Console()
app.command("study")(study)  # the study of the variants, peers and baselines: `vlkit.cli.vilbert_study`

WORLD_HELP = "Shapes world folder (`vlkit data shapes --out DIR` makes one); required."
RESUME_HELP = "Continue from the newest complete checkpoint in OUT."


@app.command("pretrain")
@config_options(VilbertTrainConfig, defaults={"steps": PHASE_STEPS["pretrain"]})
def pretrain(
    values: dict,
    world: Path = typer.Option(None, "--world", help=WORLD_HELP),
    out: Path = typer.Option(
        ..., "--out", help="Run folder to write: the model (HF layout), log, checkpoints."
    ),
    resume: bool = typer.Option(False, "--resume", help=RESUME_HELP),
    annotations: Path = typer.Option(
        None,
        "--annotations",
        help="Real images instead of a world: a COCO caption file (with --images, --boxes).",
    ),
    images: Path = typer.Option(None, "--images", help="The folder of --annotations' images."),
    boxes: Path = typer.Option(
        None,
        "--boxes",
        help="A detector's boxes for those images, COCO detection layout: "
        '{"annotations": [{"image_id", "bbox"}]}.',
    ),
) -> None:
    """Pre-train on the world's captions: masked words, masked regions (KL to their class distribution) and
    image-text alignment. With --annotations, --images and --boxes: on real images and a detector's boxes
    (masked words and alignment; the boxes have no classes to predict)."""
    from vlkit.train.vilbert_setup import check_world, load_detection_run_data
    from vlkit.train.vilbert_trainer import pretrain as run_pretrain

    config = build(VilbertTrainConfig, values)
    real = [name for name, value in (("--annotations", annotations), ("--images", images), ("--boxes", boxes))
            if value is not None]  # fmt: skip
    if real and world is not None:
        raise VlkitError("--world and --annotations/--images/--boxes: give one data source, not both")
    if real and len(real) < 3:
        missing = sorted({"--annotations", "--images", "--boxes"} - set(real))
        raise VlkitError(f"{', '.join(real)} given without {', '.join(missing)}: real images need all three")
    if real:
        data = load_detection_run_data(config, annotations, images, boxes)
        outcome = run_pretrain(config, None, out, resume=resume, data=data)
    else:
        outcome = run_pretrain(config, check_world(world), out, resume=resume)
    console.print(
        f"[green]saved[/] {out}: {outcome.parameters:,} parameters, {outcome.steps} steps in "
        f"{outcome.seconds:.1f} s, final loss {outcome.final_loss:.4f} (log: {out / 'train_log.jsonl'})"
    )


@app.command("finetune")
@config_options(VilbertTrainConfig, defaults={"steps": PHASE_STEPS["finetune"]})
def finetune(
    values: dict,
    world: Path = typer.Option(None, "--world", help=WORLD_HELP),
    out: Path = typer.Option(
        ..., "--out", help="Run folder to write: the last model, OUT/best, log, checkpoints."
    ),
    init: Path = typer.Option(
        None,
        "--init",
        help="A `vlkit vilbert pretrain` folder to start from (its model, tokenizer, regions and encoder); "
        "none: a new model.",
    ),
    resume: bool = typer.Option(False, "--resume", help=RESUME_HELP),
) -> None:
    """Fine-tune on VQA, referring expressions and retrieval together (one weighted loss); the best
    validation VQA accuracy's weights go to OUT/best."""
    from vlkit.train.vilbert_setup import check_world
    from vlkit.train.vilbert_trainer import finetune as run_finetune

    config = build(VilbertTrainConfig, values)
    outcome = run_finetune(config, check_world(world), out, init_dir=init, resume=resume)
    console.print(
        f"[green]saved[/] {out}: {outcome.parameters:,} parameters, {outcome.steps} steps in "
        f"{outcome.seconds:.1f} s, final loss {outcome.final_loss:.4f} (log: {out / 'train_log.jsonl'})"
    )
    if outcome.best_dir is not None:
        console.print(f"best validation VQA accuracy {outcome.best_val_vqa_accuracy:.4f}: {outcome.best_dir}")


@app.command("evaluate")
def evaluate(
    model: Path = typer.Option(..., "--model", help="A `vlkit vilbert finetune` folder (or its best/)."),
    world: Path = typer.Option(None, "--world", help=WORLD_HELP),
    out: Path = typer.Option(None, "--out", help="eval.json to write (default: print only)."),
    threads: int = typer.Option(0, "--threads", help="Torch CPU threads (0: the run's setting)."),
) -> None:
    """VQA accuracy (by type, held-out combinations apart), referring accuracy beside the centre-box and
    largest-box baselines, and text-to-image retrieval R@1/5/10 (re-ranking) on the world's val split."""
    import dataclasses

    from vlkit.models.vilbert.vl_models import vl_model_kind
    from vlkit.train.vilbert_eval import evaluate as run_evaluate
    from vlkit.train.vilbert_setup import check_world, read_train_config

    vl_model_kind(model)
    world = check_world(world)
    config = read_train_config(model) or VilbertTrainConfig()
    if threads:
        config = dataclasses.replace(config, threads=threads)
    results = run_evaluate(model, world, out, config=config)
    _print_results(results)
    if out is not None:
        console.print(f"[green]wrote[/] {out}")


def _print_results(results: dict) -> None:
    def percent(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    table = Table(title="ViLBERT on the validation split", show_header=True)
    table.add_column("figure")
    table.add_column("seen combinations", justify="right")
    table.add_column("held out", justify="right")
    table.add_row("VQA accuracy", percent(results["vqa_accuracy"]), percent(results["vqa_heldout_accuracy"]))
    for name, value in results["vqa_by_type"].items():
        table.add_row(f"  {name}", percent(value), percent(results["vqa_heldout_by_type"][name]))
    table.add_row("  baseline: type prior", percent(results["vqa_baselines"]["type_prior"]), "")
    table.add_row(
        "referring accuracy", percent(results["refer_accuracy"]), percent(results["refer_heldout_accuracy"])
    )
    for name, value in results["refer_baselines"].items():
        table.add_row(f"  baseline: {name}", percent(value), "")
    for k in (1, 5, 10):
        table.add_row(
            f"retrieval R@{k}",
            percent(results[f"retrieval_r{k}"]),
            percent(results.get(f"retrieval_heldout_r{k}")),
        )
    console.print(table)
    console.print(f"retrieval: {results['retrieval_protocol']}; {results['params']:,} parameters")
