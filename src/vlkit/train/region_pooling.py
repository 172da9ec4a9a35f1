"""Region features from a frozen encoder's patch tokens: where a box falls on the encoder's input, and the
average of the patch tokens it covers, each weighted by the area of the cell it covers.

ViLBERT reads one feature vector per region, which the paper takes from a detector's RoI pooling. Without a
detector, a region's feature here is the exact integral mean of the patch-token map over its box: the map is
constant over each patch cell, so the mean over the box is the token of each cell weighted by the share of
the box's area in that cell. This is what `torchvision.ops.roi_align` estimates by bilinear samples (its
sampling points miss cells of a small box on a coarse grid: a 4 x 4 grid has 16-pixel cells); the exact
weights are a few lines of tensor code, need no torchvision (an optional extra of vlkit), and a box equal to a
cell gives that cell's token exactly, so the grid variant (cells as regions) is the same code path.

A box is first mapped onto the encoder's input (`InputFrame`): the image processor resizes and may crop,
and the grid covers the processed input. The map is read off the processor's settings for the kinds vlkit
loads: transformers' resize (to a size, or shortest edge) with an optional centre crop (CLIP, ViT, SigLIP),
and timm's evaluation transform (`crop_pct`, centre or squash). A box cropped off the input pools from the
cells nearest it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vlkit.errors import VlkitError

MIN_EXTENT = 1e-3  # of a cell: a box squeezed to nothing by clipping still weighs the cell nearest it


@dataclass(frozen=True)
class InputFrame:
    """Image pixels -> encoder input pixels: input = image * scale - offset, per axis; the input is
    `width` x `height` pixels, which the patch grid covers evenly."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float
    width: float
    height: float

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """(..., 4) image-pixel corners -> encoder-input-pixel corners."""
        scale = np.array([self.scale_x, self.scale_y] * 2, dtype=np.float64)
        offset = np.array([self.offset_x, self.offset_y] * 2, dtype=np.float64)
        return np.asarray(boxes, dtype=np.float64) * scale - offset

    def visible(self, image_width: int, image_height: int) -> tuple[float, float, float, float]:
        """The part of the image the encoder sees (x1, y1, x2, y2 in image pixels), clipped to the image."""
        x1, y1 = self.offset_x / self.scale_x, self.offset_y / self.scale_y
        x2, y2 = (self.width + self.offset_x) / self.scale_x, (self.height + self.offset_y) / self.scale_y
        return max(0.0, x1), max(0.0, y1), min(float(image_width), x2), min(float(image_height), y2)


def input_frame(processor: Any, width: int, height: int) -> InputFrame:
    """How `processor` maps a `width` x `height` image onto its output (see the module docstring)."""
    if hasattr(processor, "data_config"):  # timm's evaluation transform (TimmWrapperImageProcessor)
        return _timm_frame(processor.data_config, width, height)
    name = type(processor).__name__
    new_w, new_h = float(width), float(height)
    if getattr(processor, "do_resize", False):
        size = _size(processor.size)
        if size.get("shortest_edge"):
            scale = size["shortest_edge"] / min(width, height)
            new_w, new_h = width * scale, height * scale
        elif size.get("height") and size.get("width"):
            new_w, new_h = float(size["width"]), float(size["height"])
        else:
            raise VlkitError(f"{name}: resize by {size} is not a geometry region pooling knows")
    frame = InputFrame(new_w / width, new_h / height, 0.0, 0.0, new_w, new_h)
    if getattr(processor, "do_center_crop", False):
        crop = _size(processor.crop_size)
        frame = _centre_crop(frame, float(crop["width"]), float(crop["height"]))
    return frame


def _size(size: Any) -> dict[str, Any]:
    """transformers' SizeDict (v5) or plain dict -> a dict of its set fields."""
    if isinstance(size, dict):
        return {k: v for k, v in size.items() if v is not None}
    return {k: getattr(size, k) for k in ("shortest_edge", "height", "width") if getattr(size, k, None)}


def _centre_crop(frame: InputFrame, crop_w: float, crop_h: float) -> InputFrame:
    # transformers and torchvision agree on the centre to the pixel: the offset rounds down.
    offset_x, offset_y = float((frame.width - crop_w) // 2), float((frame.height - crop_h) // 2)
    return InputFrame(frame.scale_x, frame.scale_y, offset_x, offset_y, crop_w, crop_h)


def _timm_frame(config: dict[str, Any], width: int, height: int) -> InputFrame:
    _, in_h, in_w = config["input_size"]
    crop_pct, mode = float(config.get("crop_pct") or 0.875), config.get("crop_mode", "center")
    scale_h, scale_w = math.floor(in_h / crop_pct), math.floor(in_w / crop_pct)
    if mode == "squash":
        frame = InputFrame(scale_w / width, scale_h / height, 0.0, 0.0, float(scale_w), float(scale_h))
    elif mode == "center" and scale_h == scale_w:
        scale = scale_h / min(width, height)
        frame = InputFrame(scale, scale, 0.0, 0.0, width * scale, height * scale)
    else:
        raise VlkitError(f"timm image processor: crop mode {mode!r} is not a geometry region pooling knows")
    return _centre_crop(frame, float(in_w), float(in_h))


def cell_weights(boxes: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(..., R, 4) boxes in cell units (x in columns, y in rows) -> (..., R, rows * columns) weights, row by
    row as the patch tokens: the share of each box's area in each cell (each row sums to 1)."""
    rows, columns = grid
    x1 = boxes[..., 0].clamp(0, columns - MIN_EXTENT)
    y1 = boxes[..., 1].clamp(0, rows - MIN_EXTENT)
    x2 = torch.maximum(boxes[..., 2].clamp(0, columns), x1 + MIN_EXTENT)
    y2 = torch.maximum(boxes[..., 3].clamp(0, rows), y1 + MIN_EXTENT)
    cols = torch.arange(columns, dtype=boxes.dtype, device=boxes.device)
    rws = torch.arange(rows, dtype=boxes.dtype, device=boxes.device)
    overlap_x = (torch.minimum(x2[..., None], cols + 1) - torch.maximum(x1[..., None], cols)).clamp(min=0)
    overlap_y = (torch.minimum(y2[..., None], rws + 1) - torch.maximum(y1[..., None], rws)).clamp(min=0)
    weights = (overlap_y[..., :, None] * overlap_x[..., None, :]).flatten(-2)  # (..., R, rows * columns)
    return weights / weights.sum(-1, keepdim=True)


def grid_boxes(boxes: np.ndarray, frames: list[InputFrame], grid: tuple[int, int]) -> torch.Tensor:
    """(B, R, 4) image-pixel corners of B images, each with its frame -> (B, R, 4) in cell units."""
    rows, columns = grid
    out = np.stack(
        [
            frame.to_input(image_boxes) / [frame.width, frame.height, frame.width, frame.height]
            for image_boxes, frame in zip(boxes, frames, strict=True)
        ]
    )
    return torch.from_numpy(out * [columns, rows, columns, rows]).float()


def pool_regions(patch_tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B, rows * columns, C) patch tokens and (B, R, rows * columns) weights -> (B, R, C) region features."""
    return torch.einsum("brk,bkc->brc", weights.to(patch_tokens.dtype), patch_tokens)
