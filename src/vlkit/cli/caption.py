"""`vlkit caption ...`: train a captioner with one tuning method, caption images, sweep the methods, draw
the attention maps. Options come from the configs' fields; the library loads on use, not for `--help`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from rich.console import Console

from vlkit.captioning.config import DecodingConfig
from vlkit.cli.options import build, config_options
from vlkit.cli.train_data import SHUFFLE_BUFFER, TRAIN_SHARDS
from vlkit.data.classification import IMAGE_EXTENSIONS
from vlkit.errors import VlkitError
from vlkit.models.tuning import TUNING_METHODS
from vlkit.models.tuning.base import option_help
from vlkit.runtime.precision import PRECISION_HELP
from vlkit.train.config import CaptionTrainConfig

app = typer.Typer(help="Train an image captioner and caption images.", no_args_is_help=True)
console = Console()

_OPTIONS_HELP = " | ".join(
    f"{name}: {option_help(method)}" for name, method in TUNING_METHODS.items() if option_help(method)
)


@app.command("train")
@config_options(CaptionTrainConfig)
def train(
    ctx: typer.Context,
    values: dict,
    data: Path = typer.Option(
        None,
        "--data",
        help="Folder with train.json and (optional) val.json, COCO caption layout (e.g. a shapes world); "
        "with --temporal, the video layout: DATA/train/annotations.json and DATA/train/videos/, optional "
        "DATA/val/ (e.g. `vlkit data shapes-video`).",
    ),
    train_shards: str = TRAIN_SHARDS,
    shuffle_buffer: int = SHUFFLE_BUFFER,
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
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest complete checkpoint."),
) -> None:
    """Teacher-force a captioner on the training captions; validation CIDEr-D after every epoch."""
    from vlkit.cli.context import allow_pickle
    from vlkit.data.training import training_data
    from vlkit.models.tuning import tuning_method
    from vlkit.runtime.distributed import process_state
    from vlkit.train.caption_trainer import train_captioner

    config = build(CaptionTrainConfig, values)
    method = tuning_method(config.captioner.tuning)
    tuning_config = dataclasses.asdict(method.config_from_options(tuning_option))
    config = dataclasses.replace(
        config, captioner=dataclasses.replace(config.captioner, tuning_config=tuning_config)
    )
    if config.captioner.temporal:
        from vlkit.train.video_trainer import load_video_splits, train_video_captioner

        if data is None:
            raise VlkitError("--temporal: give --data, a folder in the video caption layout")
        train_videos, val_videos = load_video_splits(data)
        result = train_video_captioner(
            config, train_videos, val_videos, out, resume=resume, allow_pickle=allow_pickle(ctx)
        )
    else:
        train_set, val_set = training_data(data, train_shards, shuffle_buffer, train_images, val_images)
        result = train_captioner(
            config, train_set, val_set, out, resume=resume, allow_pickle=allow_pickle(ctx)
        )
    if not process_state().is_main_process:  # under `accelerate launch`: one report, from the main process
        return
    console.print(f"[bold]{method.name}[/]: {result.parameters.describe()}")
    console.print(f"[green]saved[/] {out}  (loss log: {out / 'train_log.jsonl'})")
    if result.best_dir is not None:
        console.print(
            f"best validation CIDEr-D {result.best_cider:.4f} at step {result.best_step}: {result.best_dir}"
        )


@app.command("predict")
@config_options(DecodingConfig, "decoding")
def predict(
    decoding: dict,
    model: Path = typer.Option(..., "--model", help="Captioner folder written by `vlkit caption train`."),
    images: Path = typer.Option(None, "--images", help="Folder of images to caption (not recursive)."),
    videos: Path = typer.Option(
        None,
        "--videos",
        help="Instead of --images: a folder of videos for a video captioner, sampled as it was trained (or a "
        "split's annotations.json of the video layout: its videos).",
    ),
    shards: str = typer.Option(
        None,
        "--shards",
        help="Instead of --images: WebDataset shards, e.g. 'DIR/data-{000000..000099}.tar' or a URL pattern.",
    ),
    out: Path = typer.Option(
        ..., "--out", help='PRED.json to write: {"file name without extension": caption}.'
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
) -> None:
    """Caption every image of a folder or of WebDataset shards (greedy search, beam search or seeded
    sampling) into a DLCV-style predictions JSON (captions only), with how they were made beside it in
    PRED.run.json (model, precision, decoding)."""
    from vlkit.captioning.generate import predict_captions, predict_shard_captions
    from vlkit.data.shards import expand_shards
    from vlkit.models.captioner.model import load_captioner
    from vlkit.models.clip import PRECISIONS, resolve_device
    from vlkit.runtime.distributed import process_state
    from vlkit.runtime.files import write_json_atomic
    from vlkit.runtime.precision import resolve_precision_name

    config = build(DecodingConfig, decoding)
    if [images, shards, videos].count(None) != 2:
        raise VlkitError("give one of --images, --videos and --shards")
    paths = _image_files(images) if images is not None else _video_files(videos) if videos else []
    target = resolve_device(device)
    precision_name = resolve_precision_name(precision, target)  # what `auto` became on this device
    captioner = load_captioner(model, target, PRECISIONS[precision_name])
    if shards is not None:
        predictions = predict_shard_captions(captioner, expand_shards(shards), config)
    elif videos is not None:
        from vlkit.captioning.video import predict_video_captions

        predictions = predict_video_captions(captioner, paths, config)
    else:
        predictions = predict_captions(captioner, paths, config)
    if not process_state().is_main_process:  # every process has every caption; one writes them
        return
    write_json_atomic(out, predictions)
    source = {"images": str(images) if images else None, "shards": shards}
    if videos is not None:
        source["videos"] = str(videos)
    decoding_used = dataclasses.asdict(config)
    run = {"model": str(model), **source, "n_captions": len(predictions), "precision": precision_name,
           "decoding": decoding_used}  # fmt: skip
    write_json_atomic(out.with_name(f"{out.stem}.run.json"), run)
    console.print(f"[green]wrote[/] {len(predictions)} captions to {out} (precision {precision_name})")


def _video_files(folder: Path) -> list[Path]:
    """The files of a video folder, or of a video-layout split (SPLIT/annotations.json: its videos only)."""
    from vlkit.data.video import VIDEO_EXTENSIONS, list_videos

    if folder.is_file() and folder.suffix == ".json":
        from vlkit.data.video_captions import load_video_captions

        return load_video_captions(folder, folder.parent / "videos", require_captions=False).video_paths()
    if not folder.is_dir():
        raise VlkitError(f"--videos {folder}: folder not found")
    paths = list_videos(folder)
    if not paths:
        raise VlkitError(f"--videos {folder}: no video files ({', '.join(VIDEO_EXTENSIONS)})")
    stems = [path.stem for path in paths]
    if len(set(stems)) != len(stems):
        twice = next(stem for stem in stems if stems.count(stem) > 1)
        raise VlkitError(f"--videos {folder}: two files share the stem {twice!r}, the predictions' key")
    return paths


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


_SWEEP_BUDGET = ("steps", "batch_size", "learning_rate", "val_limit", "seed", "connector_layers", "connector")
# How every method's validation captions are decoded; --seed and --batch-size are the training's here, and
# the sampling draws from the training seed.
_DECODING = ("beams", "max_length", "length_penalty", "sample", "top_p", "top_k", "temperature")
_REPETITION = ("no_repeat_ngram", "repetition_penalty")


@app.command("sweep")
@config_options(CaptionTrainConfig, only=_SWEEP_BUDGET, defaults={"steps": 600, "val_limit": 200})
@config_options(DecodingConfig, "decoding", only=_DECODING + _REPETITION)
def sweep(
    values: dict,
    decoding: dict,
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
    work_dir: Path = typer.Option(
        None,
        "--work-dir",
        help="Folder for the trained models and their outputs (default: OUT without .json).",
    ),
    quick: bool = typer.Option(
        False, "--quick", help="A tiny embedded default: checks the path, not quality."
    ),
    processes: int = typer.Option(
        1,
        "--processes",
        min=1,
        help="Methods trained at once, each in its own process with its share of the cores (2 on 2 cores: "
        "about 1.4x the steps per second for small models).",
    ),
) -> None:
    """Train every tuning method with the same budget and compare them in one table (with no data
    arguments, on the embedded default: its world with the shipped vlkit:shapes-clip and vlkit:shapes-gpt2,
    or a CLIP and an LM trained on another seed's world; --val-limit 0 scores every validation image). The
    decoding options say how the validation captions are made (greedy by default; --sample draws from
    --seed)."""
    from vlkit.data.captions import load_caption_dataset
    from vlkit.pipelines.embedded import embedded_plan, ensure_clip, ensure_lm, ensure_world
    from vlkit.pipelines.sweep import SweepConfig, check_methods, run_sweep, sweep_markdown

    if values["val_limit"] is not None and values["val_limit"] < 0:
        raise VlkitError(f"--val-limit: must be 0 (all) or positive, got {values['val_limit']}")
    values["val_limit"] = values["val_limit"] or None
    if out.suffix != ".json":
        raise VlkitError(f"--out {out}: must name a .json file")
    chosen = check_methods([m.strip() for m in methods.split(",") if m.strip()])
    if decoding["sample"]:
        decoding["seed"] = values["loop"]["seed"]
    decoding_config = build(DecodingConfig, decoding)
    # Built (and so checked) before the embedded default is made; its parts' folders are filled in below.
    train = build(
        CaptionTrainConfig,
        values,
        captioner={"encoder": encoder or "", "decoder": decoder or ""},
        loop={"warmup_steps": 0},
    )
    work = work_dir or out.with_suffix("")
    if data is None:
        if encoder or decoder:
            raise VlkitError(
                "--encoder/--decoder need --data (without it the sweep builds the embedded default)"
            )
        plan = embedded_plan(train.loop.seed, quick)
        train_set, val_set, _ = ensure_world(plan.world, work / "world")
        if quick or train.loop.seed != 0:  # not the stand-ins' world: a CLIP and an LM trained on this one
            console.print(f"embedded default under {work}: world, CLIP and LM (reused when already there)")
            ensure_clip(plan.clip, work / "world", work / "clip")
            ensure_lm(plan.lm, train_set, val_set, work / "world", work / "lm")
            encoder, decoder = str(work / "clip"), str(work / "lm")
        else:
            from vlkit.pipelines.standins import check_standins_world

            check_standins_world(work / "world")
            encoder, decoder = "vlkit:shapes-clip", "vlkit:shapes-gpt2"
            console.print(f"embedded default: the world under {work}, the shipped {encoder} and {decoder}")
        clip_model = clip_model or encoder
        if quick:
            loop = dataclasses.replace(train.loop, steps=min(train.loop.steps, 4))
            train = dataclasses.replace(train, loop=loop, batch_size=min(train.batch_size, 16))
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
    captioner = dataclasses.replace(train.captioner, encoder=encoder, decoder=decoder)
    warmup = min(50, max(1, train.loop.steps // 10))  # a tenth of the budget, at most 50 steps
    loop = dataclasses.replace(train.loop, warmup_steps=warmup)
    train = dataclasses.replace(train, captioner=captioner, loop=loop)
    sweep = SweepConfig(train, chosen, clip_model, processes=processes, decoding=decoding_config)
    report = run_sweep(sweep, train_set, val_set, out, work / "runs")
    console.print(sweep_markdown(report))
    console.print(f"[green]wrote[/] {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")


@app.command("attend")
@config_options(DecodingConfig, "decoding", defaults={"batch_size": 16})
def attend(
    decoding: dict,
    model: Path = typer.Option(..., "--model", help="Captioner folder written by `vlkit caption train`."),
    out: Path = typer.Option(
        ..., "--out", help="Folder for figures/, maps/ (.npy), captions.json and grounding.json."
    ),
    images: Path = typer.Option(None, "--images", help="Folder of images to caption (not recursive)."),
    videos: Path = typer.Option(
        None,
        "--videos",
        help="Instead: a folder of videos (a concat or seq captioner), or a split's annotations.json of the "
        "video layout: a frames x words figure per clip.",
    ),
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
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
) -> None:
    """For every generated word, where the decoder looked: figures, raw maps and (on the shapes world)
    the pointing game against the centre and random baselines."""
    from vlkit.captioning.attention import Aggregation
    from vlkit.models.captioner.model import load_captioner
    from vlkit.models.clip import resolve_device
    from vlkit.pipelines.attend import AttendRequest, grounding_summary, run_attend

    if [images, annotations, videos].count(None) != 2:
        raise VlkitError(
            "give exactly one of --images or --videos (a folder) and --annotations (a shapes-world file)"
        )
    if figures < 0:
        raise VlkitError(f"--figures: must be 0 or more, got {figures}")
    if videos is not None:
        from vlkit.pipelines.attend_video import VideoAttendRequest, run_video_attend

        video_request = VideoAttendRequest(
            out,
            _video_files(videos),
            Aggregation.parse(heads, layers),
            figures,
            build(DecodingConfig, decoding),
        )
        video_report = run_video_attend(load_captioner(model, resolve_device(device)), video_request)
        console.print(
            f"[green]wrote[/] {video_report['n_videos']} captions with their frame attention to {out}"
        )
        return
    request = AttendRequest(
        out=out,
        images=_image_files(images) if images is not None else [],
        annotations=annotations,
        image_root=image_root,
        aggregation=Aggregation.parse(heads, layers),
        figures=figures,
        decoding=build(DecodingConfig, decoding),
    )
    captioner = load_captioner(model, resolve_device(device))
    report = run_attend(captioner, request)
    console.print(f"[green]wrote[/] {report['n_images']} captions with their maps to {out}")
    if "grounding" in report:
        console.print(f"{grounding_summary(report['grounding'])}  ({out / 'grounding.json'})")
