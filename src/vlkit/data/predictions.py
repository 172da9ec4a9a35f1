"""Reading a file of predicted captions and matching it to the images of a caption dataset.

Two layouts are read, told apart by the top-level JSON type:

- DLCV: an object keyed by file name without extension, `{"000001": "a red circle", ...}`; keys with the
  extension (`"000001.png"`, the annotation's file name or its last part) are read too, where they name one
  image only;
- COCO results: a list of `{"image_id": 1, "caption": "a red circle"}` (extra keys such as "score" are
  ignored), keyed by the annotation file's image ids.

`read_json` reads the file; this module checks it entry by entry, because a predictions file that silently
misses or misnames images gives scores over the wrong set of images. Every problem raises one `VlkitError`
naming the file and the first few entries at fault.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from vlkit.data.captions import CaptionDataset, CaptionImage
from vlkit.errors import VlkitError
from vlkit.runtime.files import read_json

logger = logging.getLogger(__name__)

SHOWN_KEYS = 5  # how many offending keys an error message lists
_LAYOUTS = '{"file stem": "caption", ...} (DLCV) or [{"image_id": ..., "caption": "..."}, ...] (COCO results)'


def load_predictions(
    path: str | os.PathLike[str],
    dataset: CaptionDataset,
    allow_partial: bool = False,
    allow_empty: bool = False,
) -> dict[int | str, str]:
    """One predicted caption per image, keyed by the dataset's image id, in the dataset's order.

    Args:
        path: the predictions JSON, in the DLCV or the COCO results layout.
        dataset: the images the predictions must describe.
        allow_partial: score only the predicted images (the others are left out and counted in the log);
            otherwise every image of the dataset needs a prediction. A prediction for an image the dataset
            does not have is an error either way.
        allow_empty: accept empty captions (a model that ends at once) and score them as they are;
            otherwise an empty caption is an error, as it usually means a broken predictions file.
    """
    path = Path(path)
    data = read_json(path)
    if isinstance(data, dict):
        by_image = _match_by_name(_read_dlcv(data, path, allow_empty), dataset, path)
    elif isinstance(data, list):
        by_image = _match_by_id(_read_coco_results(data, path, allow_empty), dataset, path)
    else:
        raise VlkitError(f"{path}: expected {_LAYOUTS}, got {_json_kind(data)}")
    if not by_image:
        raise VlkitError(f"{path}: no predictions")
    missing = [image for image in dataset.images if image.id not in by_image]
    if missing and not allow_partial:
        raise VlkitError(
            f"{path}: no prediction for {len(missing)} of {len(dataset)} images of {dataset.annotations} "
            f"(e.g. {_examples([image.stem for image in missing])}); use --allow-partial to score only the "
            "predicted images"
        )
    if missing:
        logger.warning(
            "%s: %d of %d images have no prediction and are left out", path, len(missing), len(dataset)
        )
    return {image.id: by_image[image.id] for image in dataset.images if image.id in by_image}


def _read_dlcv(data: dict[str, Any], path: Path, allow_empty: bool) -> dict[str, str]:
    if {"images", "annotations"} & set(data) and not all(isinstance(v, str) for v in data.values()):
        raise VlkitError(
            f"{path}: looks like an annotation file (it has 'images' / 'annotations'), expected predictions: "
            f"{_LAYOUTS}"
        )
    for key, caption in data.items():
        _check_caption(caption, f"{path}: prediction {key!r}", allow_empty)
    return data


def _read_coco_results(data: list[Any], path: Path, allow_empty: bool) -> dict[int | str, str]:
    captions: dict[int | str, str] = {}
    for index, entry in enumerate(data):
        where = f"{path}: [{index}]"
        if not isinstance(entry, dict):
            raise VlkitError(
                f"{where}: expected an object with 'image_id' and 'caption', got {_json_kind(entry)}"
            )
        for key in ("image_id", "caption"):
            if key not in entry:
                raise VlkitError(f"{where}: missing field {key!r}")
        image_id = entry["image_id"]
        # bool is an int to Python, but `true` is never an image id.
        if isinstance(image_id, bool) or not isinstance(image_id, (int, str)):
            raise VlkitError(f"{where}: image_id must be an integer or a string, got {_json_kind(image_id)}")
        if image_id in captions:
            raise VlkitError(f"{where}: second prediction for image_id {image_id!r}")
        _check_caption(entry["caption"], f"{where} (image_id {image_id!r})", allow_empty)
        captions[image_id] = entry["caption"]
    return captions


def _match_by_name(captions: dict[str, str], dataset: CaptionDataset, path: Path) -> dict[int | str, str]:
    """DLCV keys to image ids: a key is a file stem (`000001`) or a file name with its extension (the
    annotation's `file_name`, or its last part). A key that could name two images, or two keys that name one,
    are refused: the scores would silently pick one of them."""
    names: dict[str, dict[int | str, CaptionImage]] = {}
    for image in dataset.images:
        for name in {image.stem, image.file_name, Path(image.file_name).name}:
            names.setdefault(name, {})[image.id] = image
    by_image: dict[int | str, str] = {}
    key_of: dict[int | str, str] = {}
    unknown = []
    for key, caption in captions.items():
        candidates = list(names.get(key, {}).values())
        if not candidates:
            unknown.append(key)
            continue
        if len(candidates) > 1:
            files = " and ".join(repr(image.file_name) for image in candidates[:2])
            raise VlkitError(
                f"{path}: key {key!r} could name {files} of {dataset.annotations}; key them by file name"
            )
        image = candidates[0]
        if image.id in key_of:
            raise VlkitError(
                f"{path}: keys {key_of[image.id]!r} and {key!r} both name {image.file_name!r}; keep one"
            )
        key_of[image.id] = key
        by_image[image.id] = caption
    if unknown:
        stems = _examples([image.stem for image in dataset.images[:3]])
        first = dataset.images[0].file_name if dataset.images else ""
        hint = f"; its images' keys are file stems such as {stems} (or file names such as {first!r})"
        _reject_unknown(unknown, "file stem or file name", dataset, path, hint)
    return by_image


def _match_by_id(captions: dict[int | str, str], dataset: CaptionDataset, path: Path) -> dict[int | str, str]:
    by_id: dict[int | str, CaptionImage] = {image.id: image for image in dataset.images}
    _reject_unknown([key for key in captions if key not in by_id], "image_id", dataset, path)
    return captions


def _reject_unknown(
    unknown: list[Any], what: str, dataset: CaptionDataset, path: Path, hint: str = ""
) -> None:
    if unknown:
        raise VlkitError(
            f"{path}: {len(unknown)} prediction(s) for images that {dataset.annotations} does not have "
            f"(by {what}; e.g. {_examples(unknown)}){hint}"
        )


def _check_caption(caption: Any, where: str, allow_empty: bool = False) -> None:
    if not isinstance(caption, str):
        raise VlkitError(f"{where}: caption must be a string, got {_json_kind(caption)}")
    if not caption.strip() and not allow_empty:
        raise VlkitError(f"{where}: caption is empty (--allow-empty scores empty captions as they are)")


def _examples(keys: list[Any]) -> str:
    shown = ", ".join(repr(key) for key in keys[:SHOWN_KEYS])
    return shown + (", ..." if len(keys) > SHOWN_KEYS else "")


_JSON_KIND = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def _json_kind(value: Any) -> str:
    return _JSON_KIND.get(type(value), type(value).__name__)
