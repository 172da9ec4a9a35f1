"""The training set of `vlkit clip train` and `vlkit caption train`: a folder's train.json or a shard stream,
with the folder's val.json when there is one."""

from __future__ import annotations

from pathlib import Path

from vlkit.data.captions import CaptionDataset, load_caption_dataset
from vlkit.data.shards import ShardSource, shard_source
from vlkit.errors import VlkitError


def training_data(
    data: Path | None,
    train_shards: str | None,
    shuffle_buffer: int,
    train_images: Path | None = None,
    val_images: Path | None = None,
) -> tuple[CaptionDataset | ShardSource, CaptionDataset | None]:
    """(the training set: the shard stream of --train-shards, else DATA/train.json; DATA/val.json if any)."""
    if data is None and train_shards is None:
        raise VlkitError("give --data (a folder with train.json) or --train-shards (a shard pattern)")
    if train_shards is not None:
        train: CaptionDataset | ShardSource = shard_source(train_shards, shuffle_buffer)
    else:
        train = load_caption_dataset(data / "train.json", train_images or data / "images")
    val = None
    if data is not None and (data / "val.json").is_file():
        val = load_caption_dataset(data / "val.json", val_images or data / "images")
    return train, val
