"""ViLBERT's task data on disk: a shapes world's split as scenes (its images' objects, checked), and task
files (VQA questions, referring expressions) written and read back with every entry checked.

A task file is JSON, one list per task, each entry as `vlkit.shapes.questions` makes it:
```
{"answers": ["no", "yes", ...],
 "vqa": [{"image_id": 3, "question": "how many stars are there?", "answer": "2", "type": "count",
          "mentions": [0, 2], "heldout": false}, ...],
 "referring": [{"image_id": 3, "text": "the small blue star", "target": 1, "heldout": false}, ...]}
```
A question about an image not in the dataset, an answer outside "answers", a referring target that is not one
of its image's objects: each is one `VlkitError` naming the file and the entry, before any training starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vlkit.data.captions import CaptionDataset, load_caption_dataset
from vlkit.errors import VlkitError
from vlkit.runtime.files import read_json, write_json_atomic
from vlkit.shapes.grammar import COLOURS, SHAPES, SIZES, SceneObject
from vlkit.shapes.meta import load_world_meta
from vlkit.shapes.questions import ANSWERS, QUESTION_TYPES, ReferringItem, Scene, SceneTasks, VqaItem

SPLITS = ("train", "val")


@dataclass
class WorldSplit:
    """One captioned split of a shapes world: its images (with captions) and their scenes, in file order."""

    dataset: CaptionDataset
    scenes: list[Scene]
    heldout: list[tuple[str, str]]  # the world's held-out colour x shape combinations
    split: str

    def objects(self) -> list[list[SceneObject]]:
        return [list(scene.objects) for scene in self.scenes]


def load_world_split(world_dir: str | os.PathLike[str], split: str) -> WorldSplit:
    """A world's train or val split: WORLD/{split}.json with its images and each image's objects."""
    if split not in SPLITS:
        raise VlkitError(f"split: {split!r} is not a captioned split of a shapes world ({', '.join(SPLITS)})")
    world_dir = Path(world_dir)
    meta = load_world_meta(world_dir)
    dataset = load_caption_dataset(world_dir / f"{split}.json", world_dir / "images")
    source = world_dir / f"{split}.json"
    scenes = []
    for index, image in enumerate(dataset.images):
        where = f"{source}: images[{index}]"
        size = image.extra.get("width")
        if not isinstance(size, int) or size != image.extra.get("height") or size <= 0:
            raise VlkitError(f"{where}: expected a square image with integer 'width' and 'height'")
        scenes.append(Scene(image.id, tuple(parse_objects(image.extra.get("objects"), where, size)), size))
    heldout = [(str(colour), str(shape)) for colour, shape in meta["heldout"]]
    return WorldSplit(dataset, scenes, heldout, split)


def parse_objects(entries: Any, where: str, image_size: int) -> list[SceneObject]:
    """An image entry's "objects" as `SceneObject`s; one error line naming the entry when one is malformed."""
    if not isinstance(entries, list) or not entries:
        raise VlkitError(f"{where}: 'objects' must be a non-empty list (a shapes world's image entry)")
    objects = []
    for j, entry in enumerate(entries):
        at = f"{where}: objects[{j}]"
        if not isinstance(entry, dict):
            raise VlkitError(f"{at}: expected an object with shape, colour, size and bbox")
        for key, choices in (("shape", SHAPES), ("colour", tuple(COLOURS)), ("size", SIZES)):
            if entry.get(key) not in choices:
                raise VlkitError(f"{at}: {key} {entry.get(key)!r} is not one of {', '.join(choices)}")
        bbox = entry.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(type(v) is int for v in bbox):
            raise VlkitError(f"{at}: bbox must be 4 integers [x, y, w, h], got {bbox!r}")
        x, y, w, h = bbox
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > image_size or y + h > image_size:
            raise VlkitError(f"{at}: bbox {bbox} lies outside its {image_size}x{image_size} image")
        objects.append(SceneObject(entry["colour"], entry["shape"], entry["size"], (x, y, w, h)))
    return objects


