"""The image regions ViLBERT reads, without a detector: boxes, their locations and their class targets.

On the shapes world an image's regions are its objects' true boxes, jittered copies of them and distractor
boxes, so many that every image has the same number (`RegionRecipe.regions`): counting boxes tells nothing
and the model must tell which regions hold what. Each region has a 5-d location (x1, y1, x2, y2 and area,
normalized by the image's size, as the reference's feature reader writes them) and a class distribution over
the world's colour x shape classes plus background, the target of masked-region modelling (KL divergence,
as the paper trains towards its detector's class distribution):

    region_classes()[0] = "background", then class c of CLASS_NAMES at index 1 + c
    label of a region   each true object's class gets the region's overlap with that object's true box,
                        background gets the rest (1 - the overlaps' sum), so a true box is one-hot, a
                        jittered copy splits by how well it fits, and a distractor (placed so that its
                        overlaps sum to at most 1 - DISTRACTOR_BACKGROUND) is mostly background

The overlap is `label_overlap`: "iou" (intersection over union: a copy half off its object gets about a
third) or "coverage" (the share of the region inside the object's box: a grid cell wholly inside an object
is that object, where its IoU would be the cell's share of the object). Objects' boxes never overlap in the
shapes world, so either way the overlaps of a region sum to at most 1.

Variant: the encoder's patch grid itself as the regions (`grid_regions`). Real images: boxes a detector
wrote (`vlkit.data.detections`) become `detected_regions`, without class targets. Boxes come from numpy,
seeded per image from (seed, image id) alone; nothing here needs torch (the features are
`vlkit.train.region_features`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vlkit.runtime.options import config_from_dict, option, positive, require
from vlkit.shapes.grammar import SceneObject
from vlkit.shapes.questions import Scene
from vlkit.shapes.scenes import CLASS_NAMES

BACKGROUND = "background"
LABEL_OVERLAPS = ("iou", "coverage")
# Where a shapes world's regions come from: its boxes (true, jittered, distractors) or the encoder's grid.
REGION_SOURCES = ("boxes", "grid")
# What each region is, as stored in `RegionSet.kinds`.
KINDS: tuple[str, ...] = ("object", "jitter", "distractor", "grid", "detected")
# A jittered copy overlaps its object by IoU in [MIN, MAX): far enough off to differ, close enough to be it.
JITTER_IOU = (0.3, 0.95)
DISTRACTOR_BACKGROUND = 0.7  # at least this much of a distractor's label is background
DISTRACTOR_SIDES = (0.15, 0.5)  # a distractor's width and height, as fractions of the image's
TRIES = 50


def region_classes() -> tuple[str, ...]:
    """The K classes of a region's label: background, then the world's colour x shape classes."""
    return (BACKGROUND, *CLASS_NAMES)


def object_class(obj: SceneObject) -> int:
    """An object's index in `region_classes()`."""
    return 1 + CLASS_NAMES.index(f"{obj.colour} {obj.shape}")


@dataclass(frozen=True)
class RegionRecipe:
    """How the shapes world's regions are made; a change of any field is a new set of boxes (and features).
    `source` "grid" takes the encoder's patch cells instead, labelled by coverage (the box fields unused)."""

    source: str = option("boxes", "--region-source", "boxes (true, jittered, distractors) or grid (patches).")
    regions: int = option(12, "--regions", "Regions per image: true boxes, jittered copies, distractors.")
    jitter_copies: int = option(2, "--jitter-copies", "Jittered copies of each object's true box.")
    jitter: float = option(0.2, "--box-jitter", "Std of a copy's shift and log-scale, relative to its box.")
    label_overlap: str = option(
        "iou", "--region-label-overlap", "Overlap of a region's label: iou, coverage."
    )
    seed: int = option(0, "--region-seed", "Seed of the jittered and distractor boxes.")

    def __post_init__(self) -> None:
        positive(self, "regions", "jitter")
        require(
            self, "jitter_copies", self.jitter_copies >= 0, f"must be at least 0, got {self.jitter_copies}"
        )
        for name, choices in (("label_overlap", LABEL_OVERLAPS), ("source", REGION_SOURCES)):
            value = getattr(self, name)
            require(self, name, value in choices, f"must be one of {', '.join(choices)}, got {value!r}")

    def describe(self) -> str:
        """The recipe in one line (what `RegionSet.recipe` records and its digest hashes)."""
        return ",".join(f"{key}={value}" for key, value in asdict(self).items())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "RegionRecipe") -> RegionRecipe:
        """From the JSON form; an unknown field is an error naming `source`."""
        return config_from_dict(cls, data, source)


