"""The training data options of `vlkit clip train` and `vlkit caption train` (`vlkit.data.training`
reads them)."""

from __future__ import annotations

import typer

TRAIN_SHARDS = typer.Option(
    None,
    "--train-shards",
    help="Train on WebDataset shards instead of DATA/train.json, read as a stream: "
    "'DIR/data-{000000..000099}.tar' or a URL pattern (val.json still from --data, if given).",
)
SHUFFLE_BUFFER = typer.Option(
    1000, "--shuffle-buffer", help="With --train-shards: samples in the shuffling buffer (0: shard order)."
)