def write_task_file(path: str | os.PathLike[str], tasks: SceneTasks) -> Path:
    """Write the tasks as a task file (atomically); returns its path."""
    path = Path(path)
    write_json_atomic(
        path,
        {
            "answers": list(ANSWERS),
            "vqa": [{**asdict(item), "mentions": list(item.mentions)} for item in tasks.vqa],
            "referring": [asdict(item) for item in tasks.referring],
        },
        indent=None,
    )
    return path


def read_task_file(path: str | os.PathLike[str], object_counts: Mapping[int | str, int]) -> SceneTasks:
    """Read a task file, checking each entry against the dataset (`object_counts`: each image's number of
    objects, keyed by image id); its answers must be `ANSWERS`, the head's vocabulary."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("vqa", []), list):
        raise VlkitError(f"{path}: expected an object with lists 'vqa' and 'referring'")
    if data.get("answers", list(ANSWERS)) != list(ANSWERS):
        raise VlkitError(f"{path}: 'answers' differ from this vlkit's answer vocabulary ({len(ANSWERS)})")
    vqa = [
        _vqa_item(entry, f"{path}: vqa[{i}]", object_counts) for i, entry in enumerate(data.get("vqa", []))
    ]
    referring_entries = data.get("referring", [])
    if not isinstance(referring_entries, list):
        raise VlkitError(f"{path}: 'referring' must be a list")
    referring = [
        _referring_item(entry, f"{path}: referring[{i}]", object_counts)
        for i, entry in enumerate(referring_entries)
    ]
    return SceneTasks(vqa, referring)


def _image_of(entry: Any, where: str, object_counts: Mapping[int | str, int]) -> int | str:
    if not isinstance(entry, dict):
        raise VlkitError(f"{where}: expected an object")
    image_id = entry.get("image_id")
    if image_id not in object_counts:
        raise VlkitError(f"{where}: image_id {image_id!r} is not an image of the dataset")
    return image_id


def _text(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise VlkitError(f"{where}: {key!r} must be a non-empty string")
    return value


def _objects(values: Any, count: int, where: str, key: str) -> tuple[int, ...]:
    values = values if isinstance(values, list) else [values]
    if not all(type(v) is int and 0 <= v < count for v in values):
        raise VlkitError(f"{where}: {key} {values!r} must be object indices of its image (0 to {count - 1})")
    return tuple(values)


def _vqa_item(entry: Any, where: str, object_counts: Mapping[int | str, int]) -> VqaItem:
    image_id = _image_of(entry, where, object_counts)
    answer = _text(entry, "answer", where)
    if answer not in ANSWERS:
        raise VlkitError(f"{where}: answer {answer!r} is not in the answer vocabulary")
    kind = entry.get("type", "")
    if kind not in QUESTION_TYPES:
        raise VlkitError(f"{where}: type {kind!r} is not one of {', '.join(QUESTION_TYPES)}")
    mentions = _objects(entry.get("mentions", []), object_counts[image_id], where, "mentions")
    heldout = bool(entry.get("heldout", False))
    return VqaItem(image_id, _text(entry, "question", where), answer, kind, mentions, heldout)


def _referring_item(entry: Any, where: str, object_counts: Mapping[int | str, int]) -> ReferringItem:
    image_id = _image_of(entry, where, object_counts)
    if type(entry.get("target")) is not int:
        raise VlkitError(f"{where}: target must be an object index, got {entry.get('target')!r}")
    (target,) = _objects(entry["target"], object_counts[image_id], where, "target")
    return ReferringItem(image_id, _text(entry, "text", where), target, bool(entry.get("heldout", False)))


def object_counts(scenes: Sequence[Scene]) -> dict[int | str, int]:
    """Each scene's number of objects by image id (what `read_task_file` checks against)."""
    return {scene.image_id: len(scene.objects) for scene in scenes}
