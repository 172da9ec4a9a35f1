"""`vlkit standins`: the shipped stand-in "pretrained" models (`vlkit:shapes-clip`, `vlkit:shapes-gpt2`):
list them with their manifests, or make them again (`vlkit.pipelines.standins`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="The embedded default's stand-in pretrained models, addressed as vlkit:NAME wherever a model goes.",
    no_args_is_help=True,
)
console = Console()


@app.command("list")
def list_standins() -> None:
    """Show each shipped stand-in: what it is, the command and world it was made from, its figures."""
    from vlkit.models.hub import PREFIX, STANDINS, standin_manifest

    table = Table(title="shipped stand-ins")
    for column in ("name", "what", "made by", "world", "figures (stored fp16)"):
        table.add_column(column)
    for name, description in STANDINS.items():
        manifest = standin_manifest(name)
        world = manifest["world"]
        figures = manifest["figures"]["stored"]
        if "val_loss" in figures:
            shown = f"val loss {figures['val_loss']:.3f}"
        else:
            shown = ", ".join(
                f"{t}: best {f['best']['top1']:.1%} / ensemble {f['ensemble']['top1']:.1%}"
                for t, f in figures.items()
            )
        table.add_row(
            PREFIX + name,
            description,
            f"{manifest['command']} (vlkit {manifest['vlkit_version']})",
            f"seed {world['seed']}, {world['meta_sha256'][:12]}",
            shown,
        )
    console.print(table)


@app.command("make")
def make(
    seed: int = typer.Option(0, "--seed", help="Seed of the world and of both models' training."),
    out: Path = typer.Option(
        None, "--out", help="Where to write the stand-in folders (default: the ones the package ships)."
    ),
    work: Path = typer.Option(
        Path("runs/standins"), "--work", help="Folder for the world and the trained fp32 models (reused)."
    ),
) -> None:
    """Generate the shapes world, train the CLIP and the GPT-2 on it as `vlkit demo --from-scratch` does,
    and write both as fp16 HF folders with their manifests (command, seed, version, world digest, figures)."""
    from vlkit.pipelines.standins import make_standins

    for name, manifest in make_standins(out, work, seed).items():
        console.print(f"{manifest['name']}: {(out or Path('vlkit/models/standins')) / name}")


@app.command("record-demo")
def record_demo(
    summary: Path = typer.Option(
        Path("runs/demo/summary.json"), "--summary", help="summary.json of a default `vlkit demo` run."
    ),
) -> None:
    """Record a default demo's figures as the ones every later default demo compares itself with (a warning
    names each figure that drifts beyond the stated noise)."""
    from vlkit.pipelines.demo_figures import FIGURES_FILE, record_demo_figures

    document = record_demo_figures(summary)
    console.print(f"{len(document['figures'])} figures recorded in {FIGURES_FILE}")