@dataclass
class ImageRegions:
    """One image's regions, unpadded: boxes in pixels and, where the objects are known, class labels."""

    width: int
    height: int
    boxes: np.ndarray  # (r, 4) float32 x1, y1, x2, y2 in pixels
    kinds: np.ndarray  # (r,) int8 index into KINDS
    labels: np.ndarray | None  # (r, K) float32 class distributions (rows sum to 1), None without objects
    object_regions: tuple[int, ...]  # the region standing for each object (see `RegionSet`), in object order
    object_boxes: np.ndarray  # (m, 4) float32 the objects' true boxes, pixel corners

    def locations(self) -> np.ndarray:
        """(r, 5) x1, y1, x2, y2, area, normalized by the image's width and height."""
        return box_locations(self.boxes, self.width, self.height)


def box_locations(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """(..., 4) pixel corners -> (..., 5) normalized corners and area (the reference's image_location)."""
    scale = np.array([width, height, width, height], dtype=np.float32)
    corners = (np.asarray(boxes, dtype=np.float32) / scale).clip(0.0, 1.0)
    area = (corners[..., 2] - corners[..., 0]) * (corners[..., 3] - corners[..., 1])
    return np.concatenate([corners, area[..., None]], axis=-1).astype(np.float32)


def xywh_to_corners(boxes: Sequence[Sequence[float]]) -> np.ndarray:
    """COCO [x, y, w, h] boxes -> (n, 4) x1, y1, x2, y2."""
    xywh = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def overlaps(regions: np.ndarray, objects: np.ndarray, kind: str) -> np.ndarray:
    """(r, 4) and (m, 4) corner boxes -> (r, m): IoU, or the share of each region inside each object box."""
    low = np.maximum(regions[:, None, :2], objects[None, :, :2])
    high = np.minimum(regions[:, None, 2:], objects[None, :, 2:])
    inter = np.clip(high - low, 0, None).prod(-1)  # (r, m)
    region_area = np.clip(regions[:, 2:] - regions[:, :2], 0, None).prod(-1)[:, None]
    if kind == "coverage":
        return inter / np.maximum(region_area, 1e-9)
    object_area = np.clip(objects[:, 2:] - objects[:, :2], 0, None).prod(-1)[None, :]
    return inter / np.maximum(region_area + object_area - inter, 1e-9)


def region_labels(boxes: np.ndarray, objects: Sequence[SceneObject], kind: str = "iou") -> np.ndarray:
    """(r, 4) corner boxes -> (r, K) class distributions: each object's class its overlap, background the
    rest (overlaps summing past 1, possible only where object boxes overlap, are scaled down to 1)."""
    labels = np.zeros((len(boxes), len(region_classes())), dtype=np.float64)
    if objects:
        share = overlaps(boxes, xywh_to_corners([o.bbox for o in objects]), kind)  # (r, m)
        total = share.sum(1, keepdims=True)
        share = share / np.maximum(total, 1.0)
        for j, obj in enumerate(objects):
            labels[:, object_class(obj)] += share[:, j]
    labels[:, 0] = 1.0 - labels[:, 1:].sum(1)
    return np.clip(labels, 0.0, 1.0).astype(np.float32)


def region_rng(seed: int, image_id: int | str) -> np.random.Generator:
    """The generator of one image's boxes: a function of the seed and the image id only."""
    digest = hashlib.sha256(f"regions/{seed}/{image_id!r}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def scene_regions(
    objects: Sequence[SceneObject], width: int, height: int, image_id: int | str, recipe: RegionRecipe
) -> ImageRegions:
    """An image's `recipe.regions` regions in a seeded random order: each object's true box, its jittered
    copies, and distractors to fill the rest (objects beyond the count lose their copies first, then are
    cut, which the recipe's default never needs: 3 objects x 3 boxes < 12)."""
    rng = region_rng(recipe.seed, image_id)
    truth = xywh_to_corners([o.bbox for o in objects])
    boxes: list[np.ndarray] = list(truth[: recipe.regions])
    kinds = [0] * len(boxes)
    for j in range(len(boxes)):
        for _ in range(recipe.jitter_copies):
            if len(boxes) < recipe.regions:
                boxes.append(_jittered(truth[j], width, height, recipe.jitter, rng))
                kinds.append(1)
    while len(boxes) < recipe.regions:
        boxes.append(_distractor(objects, width, height, recipe.label_overlap, rng))
        kinds.append(2)
    order = rng.permutation(len(boxes))
    stacked = np.stack(boxes).astype(np.float32)[order]
    position = np.argsort(order)  # where region i went
    return ImageRegions(
        width=width,
        height=height,
        boxes=stacked,
        kinds=np.asarray(kinds, dtype=np.int8)[order],
        labels=region_labels(stacked, objects, recipe.label_overlap),
        object_regions=tuple(int(position[j]) for j in range(min(len(objects), recipe.regions))),
        object_boxes=truth[: recipe.regions].astype(np.float32),
    )


def scene_region_set(scenes: Sequence[Scene], recipe: RegionRecipe) -> RegionSet:
    """The boxes of every scene (`scene_regions`), padded into one `RegionSet` of `recipe.regions` each."""
    regions = [scene_regions(s.objects, s.image_size, s.image_size, s.image_id, recipe) for s in scenes]
    return stack_regions([s.image_id for s in scenes], regions, recipe.describe(), recipe.regions)


def _jittered(
    box: np.ndarray, width: int, height: int, jitter: float, rng: np.random.Generator
) -> np.ndarray:
    """A copy of `box` shifted and rescaled by Gaussian jitter, kept inside the image, differing from the box
    by IoU in JITTER_IOU (the last draw when TRIES draws find none)."""
    size = box[2:] - box[:2]
    centre = (box[:2] + box[2:]) / 2
    limit = np.array([width, height], dtype=np.float64)
    candidate = box
    for _ in range(TRIES):
        new_size = size * np.exp(rng.normal(0.0, jitter, 2))
        new_centre = centre + rng.normal(0.0, jitter, 2) * size
        low = np.clip(new_centre - new_size / 2, 0, limit - 1)
        high = np.clip(new_centre + new_size / 2, low + 1, limit)
        candidate = np.concatenate([low, high])
        iou = float(overlaps(candidate[None], box[None], "iou")[0, 0])
        if JITTER_IOU[0] <= iou < JITTER_IOU[1]:
            break
    return candidate


def _distractor(
    objects: Sequence[SceneObject], width: int, height: int, kind: str, rng: np.random.Generator
) -> np.ndarray:
    """A random box whose label is at least DISTRACTOR_BACKGROUND background (the most background of TRIES
    draws when none is)."""
    limit = np.array([width, height], dtype=np.float64)
    truth = xywh_to_corners([o.bbox for o in objects]) if objects else np.zeros((0, 4), np.float32)
    best, best_background = None, -1.0
    for _ in range(TRIES):
        size = rng.uniform(*DISTRACTOR_SIDES, 2) * limit
        low = rng.uniform(0, 1, 2) * (limit - size)
        candidate = np.concatenate([low, low + size])
        background = 1.0 - float(overlaps(candidate[None], truth, kind).sum()) if len(truth) else 1.0
        if background > best_background:
            best, best_background = candidate, background
        if background >= DISTRACTOR_BACKGROUND:
            break
    return best  # type: ignore[return-value]


def grid_regions(
    width: int,
    height: int,
    grid: tuple[int, int],
    objects: Sequence[SceneObject] | None = None,
    visible: tuple[float, float, float, float] | None = None,
    label_overlap: str = "coverage",
) -> ImageRegions:
    """The encoder's patch grid as the regions: (rows x columns) cells row by row over the part of the image
    the encoder sees (`visible`, x1 y1 x2 y2 in pixels: the whole image unless its preprocessing crops).
    Labels by coverage by default: a cell wholly inside an object's box is that object."""
    rows, columns = grid
    x1, y1, x2, y2 = visible if visible is not None else (0.0, 0.0, float(width), float(height))
    xs, ys = np.linspace(x1, x2, columns + 1), np.linspace(y1, y2, rows + 1)
    boxes = np.array(
        [[xs[c], ys[r], xs[c + 1], ys[r + 1]] for r in range(rows) for c in range(columns)], dtype=np.float32
    )
    boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
    labels = region_labels(boxes, objects, label_overlap) if objects is not None else None
    truth = xywh_to_corners([o.bbox for o in objects or []])
    nearest = tuple(int(i) for i in overlaps(boxes, truth, "iou").argmax(0)) if len(truth) else ()
    return ImageRegions(width, height, boxes, np.full(len(boxes), 3, np.int8), labels, nearest, truth)


def detected_regions(width: int, height: int, boxes: np.ndarray, max_regions: int) -> ImageRegions:
    """A detector's (n, 4) corner boxes as the regions, the first `max_regions` in file order (detectors
    write theirs best first); no class labels."""
    kept = np.asarray(boxes, dtype=np.float32)[:max_regions]
    return ImageRegions(
        width, height, kept, np.full(len(kept), 4, np.int8), None, (), np.zeros((0, 4), np.float32)
    )


@dataclass
class RegionSet:
    """The regions of N images, padded to R: what the features are pooled over and the batches read."""

    image_ids: list[int | str]
    sizes: np.ndarray  # (N, 2) width, height in pixels
    boxes: np.ndarray  # (N, R, 4) float32 pixel corners, zeros on padding
    mask: np.ndarray  # (N, R) bool, True for a real region
    kinds: np.ndarray  # (N, R) int8 index into KINDS, -1 on padding
    labels: np.ndarray | None  # (N, R, K) float32 class distributions, zeros on padding
    # The region standing for each object: its true box (boxes), or the cell that overlaps it most by IoU
    # (the grid); -1 past an image's objects. The objects' true boxes themselves, zeros past them.
    object_regions: np.ndarray  # (N, M) int64
    object_boxes: np.ndarray  # (N, M, 4) float32 pixel corners
    recipe: str  # how the boxes were made (part of the digest)

    def __len__(self) -> int:
        return len(self.image_ids)

    def locations(self) -> np.ndarray:
        """(N, R, 5) normalized x1, y1, x2, y2, area; zeros on padding."""
        scale = np.concatenate([self.sizes, self.sizes], axis=1).astype(np.float32)[:, None, :]
        corners = (self.boxes / scale).clip(0.0, 1.0)
        area = (corners[..., 2] - corners[..., 0]) * (corners[..., 3] - corners[..., 1])
        return (np.concatenate([corners, area[..., None]], axis=-1) * self.mask[..., None]).astype(np.float32)

    def digest(self) -> str:
        """SHA-256 of the boxes, their images and the recipe: what the pooled features depend on."""
        digest = hashlib.sha256(self.recipe.encode())
        digest.update(repr(self.image_ids).encode())
        for array in (self.sizes.astype(np.int64), self.boxes, self.mask):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def stack_regions(
    image_ids: Sequence[int | str],
    regions: Sequence[ImageRegions],
    recipe: str,
    max_regions: int | None = None,
) -> RegionSet:
    """Pad each image's regions to R (`max_regions`, or the most any image has) into one `RegionSet`."""
    count = max_regions or max(len(r.boxes) for r in regions)
    n, objects = len(regions), max((len(r.object_regions) for r in regions), default=0)
    with_labels = all(r.labels is not None for r in regions)
    boxes = np.zeros((n, count, 4), np.float32)
    mask = np.zeros((n, count), bool)
    kinds = np.full((n, count), -1, np.int8)
    labels = np.zeros((n, count, len(region_classes())), np.float32) if with_labels else None
    object_regions = np.full((n, objects), -1, np.int64)
    object_boxes = np.zeros((n, objects, 4), np.float32)
    for i, image in enumerate(regions):
        r = min(len(image.boxes), count)
        boxes[i, :r], mask[i, :r], kinds[i, :r] = image.boxes[:r], True, image.kinds[:r]
        if labels is not None:
            labels[i, :r] = image.labels[:r]  # type: ignore[index]
        object_regions[i, : len(image.object_regions)] = image.object_regions
        object_boxes[i, : len(image.object_boxes)] = image.object_boxes
    sizes = np.array([[r.width, r.height] for r in regions], dtype=np.int64).reshape(n, 2)
    return RegionSet(list(image_ids), sizes, boxes, mask, kinds, labels, object_regions, object_boxes, recipe)
