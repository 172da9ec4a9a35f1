"""`vlkit clip ...`: train a CLIP from scratch (the embedded default's) in the HF layout."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.console import Console

from vlkit.cli.train_data import SHUFFLE_BUFFER, TRAIN_SHARDS, training_data
from vlkit.data.shapes import ALT_TEXT_DIR, load_world_meta
from vlkit.distributed import process_state
from vlkit.errors import VlkitError
from vlkit.train.clip_trainer import ClipTrainConfig, train_clip

app = typer.Typer(help="Train a CLIP from scratch on a caption dataset.", no_args_is_help=True)
console = Console()
log = logging.getLogger(__name__)


@app.command("train")
def train(
    data: Path = typer.Option(
        None,
        "--data",
        help="A shapes world (trains on its alt-text corpus, WORLD/alt_text), or a folder with train.json, "
        "val.json (optional) and images/ in the COCO caption layout.",
    ),
    train_shards: str = TRAIN_SHARDS,
    shuffle_buffer: int = SHUFFLE_BUFFER,
    out: Path = typer.Option(
        ...,
        "--out",
        help="Model folder to write (HF layout: config.json, model.safetensors, tokenizer, preprocessor).",
    ),
    steps: int = typer.Option(None, "--steps", help="Optimizer steps (default: the config's)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Images per step."),
    learning_rate: float = typer.Option(None, "--learning-rate", help="Peak learning rate."),
    seed: int = typer.Option(0, "--seed", help="Seed of the weights and the data order."),
    mixed_precision: str = typer.Option("auto", "--mixed-precision", help="no, bf16, fp16 or auto."),
    checkpoint_every: int = typer.Option(None, "--checkpoint-every", help="Steps between checkpoints."),
    log_every: int = typer.Option(None, "--log-every", help="Steps between loss log records (default 10)."),
    swap_group: list[str] = typer.Option(
        [],
        "--swap-group",
        help="Comma-separated interchangeable words (e.g. circle,square,star), repeatable: each caption gets "
        "a hard negative with one such word swapped (NegCLIP). Off by default: no gain within the 4-minute "
        "budget on the shapes world (see the README).",
    ),
    scene_captions: bool = typer.Option(
        False,
        "--scene-captions",
        help="With a shapes world: train on its scene captions (train.json) instead of its alt-text corpus; "
        "the CLIP then learns shapes far more slowly (see the README).",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest complete checkpoint."),
) -> None:
    """Train a CLIP with the symmetric contrastive loss; same seed, same weights."""
    config = ClipTrainConfig()
    loop = config.loop
    loop.seed, loop.mixed_precision = seed, mixed_precision
    for name, value in (
        ("steps", steps),
        ("learning_rate", learning_rate),
        ("checkpoint_every", checkpoint_every),
        ("log_every", log_every),
    ):
        if value is not None:
            if value <= 0:
                raise VlkitError(f"--{name.replace('_', '-')}: must be positive, got {value}")
            setattr(loop, name, value)
    if batch_size is not None:
        if batch_size < 2:
            raise VlkitError(f"--batch-size: must be at least 2 for a contrastive loss, got {batch_size}")
        config.batch_size = batch_size
    groups = [[w.strip() for w in group.split(",") if w.strip()] for group in swap_group]
    if any(len(group) < 2 for group in groups):
        raise VlkitError("--swap-group: each group needs at least two comma-separated words")
    config.swap_groups = groups
    if train_shards is None and data is not None and (data / "meta.json").is_file():
        meta = load_world_meta(data)  # a shapes world
        if scene_captions:  # batch its contrast groups together
            config.group_size = int(meta.get("contrast_group", 1))
        else:
            data = data / ALT_TEXT_DIR
            log.info("%s is a shapes world: training on its alt-text corpus %s", data.parent, data)
    elif scene_captions:
        raise VlkitError("--scene-captions: --data must be a shapes world (a folder with meta.json)")
    train_set, val_set = training_data(data, train_shards, shuffle_buffer)
    train_clip(config, train_set, val_set, out, resume=resume)
    if process_state().is_main_process:  # under `accelerate launch`: one report, from the main process
        console.print(f"[green]saved[/] {out}  (loss log: {out / 'train_log.jsonl'})")
