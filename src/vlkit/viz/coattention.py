"""ViLBERT's co-attention as a figure a person opens: the image with its regions' boxes, then one panel per
word, each pixel shaded by the largest attention among the regions covering it, from the word's lowest
weight to its peak (the peak region outlined).

matplotlib draws (Agg backend, through `plots._to_png`, which keeps the bytes reproducible); this module
only lays the panels out. The maps come in as arrays (which layer and heads were averaged is the caller's
choice, named in the title).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.patches import Rectangle

from vlkit.viz.plots import _to_png

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PEAK, OBJECT, BOX = "#C44E52", "#55A868", "#4C72B0"
MAX_PANELS = 16


def coattention_figure(
    image: np.ndarray,
    boxes: np.ndarray,
    mask: np.ndarray,
    words: Sequence[str],
    attention: np.ndarray,
    title: str = "",
    image_token: Sequence[float] | None = None,
    object_boxes: np.ndarray | None = None,
) -> bytes:
    """PNG bytes: the image with every real region's box, then a panel per word (at most `MAX_PANELS`).

    image (H, W, 3), boxes (R, 4) pixel corners, mask (R,) True for a real region, words (W,) the panel
    titles, attention (W, R) each word's weights over the regions (the whole-image token left out; its
    weight, if given in `image_token` (W,), goes in the panel's title), object_boxes (m, 4) the named
    objects' boxes, outlined in green."""
    attention = np.asarray(attention, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if attention.shape != (len(words), len(boxes)):
        raise ValueError(f"attention: shape {attention.shape}, expected ({len(words)}, {len(boxes)})")
    words = list(words)[:MAX_PANELS]
    columns = min(len(words) + 1, 6)
    rows = -(-(len(words) + 1) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.1 * columns, 2.3 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    first = axes.flat[0]
    first.imshow(image, interpolation="nearest")
    for k in np.flatnonzero(mask):
        _box(first, boxes[k], BOX, 0.8)
    first.set_title("regions", fontsize=8)
    for panel, (word, weights) in enumerate(zip(words, attention, strict=False), start=1):
        ax = axes.flat[panel]
        ax.imshow(image, interpolation="nearest")
        ax.imshow(_shading(image.shape[:2], boxes, weights, mask), interpolation="nearest")
        peak = int(np.argmax(np.where(mask, weights, -np.inf)))
        for box in np.asarray(object_boxes if object_boxes is not None else []).reshape(-1, 4):
            _box(ax, box, OBJECT, 1.5, style="--")
        _box(ax, boxes[peak], PEAK, 2.0)
        extra = f"\nimage {image_token[panel - 1]:.2f}" if image_token is not None else ""
        ax.set_title(f"{word}  (peak {weights[peak]:.2f}){extra}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _to_png(fig)


def _shading(size: tuple[int, int], boxes: np.ndarray, weights: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W, 4) RGBA: each pixel the peak colour at an opacity of the largest weight among the real regions
    covering it, from the word's lowest weight (clear) to its peak (one array, not a patch per region)."""
    height, width = size
    real = np.asarray(weights, dtype=np.float64)[mask]
    low, high = float(real.min()), float(real.max())
    level = np.full((height, width), low)
    for box, weight in zip(np.asarray(boxes)[mask], real, strict=True):
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cell = level[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)]
        np.maximum(cell, weight, out=cell)
    rgba = np.zeros((height, width, 4))
    rgba[..., :3] = matplotlib.colors.to_rgb(PEAK)
    rgba[..., 3] = 0.6 * (level - low) / max(high - low, 1e-12)
    return rgba


def _box(ax, box: np.ndarray, colour: str, width: float, style: str = "-") -> None:
    x1, y1, x2, y2 = (float(v) for v in box)
    ax.add_patch(
        Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=width, linestyle=style)
    )
