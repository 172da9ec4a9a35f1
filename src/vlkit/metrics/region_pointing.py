"""The pointing game on regions: does the region a word attends to most stand for the object the word names?

ViLBERT's co-attention gives each word a distribution over the image's regions; for a question word that
names an object (the colour and shape words of its noun phrase, `metrics.pointing.grounded_words`), the
region with the most attention is a hit when it points at one of the objects the word names:

- its IoU with the object's box is at least 0.5 (the referring-expression rule), or
- it lies inside the object's box (at least `INSIDE` of its area: a grid cell within a large object), or
- it is the region standing for the object (its true box; on a grid, the cell overlapping it most).

The baseline needs no model: a region drawn uniformly among the image's real ones, whose expected hit rate
is the share of real regions that point at a named object, computed exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vlkit.data.regions import overlaps

HIT_IOU = 0.5
INSIDE = 0.99  # share of a region's area inside the object's box for it to count as inside


def pointing_regions(
    boxes: np.ndarray, mask: np.ndarray, object_boxes: np.ndarray, object_regions: Sequence[int] = ()
) -> np.ndarray:
    """(R,) bool: the real regions that point at any of the objects.

    boxes (R, 4) corners, mask (R,) True for a real region, object_boxes (m, 4) corners of the named objects,
    object_regions the index of the region standing for each (-1: none)."""
    boxes, object_boxes = np.asarray(boxes, np.float64), np.asarray(object_boxes, np.float64).reshape(-1, 4)
    hit = np.zeros(len(boxes), dtype=bool)
    if len(object_boxes):
        iou = overlaps(boxes, object_boxes, "iou")  # (R, m)
        inside = overlaps(boxes, object_boxes, "coverage")  # (R, m)
        hit = ((iou >= HIT_IOU) | (inside >= INSIDE)).any(1)
    for region in object_regions:
        if 0 <= region < len(hit):
            hit[region] = True
    return hit & np.asarray(mask, dtype=bool)


def peak_region(attention: np.ndarray, mask: np.ndarray) -> int:
    """The real region with the most attention (attention (R,), mask (R,) bool; padding never wins)."""
    return int(np.argmax(np.where(np.asarray(mask, dtype=bool), attention, -np.inf)))


@dataclass
class RegionPointingTally:
    """Hits of the attention's peak region and the random region's expected hits, over scored words."""

    hits: int = 0
    random_expected: float = 0.0
    n_words: int = 0

    def add(self, attention: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> bool:
        """One word: its attention (R,) over the regions, the regions that count (R,) bool
        (`pointing_regions`) and the real ones (R,) bool. Returns whether its peak is a hit."""
        mask = np.asarray(mask, dtype=bool)
        hit = bool(targets[peak_region(attention, mask)])
        self.hits += int(hit)
        self.random_expected += float(targets[mask].sum() / max(mask.sum(), 1))
        self.n_words += 1
        return hit

    def result(self) -> dict[str, float | int | None]:
        if not self.n_words:
            return {"pointing_game": None, "random": None, "n_words": 0}
        return {
            "pointing_game": self.hits / self.n_words,
            "random": self.random_expected / self.n_words,
            "n_words": self.n_words,
        }
