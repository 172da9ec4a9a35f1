"""`vlkit caption ...`: train a captioner with one tuning method, and caption a folder of images."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from rich.console import Console

from vlkit.data.captions import load_caption_dataset
from vlkit.data.classification import IMAGE_EXTENSIONS
from vlkit.data.files import write_json_atomic
from vlkit.errors import VlkitError
from vlkit.generate import DecodingConfig, predict_captions
from vlkit.models.captioner import load_captioner
from vlkit.models.clip import resolve_device
from vlkit.models.tuning import TUNING_METHODS, tuning_method
from vlkit.models.tuning.base import option_help
from vlkit.train.caption_trainer import CaptionTrainConfig, train_captioner

app = typer.Typer(help="Train an image captioner and caption images.", no_args_is_help=True)
console = Console()

_METHODS_HELP = " | ".join(f"{name}: {method.summary}" for name, method in TUNING_METHODS.items())
_OPTIONS_HELP = " | ".join(
    f"{name}: {option_help(method)}" for name, method in TUNING_METHODS.items() if option_help(method)
)


@app.command("train")
def train(
    data: Path = typer.Option(
        ...,
        "--data",
        help="Folder with train.json and (optional) val.json, COCO caption layout (e.g. a shapes world).",
    ),
    encoder: str = typer.Option(
        ...,
        "--encoder",
        help="Vision encoder: hub id or folder (CLIP, SigLIP or ViT; a CLIP gives its tower).",
    ),
    decoder: str = typer.Option(..., "--decoder", help="GPT-2-family decoder: hub id or folder (e.g. gpt2)."),
    tuning: str = typer.Option("lora", "--tuning", help=f"What trains. {_METHODS_HELP}."),
    out: Path = typer.Option(
        ..., "--out", help="Captioner folder to write (HF layout); the best is OUT/best."
    ),
    tuning_option: list[str] = typer.Option(
        [], "--tuning-option", help=f"KEY=VALUE for the method's config, repeatable. {_OPTIONS_HELP}."
    ),
    train_images: Path = typer.Option(
        None, "--train-images", help="Root of train.json's files [DATA/images]."
    ),
    val_images: Path = typer.Option(None, "--val-images", help="Root of val.json's files [DATA/images]."),
    steps: int = typer.Option(None, "--steps", help="Optimizer steps (default 1000 unless --epochs)."),
    epochs: int = typer.Option(None, "--epochs", help="Train for this many epochs (overrides --steps)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images (one caption each) per step."),
    learning_rate: float = typer.Option(1e-3, "--learning-rate", help="Peak learning rate."),
    warmup_steps: int = typer.Option(
        50, "--warmup-steps", help="Linear warm-up steps before the cosine decay."
    ),
    max_caption_tokens: int = typer.Option(
        32, "--max-caption-tokens", help="Caption tokens kept, end included."
    ),
    checkpoint_every: int = typer.Option(200, "--checkpoint-every", help="Steps between checkpoints."),
    val_limit: int = typer.Option(None, "--val-limit", help="Validate CIDEr-D on the first N val images."),
    feature_cache: bool = typer.Option(
        True, "--feature-cache/--no-feature-cache", help="Cache a frozen encoder's features on disk."
    ),
    feature_cache_dir: Path = typer.Option(
        None,
        "--feature-cache-dir",
        help="Folder of feature caches, shareable between runs [OUT/feature_cache].",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the new weights, the data order and dropout."),
    mixed_precision: str = typer.Option("auto", "--mixed-precision", help="no, bf16, fp16 or auto."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest complete checkpoint."),
) -> None:
    """Teacher-force a captioner on the training captions; validation CIDEr-D after every epoch."""
    method = tuning_method(tuning)
    for name, value in (
        ("steps", steps),
        ("epochs", epochs),
        ("batch-size", batch_size),
        ("learning-rate", learning_rate),
        ("checkpoint-every", checkpoint_every),
        ("val-limit", val_limit),
    ):
        if value is not None and value <= 0:
            raise VlkitError(f"--{name}: must be positive, got {value}")
    tuning_config = method.config_from_options(tuning_option)
    config = CaptionTrainConfig(
        encoder=encoder,
        decoder=decoder,
        tuning=tuning,
        tuning_config=dataclasses.asdict(tuning_config),
        max_caption_tokens=max_caption_tokens,
        batch_size=batch_size,
        epochs=epochs,
        feature_cache=feature_cache,
        feature_cache_dir=str(feature_cache_dir) if feature_cache_dir else None,
        val_limit=val_limit,
    )
    loop = config.loop
    loop.steps = steps or loop.steps
    loop.learning_rate, loop.warmup_steps, loop.checkpoint_every = (
        learning_rate,
        warmup_steps,
        checkpoint_every,
    )
    loop.seed, loop.mixed_precision = seed, mixed_precision
    train_set = load_caption_dataset(data / "train.json", train_images or data / "images")
    val_file = data / "val.json"
    val_set = load_caption_dataset(val_file, val_images or data / "images") if val_file.is_file() else None
    result = train_captioner(config, train_set, val_set, out, resume=resume)
    console.print(f"[bold]{tuning}[/]: {result.parameters.describe()}")
    console.print(f"[green]saved[/] {out}  (loss log: {out / 'train_log.jsonl'})")
    if result.best_dir is not None:
        console.print(
            f"best validation CIDEr-D {result.best_cider:.4f} at step {result.best_step}: {result.best_dir}"
        )


@app.command("predict")
def predict(
    model: Path = typer.Option(..., "--model", help="Captioner folder written by `vlkit caption train`."),
    images: Path = typer.Option(..., "--images", help="Folder of images to caption (not recursive)."),
    out: Path = typer.Option(
        ..., "--out", help='PRED.json to write: {"file name without extension": caption}.'
    ),
    beams: int = typer.Option(1, "--beams", help="Beam width; 1 is greedy search."),
    max_length: int = typer.Option(None, "--max-length", help="Longest caption in tokens [training length]."),
    length_penalty: float = typer.Option(1.0, "--length-penalty", help="Beam score = logp / length ** X."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per generate call."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
) -> None:
    """Caption every image of a folder (greedy or beam search) into a DLCV-style predictions JSON."""
    decoding = DecodingConfig(
        num_beams=beams, max_new_tokens=max_length, length_penalty=length_penalty, batch_size=batch_size
    )
    paths = _image_files(images)
    captioner = load_captioner(model, resolve_device(device))
    predictions = predict_captions(captioner, paths, decoding)
    write_json_atomic(out, predictions)
    console.print(f"[green]wrote[/] {len(predictions)} captions to {out}")


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise VlkitError(f"--images {folder}: folder not found")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise VlkitError(f"--images {folder}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    stems: dict[str, Path] = {}
    for path in paths:
        if path.stem in stems:
            raise VlkitError(
                f"--images {folder}: {stems[path.stem].name} and {path.name} share the stem {path.stem!r}, "
                "the predictions' key"
            )
        stems[path.stem] = path
    return paths
