"""`vlkit probe`: a linear probe on a CLIP's frozen image embeddings beside its zero-shot figure (parses,
calls `vlkit.pipelines.probe.run_probe`, prints)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from vlkit.cli.options import build, config_options
from vlkit.probe.config import ProbeConfig

console = Console()


@config_options(ProbeConfig, "values")
def probe(
    ctx: typer.Context,
    values: dict,
    model: str = typer.Option(..., "--model", help="Hub id, local folder, or open_clip:ARCH/PRETRAINED."),
    train: Path = typer.Option(
        ...,
        "--train",
        help="Training classification folder ({class_id}_{n}.png + id2label.json, or ImageFolder); C is "
        "chosen on part of it.",
    ),
    test: Path = typer.Option(..., "--test", help="Test classification folder with the same classes."),
    out: Path = typer.Option(Path("probe.json"), "--out", help="P.json to write."),
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
    precision: str = typer.Option(
        "auto", "--precision", help="auto (bf16 where the device runs it natively), fp32, bf16 or fp16."
    ),
    on_bad_image: str = typer.Option(
        "error", "--on-bad-image", help="error: stop at an unreadable image; skip: leave it out and count it."
    ),
) -> None:
    """Fit a logistic-regression probe on frozen image embeddings (C chosen on held-out training images,
    never on the test split); score it and zero-shot on the test folder."""
    from vlkit.cli.context import allow_pickle
    from vlkit.data.images import check_policy
    from vlkit.models.clip import ClipSpec
    from vlkit.pipelines.probe import run_probe
    from vlkit.runtime.distributed import is_main_process

    check_policy(on_bad_image)
    config = build(ProbeConfig, values)
    spec = ClipSpec(model, device=device, precision=precision, allow_pickle=allow_pickle(ctx))
    result = run_probe(spec, train, test, out, config, templates, class_names, batch_size, on_bad_image)
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
