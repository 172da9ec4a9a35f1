"""`vlkit data ...`: generate the shapes world and its clips, inspect datasets, write WebDataset shards."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from vlkit.cli.inspect import inspect
from vlkit.cli.options import build, config_options
from vlkit.errors import VlkitError
from vlkit.shapes.clips import QUICK_SIZES, ClipsConfig, ClipsSummary, make_clips
from vlkit.shapes.world import ALT_TEXT_DIR, COLOURS, SHAPES, ShapesConfig, WorldSummary, generate_world

app = typer.Typer(
    help="Generate the shapes world and its clips, inspect datasets, write shards.", no_args_is_help=True
)
app.command("inspect")(inspect)


@app.command("shapes")
@config_options(ShapesConfig)
def shapes(
    values: dict,
    out: Path = typer.Option(..., "--out", help="World folder: absent, empty, or an earlier world."),
) -> None:
    """Generate the shapes world: captioned scenes with masks, classification images, held-out classes."""
    summary = generate_world(build(ShapesConfig, values), out)
    _print_summary(Console(), summary)


@app.command("shapes-video")
@config_options(ClipsConfig)
def shapes_video(
    values: dict,
    out: Path = typer.Option(..., "--out", help="Clips folder: absent, empty, or earlier clips."),
    quick: bool = typer.Option(
        False,
        "--quick",
        help=f"{QUICK_SIZES['n_train']} train and {QUICK_SIZES['n_val']} val clips (over "
        "--train / --val): checks the path.",
    ),
) -> None:
    """Generate MP4 clips of the shapes world whose captions need time, with per-frame ground truth."""
    summary = make_clips(out, build(ClipsConfig, {**values, **(QUICK_SIZES if quick else {})}))
    _print_clips_summary(Console(), summary)


def _print_clips_summary(console: Console, summary: ClipsSummary) -> None:
    table = Table(title=f"shapes clips in {summary.out_dir}", show_header=False)
    table.add_row("clips", f"{summary.n_train} train, {summary.n_val} val (MP4, H.264)")
    table.add_row("captions", str(summary.n_captions))
    table.add_row("stories", ", ".join(f"{story} {count}" for story, count in summary.stories.items()))
    table.add_row("ground truth", str(summary.out_dir / "truth.json"))
    table.add_row("time", f"{summary.seconds:.1f} s")
    console.print(table)


def _print_summary(console: Console, summary: WorldSummary) -> None:
    counts = Table(title=f"shapes world in {summary.out_dir}", show_header=False)
    counts.add_row("captioned images", f"{summary.n_train} train, {summary.n_val} val")
    counts.add_row("captions", str(summary.n_captions))
    counts.add_row(
        "classification images", f"{summary.n_classification_train} train, {summary.n_classification_val} val"
    )
    counts.add_row(
        "alt-text images (the CLIP's corpus)",
        f"{summary.n_alt_text} train, {summary.n_alt_text_val} val in {summary.out_dir / ALT_TEXT_DIR}",
    )
    counts.add_row(
        "classes",
        f"{len(summary.classes)} ({len(COLOURS)} colours x {len(SHAPES)} shapes), "
        f"{len(summary.heldout)} held out of training",
    )
    counts.add_row("time", f"{summary.seconds:.1f} s")
    console.print(counts)
    heldout = set(summary.heldout)
    grid = Table(title="classes (x = held out: in no training image or caption)")
    grid.add_column("")
    for shape in SHAPES:
        grid.add_column(shape, justify="center")
    for colour in COLOURS:
        grid.add_row(colour, *("[bold red]x[/]" if (colour, shape) in heldout else "." for shape in SHAPES))
    console.print(grid)


@app.command("video-layout")
def video_layout(
    out: Path = typer.Option(
        ..., "--out", help="Folder of one split, e.g. DATA/train: annotations.json, videos/."
    ),
    videos: Path = typer.Option(..., "--videos", help="The folder of the dataset's video files."),
    split: str = typer.Option(
        ...,
        "--split",
        help="MSR-VTT: train, validate (val) or test (2016 captioning split); MSVD: train, val, test.",
    ),
    msrvtt: Path = typer.Option(
        None, "--msrvtt", help="MSR-VTT's annotation JSON (train_val_videodatainfo.json, ...)."
    ),
    msvd: Path = typer.Option(None, "--msvd", help="MSVD's AllVideoDescriptions.txt."),
    mapping: Path = typer.Option(
        None, "--mapping", help="MSVD: youtube_mapping.txt (the standard 1200/100/670 split)."
    ),
    video_list: Path = typer.Option(
        None,
        "--video-list",
        help="Instead of a standard split: a list of videos (MSR-VTT's retrieval lists, e.g. the 1k-A test "
        "CSV; one MSVD clip a line).",
    ),
) -> None:
    """Write one split of MSR-VTT or MSVD in the video caption layout `vlkit caption train --data` reads;
    the split read is named on the console and in the file (captioning and retrieval splits differ)."""
    from vlkit.data.video_captions import load_msrvtt, load_msvd, write_video_layout

    if (msrvtt is None) == (msvd is None):
        raise VlkitError("give either --msrvtt (MSR-VTT's JSON) or --msvd (MSVD's AllVideoDescriptions.txt)")
    for flag, path in (
        ("--msrvtt", msrvtt),
        ("--msvd", msvd),
        ("--mapping", mapping),
        ("--video-list", video_list),
    ):
        if path is not None and not path.is_file():
            raise VlkitError(f"{flag} {path}: file not found")
    if not videos.is_dir():
        raise VlkitError(f"--videos {videos}: folder not found")
    if msrvtt is not None:
        data = load_msrvtt(msrvtt, videos, split, video_list=video_list)
    else:
        data = load_msvd(msvd, videos, split, mapping=mapping, video_list=video_list)
    written = write_video_layout(data, out)
    Console().print(
        f"[green]wrote[/] {written}: {data.split}, {len(data)} videos, {len(data.all_captions())} captions",
        soft_wrap=True,
    )


@app.command("shard")
def shard(
    out: Path = typer.Option(..., "--out", help="Folder for data-000000.tar, data-000001.tar, ..."),
    annotations: Path = typer.Option(
        None, "--annotations", help="COCO-layout caption JSON (e.g. WORLD/train.json) to write as shards."
    ),
    classification: Path = typer.Option(
        None,
        "--classification",
        help="Instead of --annotations: a classification folder (e.g. WORLD/classification/val), for "
        "`vlkit zeroshot --shards`; id2label.json is written beside the shards.",
    ),
    images: Path = typer.Option(
        None, "--images", help="Root of the annotation file's images (default: its folder/images)."
    ),
    per_shard: int = typer.Option(1000, "--per-shard", help="Samples per tar shard."),
) -> None:
    """Write a caption dataset (or a classification folder) as WebDataset tar shards, img2dataset layout:
    KEY.png, KEY.txt (or KEY.cls), KEY.json."""
    from vlkit.data.shards import write_classification_shards, write_shards

    if (annotations is None) == (classification is None):
        raise VlkitError("give either --annotations (captions) or --classification (a classification folder)")
    if annotations is not None:
        from vlkit.data.captions import load_caption_dataset

        dataset = load_caption_dataset(annotations, images or annotations.parent / "images")
        shards = write_shards(dataset, out, per_shard)
        count = len(dataset)
    else:
        from vlkit.data.classification import load_classification_dataset
        from vlkit.shapes.meta import unseen_classes_of_world

        classes = load_classification_dataset(classification)
        unseen = unseen_classes_of_world(classification, classes.class_names)
        shards = write_classification_shards(
            classes, out, per_shard, [classes.class_names[i] for i in unseen]
        )
        count = len(classes)
    Console().print(
        f"[green]wrote[/] {count} samples in {len(shards)} shard(s) to {out} "
        f"(read them as {out}/data-{{000000..{len(shards) - 1:06d}}}.tar)",
        soft_wrap=True,  # a path to copy, not to wrap
    )
