"""`vlkit probe`: a linear probe on a CLIP's frozen image embeddings beside its zero-shot figure (parses,
calls `vlkit.pipelines.probe.run_probe`, prints)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from vlkit.cli.options import build, config_options
from vlkit.probe.config import ProbeConfig
from vlkit.runtime.precision import PRECISION_HELP

console = Console()


@config_options(ProbeConfig, "values")
def probe(
    ctx: typer.Context,
    values: dict,
    model: list[str] = typer.Option(
        ...,
        "--model",
        help="Hub id, local folder, or open_clip:ARCH/PRETRAINED; repeat it for a models x datasets table.",
    ),
    train: list[Path] = typer.Option(
        ...,
        "--train",
        help="Training classification folder ({class_id}_{n}.png + id2label.json, or ImageFolder); C is "
        "chosen on part of it. Repeat it (each with its --test) for several datasets.",
    ),
    test: list[Path] = typer.Option(
        ..., "--test", help="Test classification folder with the same classes, one per --train."
    ),
    out: Path = typer.Option(
        Path("probe.json"),
        "--out",
        help="P.json to write. With several models or datasets: the table (also .csv and .md), each "
        "pair's P.json in the folder of the same name.",
    ),
    templates: str = typer.Option(
        "seed", "--templates", help="Zero-shot templates: seed, imagenet80, or a file with one per line."
    ),
    class_names: str = typer.Option(
        None,
        "--class-names",
        help="Class names file overriding both folders' (text, or JSON list / id2label).",
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    on_bad_image: str = typer.Option(
        "error", "--on-bad-image", help="error: stop at an unreadable image; skip: leave it out and count it."
    ),
) -> None:
    """Fit a logistic-regression probe on frozen image embeddings (C chosen on held-out training images,
    never on the test split); score it and zero-shot on the test folder."""
    from vlkit.cli.context import allow_pickle
    from vlkit.cli.grid import print_grid
    from vlkit.data.images import check_policy
    from vlkit.models.clip import ClipSpec
    from vlkit.pipelines.probe import probe_splits, run_probe, run_probe_grid
    from vlkit.runtime.distributed import is_main_process

    check_policy(on_bad_image)
    config = build(ProbeConfig, values)
    splits = probe_splits(train, test)
    specs = [ClipSpec(m, device=device, precision=precision, allow_pickle=allow_pickle(ctx)) for m in model]
    if len(specs) > 1 or len(splits) > 1:
        options = (config, templates, class_names, batch_size, on_bad_image)
        table = run_probe_grid(specs, splits, out, *options)
        if is_main_process():
            print_grid(table)
            console.print(
                f"wrote {out}, {out.with_suffix('.csv')}, {out.with_suffix('.md')}, {out.with_suffix('')}/"
            )
        return
    (train_dir, test_dir), spec = splits[0], specs[0]
    result = run_probe(
        spec, train_dir, test_dir, out, config, templates, class_names, batch_size, on_bad_image
    )
    if not is_main_process():
        return
    print_table(result)
    if result["untrained_classes"]:
        names = ", ".join(result["untrained_classes"])
        console.print(f"[yellow]no training image, never predicted by the probe:[/] {names}")
    if result["skipped"]:
        console.print(f"[yellow]skipped {len(result['skipped'])} unreadable image(s)[/] (listed in {out})")
    console.print(f"wrote {out}")


def print_table(result: dict) -> None:
    shots = f"{result['few_shot']}-shot" if result["few_shot"] else "all training images"
    table = Table(title=f"{result['model']} on {result['n_test']} test images, {result['n_classes']} classes")
    for column, justify in (("classifier", "left"), ("top-1", "right"), ("top-5", "right"), ("", "left")):
        table.add_column(column, justify=justify)
    chosen = {"validation": f"on {result['n_val']} held-out", "default": "default", "given": "given"}
    table.add_row(
        "linear probe",
        f"{result['top1']:.1%}",
        f"{result['top5']:.1%}",
        f"{shots}, {result['n_train']} images; C={result['c']:.3g} ({chosen[result['c_chosen_by']]})",
    )
    zeroshot = result["zeroshot"]
    table.add_row(
        "zero-shot",
        f"{zeroshot['top1']:.1%}",
        f"{zeroshot['top5']:.1%}",
        f"ensemble of {len(zeroshot['templates'])} templates",
    )
    console.print(table)
