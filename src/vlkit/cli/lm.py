"""`vlkit lm ...`: train the small GPT-2 caption language model (the embedded default's decoder)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from vlkit.data.captions import load_caption_dataset
from vlkit.errors import VlkitError
from vlkit.models.lm import LmTrainConfig, train_lm

app = typer.Typer(help="Train a small GPT-2 on captions, text only.", no_args_is_help=True)
console = Console()


@app.command("train")
def train(
    data: Path = typer.Option(
        ...,
        "--data",
        help="A shapes world folder, or a folder with train.json, val.json (optional) and images/ in the "
        "COCO caption layout; only the captions are read.",
    ),
    out: Path = typer.Option(
        ..., "--out", help="LM folder to write (HF layout: config.json, model.safetensors, tokenizer)."
    ),
    steps: int = typer.Option(None, "--steps", help="Optimizer steps (default: the config's)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Captions per step."),
    learning_rate: float = typer.Option(None, "--learning-rate", help="Peak learning rate."),
    seed: int = typer.Option(0, "--seed", help="Seed of the weights and the data order."),
    mixed_precision: str = typer.Option("auto", "--mixed-precision", help="no, bf16, fp16 or auto."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest complete checkpoint."),
) -> None:
    """Train a GPT-2 (4 layers, width 128, 40 positions) on `eos caption eos` rows; same seed, same bytes."""
    config = LmTrainConfig()
    config.loop.seed, config.loop.mixed_precision = seed, mixed_precision
    for name, value in (("steps", steps), ("learning_rate", learning_rate), ("batch_size", batch_size)):
        if value is not None and value <= 0:
            raise VlkitError(f"--{name.replace('_', '-')}: must be positive, got {value}")
    config.loop.steps = steps or config.loop.steps
    config.loop.learning_rate = learning_rate or config.loop.learning_rate
    config.batch_size = batch_size or config.batch_size
    captions = load_caption_dataset(data / "train.json", data / "images", check_files=False).all_captions()
    val_file = data / "val.json"
    val = (
        load_caption_dataset(val_file, data / "images", check_files=False).all_captions()
        if val_file.is_file()
        else []
    )
    train_lm(config, captions, out, val, resume=resume)
    console.print(f"[green]saved[/] {out}  (loss log: {out / 'train_log.jsonl'})")
