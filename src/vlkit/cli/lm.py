"""`vlkit lm ...`: train the small GPT-2 caption language model (the embedded default's decoder)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from vlkit.cli.options import build, config_options
from vlkit.train.config import LmTrainConfig

app = typer.Typer(help="Train a small GPT-2 on captions, text only.", no_args_is_help=True)
console = Console()


@app.command("train")
@config_options(LmTrainConfig)
def train(
    values: dict,
    data: Path = typer.Option(
        ...,
        "--data",
        help="A shapes world folder, or a folder with train.json, val.json (optional) and images/ in the "
        "COCO caption layout; only the captions are read.",
    ),
    out: Path = typer.Option(
        ..., "--out", help="LM folder to write (HF layout: config.json, model.safetensors, tokenizer)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest complete checkpoint."),
) -> None:
    """Train a GPT-2 (4 layers, width 128, 40 positions) on `eos caption eos` rows; same seed, same bytes."""
    from vlkit.data.captions import load_caption_dataset
    from vlkit.train.lm_trainer import train_lm

    config = build(LmTrainConfig, values)
    captions = load_caption_dataset(data / "train.json", data / "images", check_files=False).all_captions()
    val_file = data / "val.json"
    val = (
        load_caption_dataset(val_file, data / "images", check_files=False).all_captions()
        if val_file.is_file()
        else []
    )
    train_lm(config, captions, out, val, resume=resume)
    console.print(f"[green]saved[/] {out}  (loss log: {out / 'train_log.jsonl'})")
