"""`vlkit retrieval`: image-to-text and text-to-image recall of one CLIP on one caption set (parses, calls
`vlkit.pipelines.retrieval.run_retrieval`, prints)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from vlkit.runtime.precision import PRECISION_HELP

console = Console()


def retrieval(
    ctx: typer.Context,
    model: list[str] = typer.Option(
        ...,
        "--model",
        help="Hub id, local folder, or open_clip:ARCH/PRETRAINED; repeat it for a models x datasets table.",
    ),
    annotations: list[Path] = typer.Option(
        None,
        "--annotations",
        help="COCO-layout caption file: every image with its captions; repeat it (each with its --images) "
        "for several datasets.",
    ),
    images: list[Path] = typer.Option(
        None, "--images", help="Folder the annotation file names are relative to, one per --annotations."
    ),
    shards: list[str] = typer.Option(
        None,
        "--shards",
        help="Instead of (or beside) --annotations/--images: caption shards written by `vlkit data shard`, "
        "'DIR/data-{000000..000009}.tar' or a URL pattern.",
    ),
    out: Path = typer.Option(
        Path("retrieval.json"),
        "--out",
        help="R.json to write. With several models or datasets: the table (also .csv and .md), each "
        "pair's R.json in the folder of the same name.",
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="Images or captions per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    on_bad_image: str = typer.Option(
        "error",
        "--on-bad-image",
        help="error: stop at an unreadable image; skip: leave it and its captions out, and list it.",
    ),
) -> None:
    """Image-text retrieval: R@1/5/10, median and mean rank both ways, one pass over images and captions."""
    from vlkit.cli.context import allow_pickle
    from vlkit.cli.grid import print_grid
    from vlkit.data.images import check_policy
    from vlkit.models.clip import ClipSpec
    from vlkit.pipelines.retrieval import retrieval_sources, run_retrieval, run_retrieval_grid
    from vlkit.runtime.distributed import is_main_process

    check_policy(on_bad_image)
    sources = retrieval_sources(annotations or [], images or [], shards or [])
    specs = [ClipSpec(m, device=device, precision=precision, allow_pickle=allow_pickle(ctx)) for m in model]
    if len(specs) > 1 or len(sources) > 1:
        table = run_retrieval_grid(specs, sources, out, batch_size, on_bad_image)
        if is_main_process():
            print_grid(table)
            console.print(
                f"wrote {out}, {out.with_suffix('.csv')}, {out.with_suffix('.md')}, {out.with_suffix('')}/"
            )
        return
    document = run_retrieval(specs[0], sources[0], out, batch_size, on_bad_image)
    if not is_main_process():
        return
    print_table(document)
    if document["skipped"]:
        console.print(f"[yellow]skipped {len(document['skipped'])} unreadable image(s)[/] (listed in {out})")
    console.print(f"wrote {out}")


def print_table(document: dict[str, Any]) -> None:
    table = Table(
        title=f"retrieval on {document['n_images']} images, {document['n_texts']} captions "
        f"({document['precision']})"
    )
    table.add_column("direction")
    for column in ("R@1", "R@5", "R@10", "median rank", "mean rank"):
        table.add_column(column, justify="right")
    for direction in ("image_to_text", "text_to_image"):
        figures = document[direction]
        table.add_row(
            direction.replace("_", " "),
            *(f"{figures[k]:.1%}" for k in ("R@1", "R@5", "R@10")),
            f"{figures['median_rank']:g}",
            f"{figures['mean_rank']:.2f}",
        )
    console.print(table)
