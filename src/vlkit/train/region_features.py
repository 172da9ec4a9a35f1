"""Region features from any vision encoder vlkit loads, computed once and kept on disk like the captioner's.

`load_region_encoder(name)` takes what `--encoder` takes (a hub or folder CLIP, ViT, SigLIP, a timm ViT,
`open_clip:ARCH/PRETRAINED`, or the shipped `vlkit:shapes-clip`) and keeps its vision tower frozen in eval
mode. `encode_regions` makes one feature per region by one of two poolings (`POOLINGS`):
- "cells" (the default; Fast R-CNN's RoI pooling): the encoder runs once over each image and each region's
  feature is the area-weighted mean of the patch tokens its box covers (`vlkit.train.region_pooling`);
- "crop" (R-CNN's way): each box is cut out of the image, resized by the encoder's own image processor and
  encoded alone; its feature is the encoder's pooled output (CLIP's and SigLIP's `pooler_output`, else the
  mean of its patch tokens). One encoder pass per region instead of per image, but the feature sees the
  object at the encoder's full resolution: on a 64-pixel image a 4 x 4 patch grid blurs shape
  (docs/vilbert.md, "Region features").
transformers, timm and open_clip do the encoders (through `models.captioner.parts`, the captioner's own
loaders, so both read the same checkpoints the same way).

The features are stored as the captioner's feature cache stores its tokens (`vlkit.train.feature_cache`):
memory-mapped .npy parts of `PART_SIZE` images, part k built by process k mod N under `accelerate launch`,
in a folder named by the SHA-256 of everything they depend on: the encoder (config and every weight), its
image processor, the image files (path, size, modification time), the regions (`RegionSet.digest`: boxes,
their images and the recipe that made them), the pooling and the stored dtype. Any change is a new folder,
never a stale read; parts are renamed into place and meta.json comes last, so a killed build keeps its
finished parts. The boxes, masks and labels are not stored: they are recomputed from the recipe, seeded,
in a fraction of the time a check of the cache takes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from vlkit.data.images import read_image
from vlkit.data.regions import (
    ImageRegions,
    RegionRecipe,
    RegionSet,
    grid_regions,
    scene_region_set,
    stack_regions,
)
from vlkit.errors import VlkitError
from vlkit.models.captioner.encoders import TokenLayout, encoder_kind
from vlkit.models.captioner.open_clip_tower import register_open_clip_config
from vlkit.models.captioner.parts import load_encoder, load_image_processor
from vlkit.models.clip import resolve_device
from vlkit.runtime.distributed import process_state
from vlkit.runtime.files import write_json_atomic
from vlkit.runtime.progress import track
from vlkit.train.feature_cache import (
    DTYPES,
    META_FILE,
    PART_FILE,
    PART_SIZE,
    FeatureCache,
    encoder_fingerprint,
    images_fingerprint,
    open_if_complete,
    open_part,
)
from vlkit.train.region_pooling import cell_weights, grid_boxes, input_frame, pool_regions

log = logging.getLogger(__name__)

CROP_BATCH = 256  # crops per encoder pass of the "crop" pooling
POOLINGS = {"cells": "cell-area-mean/1", "crop": "crop-pooled/1"}  # name -> name/version in the cache key


@dataclass
class RegionEncoder:
    """A frozen vision encoder with its image processor and the layout of its tokens."""

    name: str
    encoder: PreTrainedModel
    image_processor: Any
    layout: TokenLayout

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    @property
    def feature_size(self) -> int:
        """F, the width of each region feature: the encoder's token width."""
        return int(self.encoder.config.hidden_size)

    @torch.no_grad()
    def patch_tokens(self, images: Sequence[Any]) -> torch.Tensor:
        """RGB images -> (B, rows * columns, C) fp32 patch tokens (the prefix tokens dropped)."""
        pixels = self.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
        dtype = next(self.encoder.parameters()).dtype
        tokens = self.encoder(pixel_values=pixels.to(self.device, dtype)).last_hidden_state
        rows, columns = self.layout.grid
        if tokens.shape[1] != self.layout.tokens:
            raise VlkitError(
                f"--encoder {self.name}: {tokens.shape[1]} tokens, but its layout says "
                f"{self.layout.prefix_tokens} + {rows}x{columns} (were the images resized to its input size?)"
            )
        return tokens[:, self.layout.prefix_tokens :].float()

    @torch.no_grad()
    def pooled(self, images: Sequence[Any]) -> torch.Tensor:
        """RGB images -> (B, C) fp32: the encoder's pooled output, else the mean of its patch tokens."""
        pixels = self.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
        dtype = next(self.encoder.parameters()).dtype
        output = self.encoder(pixel_values=pixels.to(self.device, dtype))
        pooled = getattr(output, "pooler_output", None)
        if pooled is None or pooled.ndim != 2 or pooled.shape[-1] != self.feature_size:
            pooled = output.last_hidden_state[:, self.layout.prefix_tokens :].mean(1)
        return pooled.float()


