"""`vlkit zeroshot`: zero-shot classification with per-template prompt analysis, from one image pass."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from vlkit.errors import VlkitError
from vlkit.runtime.precision import PRECISION_HELP

console = Console()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def zeroshot(
    ctx: typer.Context,
    model: list[str] = typer.Option(
        ...,
        "--model",
        help="CLIP or SigLIP: hub id, local folder, or open_clip:ARCH/PRETRAINED; repeat it for a models x "
        "datasets table.",
    ),
    data: list[Path] = typer.Option(
        None,
        "--data",
        help="Classification folder: {class_id}_{n}.png + "
        "id2label.json, or one sub-folder per class (ImageFolder); repeat it for several datasets.",
    ),
    shards: list[str] = typer.Option(
        None,
        "--shards",
        help="Instead of (or beside) --data: classification shards written by `vlkit data shard "
        "--classification`, 'DIR/data-{000000..000009}.tar' or a URL pattern (class names: "
        "DIR/id2label.json or --class-names).",
    ),
    templates: str = typer.Option(
        "seed",
        "--templates",
        help="seed, imagenet80, or a text file with one template per line, {object} marking the class name.",
    ),
    out: Path = typer.Option(
        Path("zeroshot.json"),
        "--out",
        help="RESULTS.json to write; the charts go beside it. With several models or datasets: the table "
        "(also .csv and .md), each pair's results in the folder of the same name.",
    ),
    class_names: str = typer.Option(
        None,
        "--class-names",
        help="Class names file (text, one per line, or JSON list / id2label) overriding the dataset's.",
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    on_bad_image: str = typer.Option(
        "error", "--on-bad-image", help="error: stop at an unreadable image; skip: leave it out and count it."
    ),
    top: int = typer.Option(10, "--top", help="Templates shown in the console table."),
) -> None:
    """Score every prompt template alone and their ensemble on one pass over the images."""
    from vlkit.cli.context import allow_pickle
    from vlkit.cli.grid import print_grid
    from vlkit.data.images import check_policy
    from vlkit.models.clip import ClipSpec
    from vlkit.pipelines.zeroshot import run_zeroshot, run_zeroshot_grid
    from vlkit.runtime.distributed import is_main_process

    check_policy(on_bad_image)
    datasets: list[Path | str] = [*(data or []), *(shards or [])]
    if not datasets:
        raise VlkitError("give --data (a classification folder) or --shards (a shard pattern)")
    specs = [ClipSpec(m, device=device, precision=precision, allow_pickle=allow_pickle(ctx)) for m in model]
    if len(specs) > 1 or len(datasets) > 1:
        table = run_zeroshot_grid(specs, datasets, templates, out, class_names, batch_size, on_bad_image)
        if is_main_process():
            print_grid(table)
            console.print(
                f"wrote {out}, {out.with_suffix('.csv')}, {out.with_suffix('.md')}, {out.with_suffix('')}/"
            )
        return
    result = run_zeroshot(specs[0], datasets[0], templates, out, class_names, batch_size, on_bad_image)
    if not is_main_process():
        return
    print_table(result, top)
    console.print(f"precision {result['precision']}; probabilities: {result['probabilities']}")
    if result["skipped"]:
        console.print(f"[yellow]skipped {len(result['skipped'])} unreadable image(s)[/] (listed in {out})")
    stem = out.with_suffix("")
    console.print(f"wrote {out}, {stem}_templates.png, {stem}_confusion.png")


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
