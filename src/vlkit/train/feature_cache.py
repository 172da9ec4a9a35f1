"""Frozen-encoder features, computed once and kept on disk as a memory-mapped .npy file.

When the vision encoder does not train, its tokens for an image are the same every epoch, and computing them
is most of a step's cost. `build_feature_cache` runs the encoder once over the images (in eval mode, in
batches) and writes an (images, tokens, width) array with numpy's `open_memmap`; training then reads a
batch's rows from the memory map, so a dataset larger than memory still works and the OS page cache does the
rest.

A cache is a folder named by the SHA-256 of everything the features depend on: the encoder (its config and
every weight), the image list (each path with its size and modification time, in order), the image
processor's settings and the stored dtype. A different encoder, image set or preprocessing therefore gets a
new folder, never a stale one. `features.npy` is written under a temporary name and renamed, and `meta.json`
is written last, so a run killed half way leaves a folder without `meta.json` that the next run recomputes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vlkit.data.files import read_json, write_json_atomic
from vlkit.data.images import read_image
from vlkit.errors import VlkitError
from vlkit.models.captioner import Captioner
from vlkit.progress import track

log = logging.getLogger(__name__)

FEATURES_FILE = "features.npy"
META_FILE = "meta.json"
DTYPES = {"float32": np.float32, "float16": np.float16}


@dataclass
class FeatureCache:
    """The encoder tokens of N images: `features[i]` is image i's (tokens, width) array, memory-mapped."""

    folder: Path
    features: np.ndarray  # (N, tokens, width)
    reused: bool

    def rows(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """The features of `indices` as one fp32 tensor (B, tokens, width)."""
        return torch.from_numpy(np.asarray(self.features[np.asarray(indices)], dtype=np.float32))


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


def cache_key(captioner: Captioner, paths: Sequence[Path], dtype: str) -> dict[str, str]:
    """What the features depend on, each part hashed; the folder name hashes them all."""
    return {
        "encoder": encoder_fingerprint(captioner.model.encoder),
        "images": images_fingerprint(paths),
        "image_processor": hashlib.sha256(captioner.image_processor.to_json_string().encode()).hexdigest(),
        "dtype": dtype,
    }


def build_feature_cache(
    captioner: Captioner,
    paths: Sequence[Path],
    cache_root: Path,
    batch_size: int = 32,
    dtype: str = "float32",
) -> FeatureCache:
    """The encoder features of `paths`, from `cache_root` when a matching cache exists, else computed now.

    Args:
        captioner: its encoder (frozen) and image processor make the features.
        paths: the images, in the order rows are indexed.
        cache_root: the folder holding one subfolder per cache key.
        batch_size: images per encoder forward pass while building.
        dtype: "float32" (exact) or "float16" (half the disk; features rounded to fp16).
    """
    if dtype not in DTYPES:
        raise VlkitError(f"--feature-dtype: unknown value {dtype!r} (choose {', '.join(DTYPES)})")
    if not paths:
        raise VlkitError("feature cache: no images")
    key = cache_key(captioner, paths, dtype)
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    folder = Path(cache_root) / name
    cached = _open_if_complete(folder, key, len(paths))
    if cached is not None:
        log.info("feature cache: reusing %s (%d images)", folder, len(paths))
        return FeatureCache(folder, cached, reused=True)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    features = _compute(captioner, paths, folder, batch_size, DTYPES[dtype])
    write_json_atomic(folder / META_FILE, {**key, "shape": list(features.shape)})
    log.info("feature cache: wrote %s %s", folder, tuple(features.shape))
    return FeatureCache(folder, features, reused=False)


def _open_if_complete(folder: Path, key: dict[str, str], count: int) -> np.ndarray | None:
    if not (folder / META_FILE).is_file() or not (folder / FEATURES_FILE).is_file():
        return None
    meta = read_json(folder / META_FILE)
    if any(meta.get(part) != value for part, value in key.items()) or meta.get("shape", [None])[0] != count:
        return None
    features = np.load(folder / FEATURES_FILE, mmap_mode="r")
    return features if list(features.shape) == meta["shape"] else None


def _compute(
    captioner: Captioner, paths: Sequence[Path], folder: Path, batch_size: int, dtype: type
) -> np.ndarray:
    tmp = folder / f".{FEATURES_FILE}.{os.getpid()}.tmp"
    out: np.ndarray | None = None
    starts = range(0, len(paths), batch_size)
    for start in track(starts, "encode images", total=len(starts)):
        images = [read_image(path) for path in paths[start : start + batch_size]]
        tokens = captioner.encode_images(captioner.preprocess(images)).float().cpu().numpy()  # (B, N, C)
        if out is None:
            shape = (len(paths), *tokens.shape[1:])
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        out[start : start + len(images)] = tokens
    assert out is not None
    out.flush()
    del out  # close the writable map before the rename
    os.replace(tmp, folder / FEATURES_FILE)
    return np.load(folder / FEATURES_FILE, mmap_mode="r")
