"""A detector's boxes for real images, in the COCO detection layout, read and checked entry by entry.

```
{"images": [{"id": 1, "width": 640, "height": 480}],            optional: the images' sizes
 "annotations": [{"image_id": 1, "bbox": [x, y, w, h]}, ...]}    pixels, best first within an image
```
Other keys (category_id, score, ...) are ignored, so a detector's own COCO-results file works once its list
is wrapped as "annotations". Every problem is one `VlkitError` naming the file and the entry: a file of
another schema, a box that leaves its image (by more than `EDGE_TOLERANCE_PX`, which is clipped: detectors
round), a box for an image not in the dataset, an image of the dataset without any box (ViLBERT needs at
least one region per image). pycocotools would load the file but checks none of this, hence this reader.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from vlkit.data.captions import CaptionDataset
from vlkit.data.regions import RegionSet, detected_regions, stack_regions, xywh_to_corners
from vlkit.errors import VlkitError
from vlkit.runtime.files import read_json

EDGE_TOLERANCE_PX = 1.0
MAX_REGIONS = 36  # the reference's regions per image (its detector's 10 to 36, padded)
SCHEMA_HINT = 'expected {"annotations": [{"image_id": ..., "bbox": [x, y, w, h]}, ...]}'


@dataclass
class DetectionBoxes:
    """Each image's boxes, as (n, 4) pixel corners x1, y1, x2, y2 in file order, and each image's size."""

    path: Path
    boxes: dict[int | str, np.ndarray]
    sizes: dict[int | str, tuple[int, int]]  # width, height


def image_sizes(dataset: CaptionDataset) -> dict[int | str, tuple[int, int]]:
    """Each image's (width, height): its entry's "width" and "height" where the annotation file has them,
    else read from the file's header (nothing is decoded)."""
    sizes: dict[int | str, tuple[int, int]] = {}
    for image in dataset.images:
        width, height = image.extra.get("width"), image.extra.get("height")
        if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
            sizes[image.id] = (width, height)
            continue
        try:
            with Image.open(image.path) as opened:
                sizes[image.id] = opened.size
        except (OSError, UnidentifiedImageError) as exc:
            raise VlkitError(f"{image.path}: cannot read the image's size ({exc})".splitlines()[0]) from exc
    return sizes


def read_detection_boxes(
    path: str | os.PathLike[str],
    image_ids: Sequence[int | str],
    sizes: Mapping[int | str, tuple[int, int]] | None = None,
) -> DetectionBoxes:
    """Read and check a boxes file against the dataset's images (`image_ids`, with their `sizes` unless the
    file's "images" give them; the file's win where both do)."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        got = type(data).__name__ if not isinstance(data, dict) else f"keys {sorted(data)[:5]}"
        raise VlkitError(f"{path}: not a boxes file ({SCHEMA_HINT}, got {got})")
    known = set(image_ids)
    all_sizes = dict(sizes or {})
    all_sizes.update(_file_sizes(path, data.get("images", []), known))
    found: dict[int | str, list[list[float]]] = {}
    for index, entry in enumerate(data["annotations"]):
        where = f"{path}: annotations[{index}]"
        image_id, bbox = _entry(entry, where)
        if image_id not in known:
            raise VlkitError(f"{where}: image_id {image_id!r} is not an image of the dataset")
        if image_id not in all_sizes:
            raise VlkitError(f'{where}: the size of image {image_id!r} is unknown (give "images" sizes)')
        found.setdefault(image_id, []).append(_inside(bbox, all_sizes[image_id], where))
    for image_id in image_ids:
        if not found.get(image_id):
            raise VlkitError(f"{path}: image {image_id!r} has no box (each image needs at least one)")
    boxes = {image_id: xywh_to_corners(found[image_id]) for image_id in image_ids}
    return DetectionBoxes(path, boxes, {image_id: all_sizes[image_id] for image_id in image_ids})


def _file_sizes(path: Path, entries: Any, known: set[int | str]) -> dict[int | str, tuple[int, int]]:
    if not isinstance(entries, list):
        raise VlkitError(
            f"{path}: 'images' must be a list of {{id, width, height}}, got {type(entries).__name__}"
        )
    sizes: dict[int | str, tuple[int, int]] = {}
    for index, entry in enumerate(entries):
        where = f"{path}: images[{index}]"
        if not isinstance(entry, dict) or not _is_id(entry.get("id")):
            raise VlkitError(f"{where}: expected an object with an integer or string 'id'")
        width, height = entry.get("width"), entry.get("height")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)):
            raise VlkitError(
                f"{where}: 'width' and 'height' must be positive integers, got {width!r}, {height!r}"
            )
        if entry["id"] in known:
            sizes[entry["id"]] = (width, height)
    return sizes


def _entry(entry: Any, where: str) -> tuple[int | str, list[float]]:
    if not isinstance(entry, dict):
        raise VlkitError(f"{where}: expected an object, got {type(entry).__name__} ({SCHEMA_HINT})")
    for key in ("image_id", "bbox"):
        if key not in entry:
            raise VlkitError(f"{where}: missing {key!r} ({SCHEMA_HINT})")
    if not _is_id(entry["image_id"]):
        raise VlkitError(f"{where}: image_id must be an integer or a string, got {entry['image_id']!r}")
    bbox = entry["bbox"]
    if (
        not isinstance(bbox, list)
        or len(bbox) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)
    ):
        raise VlkitError(f"{where}: bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}")
    if bbox[2] <= 0 or bbox[3] <= 0:
        raise VlkitError(f"{where}: bbox {bbox} has no area (w and h must be positive)")
    return entry["image_id"], [float(v) for v in bbox]


def _inside(bbox: list[float], size: tuple[int, int], where: str) -> list[float]:
    """The box clipped to its image, or an error when it leaves the image by more than the tolerance."""
    x, y, w, h = bbox
    width, height = size
    tol = EDGE_TOLERANCE_PX
    if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        raise VlkitError(f"{where}: bbox {bbox} lies outside its {width}x{height} image")
    x1, y1 = max(x, 0.0), max(y, 0.0)
    x2, y2 = min(x + w, float(width)), min(y + h, float(height))
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        raise VlkitError(f"{where}: bbox {bbox} lies outside its {width}x{height} image")
    return [x1, y1, x2 - x1, y2 - y1]


def _is_id(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)


def detection_region_set(
    boxes: DetectionBoxes, image_ids: Sequence[int | str], max_regions: int = MAX_REGIONS
) -> RegionSet:
    """The detector's boxes of `image_ids` (the first `max_regions` of each) as one `RegionSet`, padded to
    the most boxes any image keeps."""
    regions = [detected_regions(*boxes.sizes[i], boxes.boxes[i], max_regions) for i in image_ids]
    return stack_regions(list(image_ids), regions, f"source=detections,max={max_regions}")
