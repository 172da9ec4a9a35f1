"""`vlkit zeroshot`: zero-shot classification with per-template prompt analysis, from one image pass."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from vlkit.data.classification import ID2LABEL_FILE, load_classification_dataset, read_class_names
from vlkit.data.files import write_bytes_atomic, write_json_atomic
from vlkit.data.images import check_policy
from vlkit.data.shards import UNSEEN_FILE, expand_shards
from vlkit.distributed import is_main_process
from vlkit.errors import VlkitError
from vlkit.models.clip import Clip, ClipSpec, load_clip
from vlkit.viz.plots import confusion_matrix_chart, template_bar_chart
from vlkit.zeroshot import (
    analyse_embeddings,
    analyse_prompts,
    analysis_to_json,
    check_labels,
    encode_shard_images,
    resolve_templates,
    unseen_classes_of_world,
    validate_templates,
)

console = Console()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def zeroshot(
    model: str = typer.Option(..., "--model", help="Hub id, local folder, or open_clip:ARCH/PRETRAINED."),
    data: Path = typer.Option(
        None,
        "--data",
        help="Classification folder: {class_id}_{n}.png + "
        "id2label.json, or one sub-folder per class (ImageFolder).",
    ),
    shards: str = typer.Option(
        None,
        "--shards",
        help="Instead of --data: classification shards written by `vlkit data shard --classification`, "
        "'DIR/data-{000000..000009}.tar' or a URL pattern (class names: DIR/id2label.json or --class-names).",
    ),
    templates: str = typer.Option(
        "seed",
        "--templates",
        help="seed, imagenet80, or a text file with one template per line, {object} marking the class name.",
    ),
    out: Path = typer.Option(
        Path("zeroshot.json"), "--out", help="RESULTS.json to write; the charts go beside it."
    ),
    class_names: str = typer.Option(
        None,
        "--class-names",
        help="Class names file (text, one per line, or JSON list / id2label) overriding the dataset's.",
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 or fp16 weights and activations."),
    on_bad_image: str = typer.Option(
        "error", "--on-bad-image", help="error: stop at an unreadable image; skip: leave it out and count it."
    ),
    top: int = typer.Option(10, "--top", help="Templates shown in the console table."),
) -> None:
    """Score every prompt template alone and their ensemble on one pass over the images."""
    check_policy(on_bad_image)
    if (data is None) == (shards is None):
        raise VlkitError("give either --data (a classification folder) or --shards (a shard pattern)")
    spec = ClipSpec(model, device=device, precision=precision)
    result = run_zeroshot(spec, data or shards, templates, out, class_names, batch_size, on_bad_image)
    if not is_main_process():
        return
    print_table(result, top)
    if result["skipped"]:
        console.print(f"[yellow]skipped {len(result['skipped'])} unreadable image(s)[/] (listed in {out})")
    stem = out.with_suffix("")
    console.print(f"wrote {out}, {stem}_templates.png, {stem}_confusion.png")


def run_zeroshot(
    spec: ClipSpec,
    data: Path | str,
    templates: str,
    out: Path,
    class_names: str | None = None,
    batch_size: int = 64,
    on_bad_image: str = "error",
    clip: Clip | None = None,
) -> dict:
    """Load, analyse, write RESULTS.json and its two charts; return the results document. `data` is a
    classification folder (a Path) or a shard pattern (a str)."""
    template_list = resolve_templates(templates)
    if isinstance(data, str):
        names, unseen = _shard_classes(data, class_names)
        clip = clip or load_clip(spec)
        validate_templates(template_list)
        encoded = encode_shard_images(clip, expand_shards(data), batch_size, on_bad_image)
        check_labels(encoded.labels, names)
        analysis = analyse_embeddings(clip, encoded.embeddings, encoded.labels, names, template_list, unseen)
        result = analysis_to_json(analysis, encoded.names, spec.name, data)
    else:
        dataset = load_classification_dataset(data, class_names)
        names = dataset.class_names
        unseen = unseen_classes_of_world(data, names)
        clip = clip or load_clip(spec)
        analysis = analyse_prompts(
            clip, dataset.paths, dataset.labels, names, template_list, unseen, batch_size, on_bad_image
        )
        result = analysis_to_json(analysis, dataset.paths, spec.name, str(data))
    if not is_main_process():  # under `accelerate launch` every process has the result; one writes it
        return result
    write_json_atomic(out, result)
    stem = out.with_suffix("")
    top1 = [t.top1 for t in analysis.templates]
    write_bytes_atomic(
        f"{stem}_templates.png", template_bar_chart(template_list, top1, analysis.ensemble.top1)
    )
    write_bytes_atomic(
        f"{stem}_confusion.png",
        confusion_matrix_chart(result["confusion"]["matrix"], names, "ensemble confusion"),
    )
    return result


def _shard_classes(pattern: str, class_names: str | None) -> tuple[list[str], list[int]]:
    """Class names of classification shards (--class-names, else the id2label.json beside a local first
    shard) and the ids of the held-out classes (unseen_classes.json beside it, when there)."""
    first = Path(expand_shards(pattern)[0])
    local = "://" not in pattern and not pattern.startswith("pipe:")
    if class_names is not None:
        names = read_class_names(class_names)
    elif local and (first.parent / ID2LABEL_FILE).is_file():
        names = read_class_names(first.parent / ID2LABEL_FILE)
    else:
        raise VlkitError(f"--shards {pattern}: no {ID2LABEL_FILE} beside the shards; pass --class-names")
    unseen_file = first.parent / UNSEEN_FILE
    unseen_names = set(json.loads(unseen_file.read_text())) if local and unseen_file.is_file() else set()
    return names, [i for i, name in enumerate(names) if name in unseen_names]


def print_table(result: dict, top: int) -> None:
    has_split = bool(result["unseen_classes"])
    table = Table(title=f"zero-shot on {result['n_images']} images, {result['n_classes']} classes")
    for column in ["template", "top-1", "top-5"] + (["seen top-1", "unseen top-1"] if has_split else []):
        table.add_column(column, justify="left" if column == "template" else "right")
    rows = sorted(result["templates"], key=lambda t: t["top1"], reverse=True)[:top]
    for row in rows + [{"template": "[bold]ensemble[/]", **result["ensemble"]}]:
        cells = [row["template"], _pct(row["top1"]), _pct(row["top5"])]
        table.add_row(*cells, *([_pct(row["seen_top1"]), _pct(row["unseen_top1"])] if has_split else []))
    console.print(table)
