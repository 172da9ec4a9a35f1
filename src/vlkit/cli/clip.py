"""`vlkit clip ...`: train a CLIP from scratch (the embedded default's) in the HF layout."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.console import Console

from vlkit.cli.options import build, config_options
from vlkit.cli.train_data import SHUFFLE_BUFFER, TRAIN_SHARDS
from vlkit.errors import VlkitError
from vlkit.train.config import ClipTrainConfig

app = typer.Typer(help="Train a CLIP from scratch on a caption dataset.", no_args_is_help=True)
console = Console()
log = logging.getLogger(__name__)


@app.command("train")
@config_options(ClipTrainConfig)
def train(
    values: dict,
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
    swap_group: list[str] = typer.Option(
        [],
        "--swap-group",
        help="Comma-separated interchangeable words (e.g. circle,square,star), repeatable: each caption gets "
        "a hard negative with one such word swapped (NegCLIP). Off by default: no gain within the "
        "embedded default's budget (docs/embedded-default.md).",
    ),
    scene_captions: bool = typer.Option(
        False,
        "--scene-captions",
        help="With a shapes world: train on its scene captions (train.json) instead of its alt-text corpus; "
        "the CLIP then learns shapes far more slowly (docs/embedded-default.md).",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest complete checkpoint."),
) -> None:
    """Train a CLIP with the symmetric contrastive loss; same seed, same weights."""
    from vlkit.data.training import training_data
    from vlkit.runtime.distributed import process_state
    from vlkit.shapes.meta import is_world, load_world_meta
    from vlkit.shapes.world import ALT_TEXT_DIR
    from vlkit.train.clip_trainer import train_clip

    groups = [[w.strip() for w in group.split(",") if w.strip()] for group in swap_group]
    if any(len(group) < 2 for group in groups):
        raise VlkitError("--swap-group: each group needs at least two comma-separated words")
    fixed: dict = {"swap_groups": groups}
    if train_shards is None and data is not None and is_world(data):
        if scene_captions:  # batch its contrast groups together
            fixed["group_size"] = int(load_world_meta(data).get("contrast_group", 1))
        else:
            data = data / ALT_TEXT_DIR
            log.info("%s is a shapes world: training on its alt-text corpus %s", data.parent, data)
    elif scene_captions:
        raise VlkitError("--scene-captions: --data must be a shapes world (a folder with meta.json)")
    config = build(ClipTrainConfig, values, **fixed)
    train_set, val_set = training_data(data, train_shards, shuffle_buffer)
    train_clip(config, train_set, val_set, out, resume=resume)
    if process_state().is_main_process:  # under `accelerate launch`: one report, from the main process
        console.print(f"[green]saved[/] {out}  (loss log: {out / 'train_log.jsonl'})")
