"""Frozen-encoder features, computed once and kept on disk as memory-mapped .npy parts, built in parallel.

When the vision encoder does not train, its tokens for an image are the same every epoch, and computing them
is most of a step's cost. `build_feature_cache` runs the encoder once over the images (in eval mode, in
batches) and writes (images, tokens, width) arrays with numpy's `open_memmap`; training then reads a batch's
rows from the memory maps, so a dataset larger than memory still works and the OS page cache does the rest.

The cache is stored in parts, like the data it comes from: one part per WebDataset shard of a shard set, or
one per `part_size` images of a folder dataset. Under `accelerate launch` every process encodes its own parts
(part k goes to process k mod N), then the main process writes `meta.json`; the parts do not depend on the
process count, so a cache built by 8 processes is reused by one and the other way round. Row i of the cache
is image i of the dataset, or the sample of ordinal i of the shard set.

A cache is a folder named by the SHA-256 of everything the features depend on: the encoder (its config and
every weight), the images (each path with its size and modification time, in order, or each shard's), the
image processor's settings, the stored dtype and the part layout. A different encoder, image set or
preprocessing therefore gets a new folder, never a stale one. Each part is written under a temporary name
and renamed, and `meta.json` comes last: a run killed half way leaves its finished parts, which the next run
keeps, and computes only the rest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlkit.data.images import read_image
from vlkit.data.shards import ShardSet
from vlkit.errors import VlkitError
from vlkit.models.captioner.model import Captioner
from vlkit.runtime.distributed import process_state
from vlkit.runtime.files import read_json, write_json_atomic
from vlkit.runtime.progress import track

log = logging.getLogger(__name__)

META_FILE = "meta.json"
PART_FILE = "part-%06d.npy"
PART_SIZE = 10_000
DTYPES = {"float32": np.float32, "float16": np.float16}


@dataclass
class FeatureCache:
    """The encoder tokens of N images, in parts: row i is image i's (tokens, width) array, memory-mapped."""

    folder: Path
    parts: list[np.ndarray]  # each (rows, tokens, width)
    reused: bool

    def __post_init__(self) -> None:
        self._starts = np.cumsum([0] + [len(part) for part in self.parts])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def rows(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """The features of `indices` as one fp32 tensor (B, tokens, width)."""
        indices = np.asarray(indices)
        which = np.searchsorted(self._starts, indices, side="right") - 1
        if len(which) and (which == which[0]).all():  # one part: one fancy-indexed read
            rows = self.parts[which[0]][indices - self._starts[which[0]]]
            return torch.from_numpy(np.asarray(rows, dtype=np.float32))
        rows = [self.parts[p][i - self._starts[p]] for p, i in zip(which, indices, strict=True)]
        return torch.from_numpy(np.stack(rows).astype(np.float32, copy=False))


@dataclass
class ImageParts:
    """Images to encode, in parts: `sizes[k]` images in part k, read by `images(k)` in row order."""

    fingerprint: str  # SHA-256 of what the images are (paths or shards with sizes and times)
    sizes: list[int]
    images: Callable[[int], Iterator[Any]]
    # Videos (`vlkit.train.video_features`): how a batch of clips is encoded, and the sampling settings,
    # which join the cache key by name. None: images, through the encoder as they are.
    encode: Callable[[Captioner, list[Any]], torch.Tensor] | None = None
    key_fields: dict[str, str] | None = None

    @classmethod
    def from_paths(cls, paths: Sequence[Path], part_size: int = PART_SIZE) -> ImageParts:
        if not paths:
            raise VlkitError("feature cache: no images")
        starts = range(0, len(paths), part_size)
        chunks = [list(paths[start : start + part_size]) for start in starts]
        return cls(
            f"{images_fingerprint(paths)}/{part_size}",
            [len(chunk) for chunk in chunks],
            lambda k: (read_image(path) for path in chunks[k]),
        )

    @classmethod
    def from_shards(cls, shards: ShardSet) -> ImageParts:
        """One part per shard; part k's rows are shard k's samples in order (ordinals offsets[k]...)."""
        return cls(
            f"shards:{shards.fingerprint()}",
            list(shards.counts),
            lambda k: (sample.image for sample in shards.stream(shards=[k])),
        )


def encoder_fingerprint(encoder: torch.nn.Module) -> str:
    """SHA-256 of the encoder's config and every tensor of its state dict (names, dtypes, shapes, bytes)."""
    digest = hashlib.sha256()
    config = getattr(encoder, "config", None)
    if config is not None:
        digest.update(config.to_json_string(use_diff=False).encode())
    for name, tensor in encoder.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def images_fingerprint(paths: Sequence[Path]) -> str:
    """SHA-256 of the image list: each resolved path with its size and modification time, in order."""
    digest = hashlib.sha256()
    for path in paths:
        stat = Path(path).stat()
        digest.update(f"{Path(path).resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_key(captioner: Captioner, images: ImageParts, dtype: str) -> dict[str, str]:
    """What the features depend on, each part hashed; the folder name hashes them all."""
    return {
        "encoder": encoder_fingerprint(captioner.model.encoder),
        "images": hashlib.sha256(images.fingerprint.encode()).hexdigest(),
        "image_processor": hashlib.sha256(captioner.image_processor.to_json_string().encode()).hexdigest(),
        "dtype": dtype,
        **(images.key_fields or {}),
    }


def build_feature_cache(
    captioner: Captioner,
    images: ImageParts | Sequence[Path],
    cache_root: Path,
    batch_size: int = 32,
    dtype: str = "float32",
) -> FeatureCache:
    """The encoder features of `images`, from `cache_root` when a matching cache exists, else computed now
    (by every process of an `accelerate launch` together: call it on all of them).

    Args:
        captioner: its encoder (frozen) and image processor make the features.
        images: the images in row order: an `ImageParts`, or a list of paths (parts of `PART_SIZE`).
        cache_root: the folder holding one subfolder per cache key; under several processes, one folder
            they all see.
        batch_size: images per encoder forward pass while building.
        dtype: "float32" (exact) or "float16" (half the disk; features rounded to fp16).
    """
    if dtype not in DTYPES:
        raise VlkitError(f"feature_dtype: unknown value {dtype!r} (choose {', '.join(DTYPES)})")
    if not isinstance(images, ImageParts):
        images = ImageParts.from_paths(images)
    key = cache_key(captioner, images, dtype)
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    folder = Path(cache_root) / name
    parts = open_if_complete(folder, key, images.sizes)
    if parts is not None:
        log.info("feature cache: reusing %s (%d images)", folder, sum(images.sizes))
        return FeatureCache(folder, parts, reused=True)
    state = process_state()
    folder.mkdir(parents=True, exist_ok=True)
    mine = range(state.process_index, len(images.sizes), state.num_processes)
    for k in mine:  # a part's temporary file left by a killed run: only this process writes part k now
        for stale in folder.glob(f".{PART_FILE % k}.*.tmp"):
            stale.unlink(missing_ok=True)
    todo = [k for k in mine if open_part(folder, k, images.sizes[k], dtype) is None]
    for k in track(todo, "encode images", total=len(todo)):
        _compute_part(captioner, images, k, folder, batch_size, DTYPES[dtype])
    state.wait_for_everyone()
    if state.is_main_process:
        write_json_atomic(folder / META_FILE, {**key, "parts": images.sizes})
        log.info(
            "feature cache: wrote %s (%d part(s), %d images)", folder, len(images.sizes), sum(images.sizes)
        )
    state.wait_for_everyone()
    parts = [open_part(folder, k, size, dtype) for k, size in enumerate(images.sizes)]
    if any(part is None for part in parts):
        raise VlkitError(f"{folder}: a feature part is missing after the build (is the folder shared?)")
    return FeatureCache(folder, parts, reused=False)  # type: ignore[arg-type]


def open_if_complete(folder: Path, key: dict[str, Any], sizes: list[int]) -> list[np.ndarray] | None:
    """Every part of a cache folder memory-mapped, or None unless its meta matches `key` and all parts are
    complete (shared with the region-feature cache, which keeps the same folder layout)."""
    if not (folder / META_FILE).is_file():
        return None
    meta = read_json(folder / META_FILE)
    if (
        not isinstance(meta, dict)
        or any(meta.get(part) != value for part, value in key.items())
        or meta.get("parts") != sizes
    ):
        return None
    parts = [open_part(folder, k, size, key["dtype"]) for k, size in enumerate(sizes)]
    return None if any(part is None for part in parts) else parts  # type: ignore[return-value]


def open_part(folder: Path, k: int, rows: int, dtype: str) -> np.ndarray | None:
    """Part k memory-mapped, or None when it is missing or not what it should be (rows, dtype)."""
    path = folder / (PART_FILE % k)
    if not path.is_file():
        return None
    try:
        part = np.load(path, mmap_mode="r")
    except (ValueError, OSError):
        return None
    return part if len(part) == rows and part.dtype == DTYPES[dtype] else None


def _compute_part(
    captioner: Captioner, images: ImageParts, k: int, folder: Path, batch_size: int, dtype: type
) -> None:
    path = folder / (PART_FILE % k)
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    out: np.ndarray | None = None
    row = 0
    try:
        for batch in _batched(images.images(k), batch_size):
            if images.encode is not None:  # (B, N, C): a clip's N are its frames' pooled tokens
                tokens = images.encode(captioner, batch).float().cpu().numpy()
            else:
                tokens = captioner.encode_images(captioner.preprocess(batch)).float().cpu().numpy()
            if out is None:
                shape = (images.sizes[k], *tokens.shape[1:])
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            if row + len(batch) > images.sizes[k]:
                break
            out[row : row + len(batch)] = tokens
            row += len(batch)
        if out is None or row != images.sizes[k]:
            raise VlkitError(f"feature cache: part {k} gave {row}+ images, {images.sizes[k]} counted")
        out.flush()
        del out  # close the writable map before the rename
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _batched(images: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for image in images:
        batch.append(image)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
