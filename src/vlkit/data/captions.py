"""Caption datasets in the COCO caption layout (which DLCV HW3's `train.json` / `val.json` share).

```
{"images": [{"id": 1, "file_name": "000001.jpg", ...}],
 "annotations": [{"id": 10, "image_id": 1, "caption": "A red circle."}]}
```
plus a folder the file names are relative to. `read_json` reads the file (and reports unreadable JSON); this
module validates it entry by entry, because a dataset that loads with a silently wrong image-caption pairing
trains and scores nonsense. Every problem raises one `VlkitError` that names the file and the entry, e.g.
`train.json: annotations[12]: image_id 99 has no image`. pycocotools would index the same file but accepts
duplicates and dangling ids without a word, so it is not used here.

Rules worth knowing: image ids may be integers or strings (not floats or booleans); an annotation's `id` is
optional but, when present, unique; file names must stay inside the image root (no `..`, no absolute paths,
no symlinks leading out); a caption is a non-blank string of at most `MAX_CAPTION_WORDS` words; every image
needs a caption unless `require_captions=False` (prediction-only sets), and other keys of an image entry
(the shapes world's "objects", "mask_file", ...) are kept in `CaptionImage.extra`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlkit.errors import VlkitError
from vlkit.runtime.files import read_json

logger = logging.getLogger(__name__)

# Longer than any real caption by far (COCO's longest is under 60 words); a longer one is a broken file.
MAX_CAPTION_WORDS = 1000


@dataclass
class CaptionImage:
    """One image of a caption dataset and its reference captions, in annotation order."""

    id: int | str
    file_name: str
    path: Path
    captions: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        """The file name without folder or extension: the key DLCV prediction files use."""
        return Path(self.file_name).stem


@dataclass
class CaptionDataset:
    """The images of one annotation file, in the file's order, each with its captions."""

    annotations: Path
    image_root: Path
    images: list[CaptionImage]

    def __len__(self) -> int:
        return len(self.images)

    def stem_to_image(self) -> dict[str, CaptionImage]:
        """Images keyed by file stem; two images with the same stem (`a.png`, `b/a.jpg`) are an error."""
        by_stem: dict[str, CaptionImage] = {}
        for image in self.images:
            if image.stem in by_stem:
                raise VlkitError(
                    f"{self.annotations}: file names {by_stem[image.stem].file_name!r} and "
                    f"{image.file_name!r} share the stem {image.stem!r}, "
                    "so predictions keyed by stem would be ambiguous"
                )
            by_stem[image.stem] = image
        return by_stem

    def all_captions(self) -> list[str]:
        """Every caption, image by image in dataset order."""
        return [caption for image in self.images for caption in image.captions]

    def image_paths(self) -> list[Path]:
        return [image.path for image in self.images]


def load_caption_dataset(
    annotations: str | os.PathLike[str],
    image_root: str | os.PathLike[str],
    check_files: bool = True,
    require_captions: bool = True,
) -> CaptionDataset:
    """Load and validate a COCO-layout caption file whose file names are relative to `image_root`.

    Args:
        annotations: the JSON file.
        image_root: the folder the images' `file_name`s are relative to.
        check_files: also require every image file to exist (it is not decoded; see `images.scan_images`).
        require_captions: every image must have at least one caption; turn off for prediction-only sets.
    """
    annotations, image_root = Path(annotations), Path(image_root)
    data = read_json(annotations)
    source = str(annotations)
    if not isinstance(data, dict):
        raise VlkitError(
            f"{source}: expected a JSON object with 'images' and 'annotations', got {_kind(data)}"
        )
    if check_files and not image_root.is_dir():
        raise VlkitError(f"{image_root}: image root folder not found (for {source})")
    image_entries = _top_level_list(data, "images", source, required=True)
    if not image_entries:
        raise VlkitError(f"{source}: 'images' is empty")
    annotation_entries = _top_level_list(data, "annotations", source, required=require_captions)
    images = _parse_images(image_entries, source, image_root, check_files)
    _attach_captions(annotation_entries, images, source)
    if require_captions:
        for index, image in enumerate(images):
            if not image.captions:
                raise VlkitError(
                    f"{source}: images[{index}]: image {image.file_name!r} (id {image.id!r}) has no caption "
                    "(allow this with require_captions=False)"
                )
    logger.info("%s: %d images, %d captions", source, len(images), sum(len(i.captions) for i in images))
    return CaptionDataset(annotations=annotations, image_root=image_root, images=images)


def _top_level_list(data: dict[str, Any], key: str, source: str, required: bool) -> list[Any]:
    if key not in data:
        if required:
            raise VlkitError(f"{source}: missing top-level key {key!r}")
        return []
    if not isinstance(data[key], list):
        raise VlkitError(f"{source}: {key!r} must be a list, got {_kind(data[key])}")
    return data[key]


