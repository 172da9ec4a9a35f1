"""Step-indexed batches from a WebDataset shard stream, and the caption picks both data sources share.

The training loop asks for the batch of step k (`batch_for_step(k)`), which is what makes a resumed run exact.
A folder dataset answers by indexing a seeded permutation; a shard stream cannot be indexed, so
`StreamBatches` reads it in order: step k of an epoch is samples [k*B, (k+1)*B) of that epoch's stream (its
shard order and shuffling buffer seeded by the run seed and the epoch), consecutive calls continue the open
stream, and any other call (the first step of a resumed run) reopens it with `skip`. Epochs hold
`samples // B` batches, the remainder dropped, as in the folder path.

Each process keeps its share of the global batch (`process_share`'s slice) before collating, so it decodes
and preprocesses only its own images; the loop is told so (`batches_are_shares`).

Written here because webdataset's streams keep no position to resume from (they start over at the first
shard), and its indexed reader (`wids`) needs an index file per shard set and random access to every shard.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import numpy as np
import torch

from vlkit.data.shards import ShardSample, ShardSet, ShardSource
from vlkit.errors import VlkitError
from vlkit.runtime.distributed import process_state
from vlkit.train.loop import share_slice


def batch_picks(seed: int, epoch: int, index: int, size: int) -> np.ndarray:
    """Which caption each image of batch `index` of `epoch` trains on (as `pick % captions`): drawn per batch,
    so the same images in the same order get the same captions from a folder or from shards."""
    return np.random.default_rng([seed, epoch, index, 1]).integers(0, 1 << 30, size=size)


def picked_captions(samples: list[ShardSample], picks: np.ndarray) -> list[str]:
    """The caption each sample trains on: its `picks[j] % captions`-th."""
    for sample in samples:
        if not sample.captions:
            raise VlkitError(f"{sample.where}: no caption to train on")
    return [sample.captions[pick % len(sample.captions)] for sample, pick in zip(samples, picks, strict=True)]


def epoch_seed(seed: int, epoch: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}/epoch/{epoch}".encode()).digest()[:8], "little")


class StreamBatches:
    """Step-indexed batches of a shard set read as a stream; `collate(samples, picks)` makes the tensors of
    this process's share (`picks`: `batch_picks` of those samples)."""

    def __init__(
        self,
        shards: ShardSet,
        batch_size: int,
        seed: int,
        shuffle_buffer: int,
        collate: Callable[[list[ShardSample], np.ndarray], dict[str, torch.Tensor]],
        process_index: int = 0,
        processes: int = 1,
    ):
        if shards.total < batch_size:
            raise VlkitError(
                f"--batch-size: {batch_size} is more than the {shards.total} samples of the shards"
            )
        self._mine = share_slice(batch_size, process_index, processes, "images")  # this process's rows
        self.shards, self.batch_size, self.seed, self.shuffle_buffer = (
            shards,
            batch_size,
            seed,
            shuffle_buffer,
        )
        self.collate = collate
        self.per_epoch = shards.total // batch_size
        self._stream: Iterator[ShardSample] | None = None
        self._next_step: int | None = None

    @classmethod
    def for_this_process(
        cls,
        source: ShardSource,
        batch_size: int,
        seed: int,
        collate: Callable[[list[ShardSample], np.ndarray], dict[str, torch.Tensor]],
    ) -> StreamBatches:
        """The batches of `source` this process trains on (its share under `accelerate launch`)."""
        state = process_state()
        return cls(
            source.shards,
            batch_size,
            seed,
            source.shuffle_buffer,
            collate,
            state.process_index,
            state.num_processes,
        )

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        epoch, index = divmod(step, self.per_epoch)
        if step != self._next_step or self._stream is None:
            self._stream = self.shards.stream(
                self.shuffle_buffer, epoch_seed(self.seed, epoch), skip=index * self.batch_size
            )
        samples = [sample for _, sample in zip(range(self.batch_size), self._stream, strict=False)]
        if len(samples) < self.batch_size:
            raise VlkitError(
                f"shards: epoch {epoch} ended after {index * self.batch_size + len(samples)} samples, "
                f"fewer than the {self.shards.total} counted (did a shard change during training?)"
            )
        self._next_step = step + 1
        if index + 1 == self.per_epoch:  # the epoch's remainder is dropped: the next step opens a new stream
            self._stream = None
        picks = batch_picks(self.seed, epoch, index, self.batch_size)
        return self.collate(samples[self._mine], picks[self._mine])