def load_region_encoder(name: str, device: str = "cpu", allow_pickle: bool = False) -> RegionEncoder:
    """The vision tower of `name` (anything `--encoder` takes), frozen and in eval mode on `device`."""
    register_open_clip_config()
    encoder = load_encoder(name, allow_pickle)
    processor = load_image_processor(name, encoder)
    layout = encoder_kind(encoder.config.model_type, f"--encoder {name}").layout(encoder)
    encoder.requires_grad_(False)
    encoder.to(resolve_device(device)).eval()
    return RegionEncoder(name, encoder, processor, layout)


@dataclass
class RegionRows:
    """The regions of a batch of images, as the model reads them (`ViLBertModel.forward`'s region inputs)."""

    features: torch.Tensor  # (B, R, F) float32
    boxes: torch.Tensor  # (B, R, 5) normalized x1, y1, x2, y2, area
    mask: torch.Tensor  # (B, R) long, 1 for a real region
    labels: torch.Tensor | None  # (B, R, K) class distributions
    object_regions: torch.Tensor  # (B, M) long, the region of each object's true box, -1 past the objects


@dataclass
class RegionFeatures:
    """N images' regions and their pooled features (memory-mapped): row i is image i of `regions`."""

    regions: RegionSet
    cache: FeatureCache  # (N, R, F) in parts
    encoder: str

    def __post_init__(self) -> None:
        self._locations = self.regions.locations()  # (N, R, 5), once: every batch reads rows of it

    def __len__(self) -> int:
        return len(self.regions)

    @property
    def folder(self) -> Path:
        return self.cache.folder

    @property
    def reused(self) -> bool:
        return self.cache.reused

    @property
    def feature_size(self) -> int:
        return int(self.cache.parts[0].shape[-1])

    def rows(self, indices: Sequence[int] | np.ndarray) -> RegionRows:
        index = np.asarray(indices, dtype=np.int64)
        regions = self.regions
        labels = regions.labels
        return RegionRows(
            features=self.cache.rows(index),
            boxes=torch.from_numpy(self._locations[index]),
            mask=torch.from_numpy(regions.mask[index].astype(np.int64)),
            labels=torch.from_numpy(labels[index]) if labels is not None else None,
            object_regions=torch.from_numpy(regions.object_regions[index]),
        )


def region_cache_key(
    encoder: RegionEncoder, paths: Sequence[Path], regions: RegionSet, dtype: str, pooling: str = "cells"
) -> dict:
    processor = encoder.image_processor.to_json_string()
    return {
        "encoder": encoder_fingerprint(encoder.encoder),
        "image_processor": hashlib.sha256(processor.encode()).hexdigest(),
        "images": images_fingerprint(paths),
        "regions": regions.digest(),
        "pooling": POOLINGS[pooling],
        "dtype": dtype,
    }


def encode_regions(
    encoder: RegionEncoder,
    image_paths: Sequence[str | os.PathLike[str]],
    regions: RegionSet,
    cache_root: str | os.PathLike[str],
    batch_size: int = 32,
    dtype: str = "float32",
    pooling: str = "cells",
) -> RegionFeatures:
    """The pooled features of `regions` (row i: the boxes of image i, `image_paths[i]`), from `cache_root`
    when a matching cache is there, else computed now (by every process of an `accelerate launch`
    together: call it on all of them).

    Args:
        encoder: the frozen encoder (`load_region_encoder`).
        image_paths: the images, in the order of `regions`' rows; each must have the size its boxes say.
        regions: the boxes (`vlkit.data.regions`: `stack_regions` of scene, grid or detected regions).
        cache_root: the folder holding one subfolder per cache key (shared by all processes).
        batch_size: images per encoder forward pass while building.
        dtype: "float32" (exact) or "float16" (half the disk).
        pooling: "cells" (the patch tokens under each box) or "crop" (each box encoded alone): see above.
    """
    if dtype not in DTYPES:
        raise VlkitError(f"feature_dtype: unknown value {dtype!r} (choose {', '.join(DTYPES)})")
    if pooling not in POOLINGS:
        raise VlkitError(f"--region-pooling: unknown value {pooling!r} (choose {', '.join(POOLINGS)})")
    paths = [Path(p) for p in image_paths]
    if len(paths) != len(regions):
        raise VlkitError(f"encode_regions: {len(paths)} images but regions for {len(regions)}")
    if not paths:
        raise VlkitError("encode_regions: no images")
    key = region_cache_key(encoder, paths, regions, dtype, pooling)
    folder = Path(cache_root) / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    sizes = [min(PART_SIZE, len(paths) - start) for start in range(0, len(paths), PART_SIZE)]
    parts = open_if_complete(folder, key, sizes)
    if parts is not None:
        log.info("region features: reusing %s (%d images)", folder, len(paths))
        return RegionFeatures(regions, FeatureCache(folder, parts, reused=True), encoder.name)
    state = process_state()
    folder.mkdir(parents=True, exist_ok=True)
    mine = range(state.process_index, len(sizes), state.num_processes)
    todo = [k for k in mine if open_part(folder, k, sizes[k], dtype) is None]
    for k in track(todo, "encode regions", total=len(todo)):
        _compute_part(encoder, paths, regions, k, folder, batch_size, DTYPES[dtype], pooling)
    state.wait_for_everyone()
    if state.is_main_process:
        write_json_atomic(folder / META_FILE, {**key, "parts": sizes, "encoder_name": encoder.name})
    state.wait_for_everyone()
    opened = [open_part(folder, k, size, dtype) for k, size in enumerate(sizes)]
    if any(part is None for part in opened):
        raise VlkitError(
            f"{folder}: a region feature part is missing after the build (is the folder shared?)"
        )
    return RegionFeatures(regions, FeatureCache(folder, opened, reused=False), encoder.name)  # type: ignore[arg-type]


