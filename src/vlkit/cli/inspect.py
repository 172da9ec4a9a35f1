"""`vlkit data inspect`: load a caption or classification dataset, read every image, print a summary.

The loaders in `vlkit.data` do the validating and `images.scan_images` the reading; this command picks the
loader from what `path` is (a JSON file: captions; a folder: classification; a `.tar` shard or brace pattern:
WebDataset shards, streamed) and prints with rich.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from vlkit.data.captions import CaptionDataset, load_caption_dataset
from vlkit.data.classification import ClassificationDataset, load_classification_dataset
from vlkit.data.images import ImageScan, check_policy, scan_images
from vlkit.errors import VlkitError

SKIPPED_SHOWN = 20  # longer lists are cut; the count is always printed


def inspect(
    path: Path = typer.Argument(
        ...,
        help="A caption annotation JSON file, a classification folder, or WebDataset shards "
        "('DIR/data-{000000..000009}.tar').",
    ),
    images: Path | None = typer.Option(
        None, "--images", help="Folder the file names of a caption annotation file are relative to."
    ),
    on_bad_image: str = typer.Option(
        "error", "--on-bad-image", help="What an unreadable image does: 'error' stops, 'skip' reports it."
    ),
) -> None:
    """Check a dataset: validate its annotations, read every image, and summarize it."""
    policy = check_policy(on_bad_image)
    console = Console()
    if path.name.endswith(".tar") and not path.is_dir():
        _inspect_shards(console, str(path), policy)
    elif path.is_dir():
        if images is not None:
            raise VlkitError(f"--images: only for a caption annotation file, but {path} is a folder")
        dataset = load_classification_dataset(path)
        scan = scan_images(dataset.paths, on_bad_image=policy)
        _print_classification(console, dataset, scan)
    elif path.is_file():
        if images is None:
            raise VlkitError(f"{path}: a caption annotation file needs --images, the folder of its images")
        # Under "skip" a missing image is reported with the other unreadable ones instead of stopping here.
        captions = load_caption_dataset(path, images, check_files=policy == "error")
        scan = scan_images(captions.image_paths(), on_bad_image=policy)
        _print_captions(console, captions, scan)
    else:
        raise VlkitError(f"{path}: not found (expected a caption annotation file or a dataset folder)")


def _inspect_shards(console: Console, pattern: str, policy: str) -> None:
    """Stream every sample, decode every image, and summarize the shard set."""
    from vlkit.data.shards import ShardSet
    from vlkit.runtime.progress import track

    shards = ShardSet.open(pattern)
    captions, labels, sizes, skipped = [], [], [], []
    for sample in track(shards.stream(), "read shards", total=shards.total):
        captions.append(len(sample.captions))
        if "label" in sample.extra:
            labels.append(sample.extra["label"])
        try:
            sizes.append(sample.image.size)
        except VlkitError as exc:
            if policy == "error":
                raise
            skipped.append(str(exc))
    table = Table(title=f"WebDataset shards {pattern}", show_header=False)
    table.add_row("shards", str(len(shards.urls)))
    table.add_row("samples", str(shards.total))
    table.add_row("samples per shard", _spread(shards.counts))
    table.add_row("captions per sample", _spread(captions))
    if labels:
        table.add_row("classification labels", f"{len(set(labels))} distinct, {len(labels)} samples")
    _add_image_rows(table, shards.total, sizes, len(skipped))
    console.print(table)
    for reason in skipped[:SKIPPED_SHOWN]:
        console.print(f"skipped: {reason}")


def _print_captions(console: Console, dataset: CaptionDataset, scan: ImageScan) -> None:
    per_image = [len(image.captions) for image in dataset.images]
    words = [len(caption.split()) for caption in dataset.all_captions()]
    table = Table(title=f"caption dataset {dataset.annotations}", show_header=False)
    table.add_row("image root", str(dataset.image_root))
    table.add_row("images", str(len(dataset)))
    table.add_row("captions", str(len(words)))
    table.add_row("captions per image", _spread(per_image))
    table.add_row("words per caption", _spread(words))
    _add_image_rows(table, len(dataset), scan.sizes, len(scan.skipped))
    console.print(table)
    _print_skipped(console, scan)


def _print_classification(console: Console, dataset: ClassificationDataset, scan: ImageScan) -> None:
    table = Table(title=f"classification dataset {dataset.root}", show_header=False)
    table.add_row("layout", dataset.layout)
    table.add_row("images", str(len(dataset)))
    table.add_row("classes", str(len(dataset.class_names)))
    _add_image_rows(table, len(dataset), scan.sizes, len(scan.skipped))
    console.print(table)
    classes = Table(title="classes")
    classes.add_column("label", justify="right")
    classes.add_column("class name")
    classes.add_column("images", justify="right")
    for label, (name, count) in enumerate(zip(dataset.class_names, dataset.class_counts(), strict=True)):
        classes.add_row(str(label), name, str(count))
    console.print(classes)
    _print_skipped(console, scan)


def _add_image_rows(table: Table, total: int, sizes: Sequence[tuple[int, int]], skipped: int) -> None:
    """Rows for the readable images (their sizes, width by height) and the count of skipped ones."""
    table.add_row("readable images", f"{len(sizes)} of {total}")
    table.add_row("skipped images", str(skipped))
    if sizes:
        table.add_row("image width", _spread([width for width, _ in sizes]))
        table.add_row("image height", _spread([height for _, height in sizes]))


def _print_skipped(console: Console, scan: ImageScan) -> None:
    if not scan.skipped:
        return
    table = Table(title=f"skipped images ({len(scan.skipped)})")
    table.add_column("file")
    table.add_column("reason")
    for skipped in scan.skipped[:SKIPPED_SHOWN]:
        # The reason starts with the path already; show only what is wrong.
        table.add_row(str(skipped.path), skipped.reason.removeprefix(f"{skipped.path}: "))
    console.print(table)
    if len(scan.skipped) > SKIPPED_SHOWN:
        console.print(f"... and {len(scan.skipped) - SKIPPED_SHOWN} more")


def _spread(values: Sequence[int]) -> str:
    if not values:
        return "-"
    return f"min {min(values)}, mean {sum(values) / len(values):.1f}, max {max(values)}"
