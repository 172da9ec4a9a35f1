"""`vlkit caption ...`: train a captioner with one tuning method, and caption a folder of images."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from rich.console import Console

from vlkit.cli.train_data import SHUFFLE_BUFFER, TRAIN_SHARDS, training_data
from vlkit.data.captions import load_caption_dataset
from vlkit.data.classification import IMAGE_EXTENSIONS
from vlkit.data.files import write_json_atomic
from vlkit.distributed import process_state
from vlkit.errors import VlkitError
from vlkit.generate import DecodingConfig, predict_captions
from vlkit.models.captioner import load_captioner
from vlkit.models.clip import resolve_device, resolve_precision
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
        None,
        "--data",
        help="Folder with train.json and (optional) val.json, COCO caption layout (e.g. a shapes world).",
    ),
    train_shards: str = TRAIN_SHARDS,
    shuffle_buffer: int = SHUFFLE_BUFFER,
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
        None, "--train-images", help="Root of train.json's files (default: DATA/images)."
    ),
    val_images: Path = typer.Option(
        None, "--val-images", help="Root of val.json's files (default: DATA/images)."
    ),
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
    connector_layers: int = typer.Option(
        0,
        "--connector-layers",
        help="New layers between the image tokens and the cross-attention (they train with every method; "
        "0: none).",
    ),
    connector: str = typer.Option(
        "attention",
        "--connector",
        help="The connector's layers: attention (transformer layers over all tokens) or local (each patch "
        "token mixed with its 3x3 neighbours).",
    ),
    checkpoint_every: int = typer.Option(200, "--checkpoint-every", help="Steps between checkpoints."),
    log_every: int = typer.Option(10, "--log-every", help="Steps between loss log records."),
    val_limit: int = typer.Option(None, "--val-limit", help="Validate CIDEr-D on the first N val images."),
    feature_cache: bool = typer.Option(
        True, "--feature-cache/--no-feature-cache", help="Cache a frozen encoder's features on disk."
    ),
    feature_cache_dir: Path = typer.Option(
        None,
        "--feature-cache-dir",
        help="Folder of feature caches, shareable between runs (default: OUT/feature_cache).",
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
        ("log-every", log_every),
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
        connector_layers=connector_layers,
        connector=connector,
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
    loop.seed, loop.mixed_precision, loop.log_every = seed, mixed_precision, log_every
    train_set, val_set = training_data(data, train_shards, shuffle_buffer, train_images, val_images)
    result = train_captioner(config, train_set, val_set, out, resume=resume)
    if not process_state().is_main_process:  # under `accelerate launch`: one report, from the main process
        return
    console.print(f"[bold]{tuning}[/]: {result.parameters.describe()}")
    console.print(f"[green]saved[/] {out}  (loss log: {out / 'train_log.jsonl'})")
    if result.best_dir is not None:
        console.print(
            f"best validation CIDEr-D {result.best_cider:.4f} at step {result.best_step}: {result.best_dir}"
        )


@app.command("predict")
def predict(
    model: Path = typer.Option(..., "--model", help="Captioner folder written by `vlkit caption train`."),
    images: Path = typer.Option(None, "--images", help="Folder of images to caption (not recursive)."),
    shards: str = typer.Option(
        None,
        "--shards",
        help="Instead of --images: WebDataset shards, e.g. 'DIR/data-{000000..000099}.tar' or a URL pattern.",
    ),
    out: Path = typer.Option(
        ..., "--out", help='PRED.json to write: {"file name without extension": caption}.'
    ),
    beams: int = typer.Option(1, "--beams", help="Beam width; 1 is greedy search."),
    max_length: int = typer.Option(
        None, "--max-length", help="Longest caption in tokens (default: training length)."
    ),
    length_penalty: float = typer.Option(1.0, "--length-penalty", help="Beam score = logp / length ** X."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per generate call."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    precision: str = typer.Option(
        "fp32", "--precision", help="fp32, bf16 or fp16 weights (bf16: faster where the hardware has it)."
    ),
) -> None:
    """Caption every image of a folder or of WebDataset shards (greedy or beam search) into a DLCV-style
    predictions JSON."""
    decoding = DecodingConfig(
        num_beams=beams, max_new_tokens=max_length, length_penalty=length_penalty, batch_size=batch_size
    )
    if (images is None) == (shards is None):
        raise VlkitError("give either --images or --shards")
    paths = _image_files(images) if images is not None else []
    captioner = load_captioner(model, resolve_device(device), resolve_precision(precision))
    if shards is not None:
        from vlkit.data.shards import expand_shards
        from vlkit.generate import predict_shard_captions

        predictions = predict_shard_captions(captioner, expand_shards(shards), decoding)
    else:
        predictions = predict_captions(captioner, paths, decoding)
    if not process_state().is_main_process:  # every process has every caption; one writes them
        return
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


@app.command("sweep")
def sweep(
    out: Path = typer.Option(..., "--out", help="SWEEP.json to write; SWEEP.md and SWEEP.png go beside it."),
    data: Path = typer.Option(
        None,
        "--data",
        help="Folder with train.json, val.json and images/ (COCO layout; default: the embedded default).",
    ),
    encoder: str = typer.Option(
        None, "--encoder", help="Vision encoder: hub id or folder (default: embedded CLIP)."
    ),
    decoder: str = typer.Option(
        None, "--decoder", help="GPT-2-family decoder: hub id or folder (default: embedded LM)."
    ),
    clip_model: str = typer.Option(
        None,
        "--clip-model",
        help="CLIP for CLIPScore and the retrieval baseline (default: the embedded CLIP; none with --data).",
    ),
    methods: str = typer.Option(
        ",".join(TUNING_METHODS), "--methods", help="Comma-separated tuning methods to compare."
    ),
    steps: int = typer.Option(600, "--steps", help="Optimizer steps, the same for every method."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images (one caption each) per step."),
    learning_rate: float = typer.Option(1e-3, "--learning-rate", help="Peak learning rate of every method."),
    val_limit: int = typer.Option(200, "--val-limit", help="Validation images scored (0: all)."),
    work_dir: Path = typer.Option(
        None,
        "--work-dir",
        help="Folder for the trained models and their outputs (default: OUT without .json).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the data order and of every new weight."),
    connector_layers: int = typer.Option(
        0, "--connector-layers", help="Connector layers of every method's captioner (0: none)."
    ),
    connector: str = typer.Option(
        "attention", "--connector", help="The connector's layers: attention or local."
    ),
    quick: bool = typer.Option(
        False, "--quick", help="A tiny embedded default: checks the path, not quality."
    ),
) -> None:
    """Train every tuning method with the same budget and compare them in one table (with no data
    arguments, on the embedded default: it builds the world, CLIP and LM it needs)."""
    from vlkit.embedded import embedded_plan, ensure_clip, ensure_lm, ensure_world
    from vlkit.sweep import SweepConfig, check_methods, run_sweep, sweep_markdown

    for name, value in (("steps", steps), ("batch-size", batch_size), ("learning-rate", learning_rate)):
        if value <= 0:
            raise VlkitError(f"--{name}: must be positive, got {value}")
    if val_limit < 0:
        raise VlkitError(f"--val-limit: must be 0 (all) or positive, got {val_limit}")
    if out.suffix != ".json":
        raise VlkitError(f"--out {out}: must name a .json file")
    chosen = check_methods([m.strip() for m in methods.split(",") if m.strip()])
    work = work_dir or out.with_suffix("")
    if data is None:
        if encoder or decoder:
            raise VlkitError(
                "--encoder/--decoder need --data (without it the sweep builds the embedded default)"
            )
        plan = embedded_plan(seed, quick)
        console.print(f"embedded default under {work}: world, CLIP and LM (reused when already there)")
        train_set, val_set, _ = ensure_world(plan.world, work / "world")
        ensure_clip(plan.clip, work / "world", work / "clip")
        ensure_lm(plan.lm, train_set, val_set, work / "world", work / "lm")
        encoder, decoder = str(work / "clip"), str(work / "lm")
        clip_model = clip_model or encoder
        if quick:
            steps, batch_size = min(steps, 4), min(batch_size, 16)
    else:
        if not encoder or not decoder:
            raise VlkitError("--data needs --encoder and --decoder")
        for name in ("train.json", "val.json"):
            if not (data / name).is_file():
                raise VlkitError(
                    f"--data {data}: {name} not found (the sweep scores every method on val.json)"
                )
        train_set = load_caption_dataset(data / "train.json", data / "images")
        val_set = load_caption_dataset(data / "val.json", data / "images")
    config = SweepConfig(
        encoder=encoder,
        decoder=decoder,
        methods=chosen,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_steps=min(50, max(1, steps // 10)),
        seed=seed,
        val_limit=val_limit or None,
        clip_model=clip_model,
        connector_layers=connector_layers,
        connector=connector,
    )
    report = run_sweep(config, train_set, val_set, out, work / "runs")
    console.print(sweep_markdown(report))
    console.print(f"[green]wrote[/] {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")


@app.command("attend")
def attend(
    model: Path = typer.Option(..., "--model", help="Captioner folder written by `vlkit caption train`."),
    out: Path = typer.Option(
        ..., "--out", help="Folder for figures/, maps/ (.npy), captions.json and grounding.json."
    ),
    images: Path = typer.Option(None, "--images", help="Folder of images to caption (not recursive)."),
    annotations: Path = typer.Option(
        None,
        "--annotations",
        help="Shapes-world annotation file (objects and masks): caption its images and measure grounding.",
    ),
    image_root: Path = typer.Option(
        None, "--image-root", help="Root of the annotation file's images (default: its folder/images)."
    ),
    heads: str = typer.Option("mean", "--heads", help="Reduce the heads by: mean or max."),
    layers: str = typer.Option(
        "mean", "--layers", help="Reduce the layers by: mean, rollout (product), last, or a layer index."
    ),
    figures: int = typer.Option(16, "--figures", help="Draw figures for the first N images."),
    beams: int = typer.Option(1, "--beams", help="Beam width; 1 is greedy search."),
    batch_size: int = typer.Option(16, "--batch-size", help="Images per generate call."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
) -> None:
    """For every generated word, where the decoder looked: figures, raw maps and (on the shapes world)
    the pointing game against the centre and random baselines."""
    from vlkit.attend import AttendRequest, grounding_summary, run_attend
    from vlkit.attention import Aggregation

    if (images is None) == (annotations is None):
        raise VlkitError("give exactly one of --images (a folder) and --annotations (a shapes-world file)")
    if figures < 0:
        raise VlkitError(f"--figures: must be 0 or more, got {figures}")
    request = AttendRequest(
        out=out,
        images=_image_files(images) if images is not None else [],
        annotations=annotations,
        image_root=image_root,
        aggregation=Aggregation.parse(heads, layers),
        figures=figures,
        decoding=DecodingConfig(num_beams=beams, batch_size=batch_size),
    )
    captioner = load_captioner(model, resolve_device(device))
    report = run_attend(captioner, request)
    console.print(f"[green]wrote[/] {report['n_images']} captions with their maps to {out}")
    if "grounding" in report:
        console.print(f"{grounding_summary(report['grounding'])}  ({out / 'grounding.json'})")