def _compute_part(
    encoder: RegionEncoder,
    paths: list[Path],
    regions: RegionSet,
    k: int,
    folder: Path,
    batch_size: int,
    dtype: type,
    pooling: str = "cells",
) -> None:
    start, stop = k * PART_SIZE, min((k + 1) * PART_SIZE, len(paths))
    path = folder / (PART_FILE % k)
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    shape = (stop - start, regions.boxes.shape[1], encoder.feature_size)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        for first in range(start, stop, batch_size):
            rows = range(first, min(first + batch_size, stop))
            pool = _crop_batch if pooling == "crop" else _pool_batch
            out[first - start : rows.stop - start] = pool(encoder, paths, regions, rows)
        out.flush()
        del out  # close the writable map before the rename
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_checked(paths: list[Path], regions: RegionSet, rows: range) -> list[Any]:
    images = [read_image(paths[i]) for i in rows]
    for i, image in zip(rows, images, strict=True):
        expected = tuple(int(v) for v in regions.sizes[i])
        if image.size != expected:
            raise VlkitError(
                f"{paths[i]}: the image is {image.size[0]}x{image.size[1]}, its boxes are for "
                f"{expected[0]}x{expected[1]} (image {regions.image_ids[i]!r})"
            )
    return images


def _pool_batch(encoder: RegionEncoder, paths: list[Path], regions: RegionSet, rows: range) -> np.ndarray:
    images = _read_checked(paths, regions, rows)
    frames = [input_frame(encoder.image_processor, *image.size) for image in images]
    tokens = encoder.patch_tokens(images)  # (B, rows * columns, C)
    weights = cell_weights(grid_boxes(regions.boxes[rows.start : rows.stop], frames, encoder.layout.grid),
                           encoder.layout.grid)  # fmt: skip
    pooled = pool_regions(tokens, weights.to(tokens.device))  # (B, R, C)
    return (pooled * torch.from_numpy(regions.mask[rows.start : rows.stop, :, None]).to(pooled)).cpu().numpy()


def crop_box(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """The pixels of `box` (x1, y1, x2, y2) as PIL's crop takes them: clipped to the image, rounded outward,
    at least one pixel each way."""
    x1 = min(max(int(np.floor(box[0])), 0), width - 1)
    y1 = min(max(int(np.floor(box[1])), 0), height - 1)
    x2 = max(min(int(np.ceil(box[2])), width), x1 + 1)
    y2 = max(min(int(np.ceil(box[3])), height), y1 + 1)
    return x1, y1, x2, y2


def _crop_batch(encoder: RegionEncoder, paths: list[Path], regions: RegionSet, rows: range) -> np.ndarray:
    images = _read_checked(paths, regions, rows)
    mask = regions.mask[rows.start : rows.stop]
    out = np.zeros((len(images), mask.shape[1], encoder.feature_size), dtype=np.float32)
    where = np.argwhere(mask)
    crops = [images[b].crop(crop_box(regions.boxes[rows.start + b, r], *images[b].size)) for b, r in where]
    for first in range(0, len(crops), CROP_BATCH):
        chunk = where[first : first + CROP_BATCH]
        out[chunk[:, 0], chunk[:, 1]] = encoder.pooled(crops[first : first + CROP_BATCH]).cpu().numpy()
    return out


def encoder_grid_regions(
    encoder: RegionEncoder, width: int, height: int, objects: Sequence[Any] | None = None
) -> ImageRegions:
    """The grid variant's regions of one image: `encoder`'s patch cells over the part of the image it sees
    (labelled by coverage when the image's `objects` are given)."""
    visible = input_frame(encoder.image_processor, width, height).visible(width, height)
    return grid_regions(width, height, encoder.layout.grid, objects, visible)


def world_region_set(encoder: RegionEncoder, scenes: Sequence[Any], recipe: RegionRecipe) -> RegionSet:
    """The regions of a shapes world's scenes by `recipe.source`: its boxes, or `encoder`'s patch grid."""
    if recipe.source == "grid":
        grids = [encoder_grid_regions(encoder, s.image_size, s.image_size, s.objects) for s in scenes]
        rows, columns = encoder.layout.grid
        return stack_regions([s.image_id for s in scenes], grids, f"source=grid,grid={rows}x{columns}")
    return scene_region_set(scenes, recipe)
