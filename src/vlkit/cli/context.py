"""What the root `vlkit` options hand down to the commands, through typer's context (never a module global):
`vlkit --allow-pickle COMMAND ...` sets `ctx.obj["allow_pickle"]` on the root context."""

from __future__ import annotations

import typer


def allow_pickle(ctx: typer.Context) -> bool:
    """Whether `vlkit --allow-pickle` was given: a model folder's pickled weights (pytorch_model.bin) may
    load, with torch.load(weights_only=True)."""
    return bool((ctx.find_root().obj or {}).get("allow_pickle", False))
