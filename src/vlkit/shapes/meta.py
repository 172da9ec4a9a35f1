"""A shapes world on disk, read back: its checked `meta.json`, whether a folder is one, and which classes of a
dataset are its held-out ones. Everything else of vlkit asks these functions rather than reading the file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlkit.errors import VlkitError
from vlkit.runtime.files import read_json
from vlkit.shapes.world import GENERATOR_VERSION

META_FILE = "meta.json"


def is_world(folder: str | os.PathLike[str]) -> bool:
    """`folder` holds a shapes world (its meta.json)."""
    return (Path(folder) / META_FILE).is_file()


_META_TYPES: dict[str, type] = {
    "generator_version": int,
    "seed": int,
    "image_size": int,
    "n_train": int,
    "n_val": int,
    "per_class_train": int,
    "per_class_val": int,
    "colours": dict,
    "shapes": list,
    "sizes": list,
    "classes": list,
    "heldout": list,
    "unseen_class_ids": list,
}


def load_world_meta(world_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read WORLD/meta.json, checked; VlkitError names the file and the field when it is not a valid world."""
    path = Path(world_dir) / "meta.json"
    if not Path(world_dir).is_dir():
        raise VlkitError(f"{world_dir}: no such folder (make a shapes world with `vlkit data shapes`)")
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise VlkitError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    for key, kind in _META_TYPES.items():
        if key not in meta:
            raise VlkitError(f"{path}: missing field {key!r}")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            got = type(meta[key]).__name__
            raise VlkitError(f"{path}: field {key!r} should be a {kind.__name__}, got {got}")
    if meta["generator_version"] != GENERATOR_VERSION:
        raise VlkitError(
            f"{path}: generator_version is {meta['generator_version']}, this vlkit reads "
            f"{GENERATOR_VERSION}; generate the world again"
        )
    expected_classes = [f"{c} {s}" for c in meta["colours"] for s in meta["shapes"]]
    if meta["classes"] != expected_classes:
        raise VlkitError(f"{path}: field 'classes' is not colour x shape in colour-major order")
    heldout = [" ".join(map(str, pair)) if isinstance(pair, list) else "" for pair in meta["heldout"]]
    heldout_ids = [expected_classes.index(name) if name in expected_classes else None for name in heldout]
    if heldout_ids != meta["unseen_class_ids"]:
        raise VlkitError(f"{path}: fields 'heldout' and 'unseen_class_ids' disagree")
    return meta


def unseen_classes_of_world(dataset_root: Path, class_names: Sequence[str]) -> list[int]:
    """Class ids held out of training when `dataset_root` lies in a shapes world (`meta.json` two levels up
    or nearer); [] elsewhere. Matched by class name, so both classification layouts work."""
    dataset_root = Path(dataset_root)
    for folder in (dataset_root, dataset_root.parent, dataset_root.parent.parent):
        if is_world(folder):
            meta = load_world_meta(folder)
            heldout = {f"{colour} {shape}" for colour, shape in meta["heldout"]}
            return [i for i, name in enumerate(class_names) if name in heldout]
    return []
