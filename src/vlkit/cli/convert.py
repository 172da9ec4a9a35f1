"""`vlkit convert ...`: checkpoints of other layouts made HF folders that vlkit loads
(`vlkit.models.convert_gpt2`, `vlkit.models.vilbert.convert`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(
    help="Convert checkpoints of other layouts into HF model folders that vlkit loads (GPT-2: --decoder; "
    "ViLBERT: the reference's).",
    no_args_is_help=True,
)
console = Console()


@app.command("gpt2")
def gpt2(
    state_dict: Path = typer.Option(
        ...,
        "--state-dict",
        help="GPT-2 weights: a torch.save'd state dict (read with torch.load(weights_only=True)) or a "
        ".safetensors file, in HF's names (with or without transformer.), the course's decoder_model.bin, "
        "or nanoGPT's / minGPT's nn.Linear layout.",
    ),
    vocab: Path = typer.Option(..., "--vocab", help="GPT-2's encoder.json (token -> id)."),
    merges: Path = typer.Option(..., "--merges", help="GPT-2's vocab.bpe (one BPE merge a line)."),
    n_head: int = typer.Option(
        None, "--n-head", help="Attention heads, which the shapes cannot tell (default: width / 64)."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Folder to write: config.json, model.safetensors, generation_config.json, tokenizer files.",
    ),
) -> None:
    """Convert a GPT-2 state dict and its BPE files into an HF GPT-2 folder with the same logits, for
    `vlkit caption train --decoder DIR`; the config comes from the tensors' shapes."""
    from vlkit.models.convert_gpt2 import LAYOUTS, convert_gpt2, describe

    converted = convert_gpt2(state_dict, vocab, merges, out, n_head)
    weights = converted.weights
    notes = [LAYOUTS[weights.layout]]
    if not weights.biases:
        notes.append("no biases (zeros)")
    if weights.dropped:
        notes.append(f"{len(weights.dropped)} mask buffers dropped")
    console.print(f"[green]wrote[/] {out}  ({describe(weights.config)}; {', '.join(notes)})")


@app.command("vilbert")
def vilbert(
    ctx: typer.Context,
    state_dict: Path = typer.Option(
        ...,
        "--state-dict",
        help="A facebookresearch/vilbert-multi-task checkpoint (pre-training or multi-task): .safetensors, "
        "or with `vlkit --allow-pickle` its pytorch_model_N.bin (read with torch.load(weights_only=True)).",
    ),
    config: Path = typer.Option(
        ...,
        "--config",
        help="The reference's JSON config it was trained with (e.g. bert_base_6layer_6conect.json).",
    ),
    out: Path = typer.Option(
        ..., "--out", help="Folder to write: config.json, model.safetensors (and tokenizer)."
    ),
    vocab: Path = typer.Option(
        None, "--vocab", help="WordPiece vocab.txt to save as the folder's tokenizer (bert-base-uncased's)."
    ),
) -> None:
    """Convert a reference ViLBERT checkpoint into a vlkit ViLBERT folder with the same outputs; the
    reference's unused weights and heads vlkit has no task for are dropped, missing fine-tuning heads new."""
    from vlkit.cli.context import allow_pickle
    from vlkit.models.vilbert.convert import convert_vilbert

    converted = convert_vilbert(state_dict, config, out, allow_pickle(ctx), vocab)
    c = converted.config
    notes = [f"{len(converted.state)} weights"]
    if converted.dropped:
        notes.append(f"{len(converted.dropped)} dropped")
    if converted.new:
        notes.append(f"new heads: {', '.join(sorted({name.split('.')[0] for name in converted.new}))}")
    console.print(
        f"[green]wrote[/] {out}  (ViLBERT: {c.num_hidden_layers} text + {c.v_num_hidden_layers} visual + "
        f"{c.num_coattention_layers} co-attention layers; {', '.join(notes)})"
    )