def _parse_images(entries: list[Any], source: str, image_root: Path, check_files: bool) -> list[CaptionImage]:
    images: list[CaptionImage] = []
    index_of_id: dict[int | str, int] = {}
    index_of_name: dict[str, int] = {}
    for index, entry in enumerate(entries):
        where = f"{source}: images[{index}]"
        entry = _require_object(entry, where)
        image_id = _require_id(entry, "id", where)
        file_name = _require_field(entry, "file_name", str, where)
        if image_id in index_of_id:
            raise VlkitError(
                f"{where}: duplicate image id {image_id!r} (also images[{index_of_id[image_id]}])"
            )
        normalized = os.path.normpath(file_name)
        if normalized in index_of_name:
            raise VlkitError(
                f"{where}: duplicate file_name {file_name!r} (also images[{index_of_name[normalized]}])"
            )
        path = path_inside_root(image_root, file_name, where)
        if check_files:
            _require_file(path, where)
        index_of_id[image_id], index_of_name[normalized] = index, index
        extra = {key: value for key, value in entry.items() if key not in ("id", "file_name")}
        images.append(CaptionImage(id=image_id, file_name=file_name, path=path, extra=extra))
    return images


def _attach_captions(entries: list[Any], images: list[CaptionImage], source: str) -> None:
    image_by_id = {image.id: image for image in images}
    index_of_annotation_id: dict[int | str, int] = {}
    for index, entry in enumerate(entries):
        where = f"{source}: annotations[{index}]"
        entry = _require_object(entry, where)
        image_id = _require_id(entry, "image_id", where)
        caption = _require_field(entry, "caption", str, where)
        if "id" in entry:
            annotation_id = _require_id(entry, "id", where)
            if annotation_id in index_of_annotation_id:
                raise VlkitError(
                    f"{where}: duplicate annotation id {annotation_id!r} "
                    f"(also annotations[{index_of_annotation_id[annotation_id]}])"
                )
            index_of_annotation_id[annotation_id] = index
        if image_id not in image_by_id:
            raise VlkitError(f"{where}: image_id {image_id!r} has no image")
        _check_caption(caption, where)
        image_by_id[image_id].captions.append(caption)


def _check_caption(caption: str, where: str) -> None:
    if not caption.strip():
        raise VlkitError(f"{where}: caption is empty")
    words = len(caption.split())
    if words > MAX_CAPTION_WORDS:
        raise VlkitError(
            f"{where}: caption has {words:,} words, "
            f"over the limit of {MAX_CAPTION_WORDS:,} (MAX_CAPTION_WORDS)"
        )


def path_inside_root(image_root: Path, file_name: str, where: str) -> Path:
    """`image_root / file_name`, or a `VlkitError` (prefixed with `where`) when the name is empty or absolute,
    or resolves (`..`, symlinks followed) to the root itself or outside it. `vlkit report` reuses it."""
    if not file_name.strip():
        raise VlkitError(f"{where}: file_name is empty")
    if Path(file_name).is_absolute():
        raise VlkitError(
            f"{where}: file_name {file_name!r} is absolute; it must be relative to the image root"
        )
    path = image_root / file_name
    # resolve() follows symlinks too, so a link inside the root that points outside it is caught here.
    root = image_root.resolve()
    resolved = path.resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise VlkitError(f"{where}: file_name {file_name!r} escapes the image root {image_root}")
    return path


def _require_file(path: Path, where: str) -> None:
    if path.is_dir():
        raise VlkitError(f"{where}: {path} is a directory, expected an image file")
    if not path.is_file():
        raise VlkitError(f"{where}: image file {path} not found")


def _require_object(entry: Any, where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise VlkitError(f"{where}: expected an object, got {_kind(entry)}")
    return entry


def _require_field(entry: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in entry:
        raise VlkitError(f"{where}: missing field {key!r}")
    value = entry[key]
    if not isinstance(value, kind):
        raise VlkitError(f"{where}: field {key!r} must be a {_kind_name(kind)}, got {_kind(value)}")
    return value


def _require_id(entry: dict[str, Any], key: str, where: str) -> int | str:
    if key not in entry:
        raise VlkitError(f"{where}: missing field {key!r}")
    value = entry[key]
    # bool is a subclass of int in Python, but `true` is never a meaningful id.
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise VlkitError(f"{where}: field {key!r} must be an integer or a string, got {_kind(value)}")
    return value


_JSON_KIND = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
              bool: "a boolean", type(None): "null"}


def _kind(value: Any) -> str:
    return _JSON_KIND.get(type(value), type(value).__name__)


def _kind_name(kind: type) -> str:
    return _JSON_KIND.get(kind, kind.__name__).split(" ", 1)[-1]
