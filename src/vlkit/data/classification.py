"""Classification datasets: which image files there are, their labels, and the class names.

Two layouts, told apart by what the folder holds:

- **flat** (DLCV homework): `{class_id}_{n}.png` files (any image extension) beside `id2label.json`
  (`{"0": "red circle", "1": ...}`). Chosen when the folder has image files or `id2label.json` at its top.
- **imagefolder** (torchvision's): one sub-folder per class, `<class name>/<file>.png`; classes are the
  folder names in sorted order, as torchvision's `ImageFolder` numbers them. Images sit directly in their
  class folder (a nested folder is an error rather than silently left out).

Only file names are read here; pixels are read later by `images.read_image`. torchvision's `ImageFolder`
is not used because it is an optional dependency of vlkit, knows only the second layout, and does not
validate class names. Class names become parts of prompts ("a photo of a {}."), so they are checked:
non-empty, unique, and free of `{` / `}`, which would break `str.format` templates. Every problem raises
one `VlkitError` that names the file or entry at fault. Hidden entries (names starting with ".") are ignored.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlkit.errors import VlkitError
from vlkit.runtime.files import read_json

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)
ID2LABEL_FILE = "id2label.json"
FLAT_LAYOUT = "flat"
IMAGEFOLDER_LAYOUT = "imagefolder"

_FLAT_STEM = re.compile(r"(\d+)_(\d+)")
_CLASS_ID = re.compile(r"\d+")


@dataclass
class ClassificationDataset:
    """Image files and their labels; `class_names[label]` names a label."""

    root: Path
    paths: list[Path]
    labels: list[int]
    class_names: list[str]
    layout: str  # FLAT_LAYOUT or IMAGEFOLDER_LAYOUT

    def __len__(self) -> int:
        return len(self.paths)

    def class_counts(self) -> list[int]:
        """How many images each class has, by label."""
        counts = [0] * len(self.class_names)
        for label in self.labels:
            counts[label] += 1
        return counts


def load_classification_dataset(
    root: str | os.PathLike[str], class_names: Sequence[str] | str | os.PathLike[str] | None = None
) -> ClassificationDataset:
    """List a classification folder in either layout (see the module docstring).

    Args:
        root: the folder.
        class_names: overrides the layout's own names: a sequence of names (by label), or a path (a `str`
            is a path) to a text file with one name per line or a JSON file with a list or an id2label object.
    """
    root = Path(root)
    if not root.exists():
        raise VlkitError(f"{root}: dataset folder not found")
    if not root.is_dir():
        raise VlkitError(f"{root}: expected a dataset folder, got a file")
    override = read_class_names(class_names) if class_names is not None else None
    entries = sorted(entry for entry in root.iterdir() if not entry.name.startswith("."))
    if (root / ID2LABEL_FILE).exists() or any(_has_image_extension(entry) for entry in entries):
        return _load_flat(root, entries, override)
    if any(entry.is_dir() for entry in entries):
        return _load_imagefolder(root, entries, override)
    raise VlkitError(
        f"{root}: no images found (expected {{class_id}}_{{n}}.png files beside {ID2LABEL_FILE}, "
        "or one folder of images per class)"
    )


def check_same_classes(first: ClassificationDataset, second: ClassificationDataset) -> None:
    """Two splits of one problem (a probe's training and test folders) must name the same classes in the
    same order, since a label is an index into them; VlkitError names both folders and the first
    difference."""
    a, b = first.class_names, second.class_names
    if a == b:
        return
    only_first = [name for name in a if name not in b]
    only_second = [name for name in b if name not in a]
    if only_first or only_second:
        side, name = (first.root, only_first[0]) if only_first else (second.root, only_second[0])
        difference = f"{len(a)} classes against {len(b)}; only {side} has {name!r}"
    else:
        at = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
        difference = f"the same names in another order (class {at} is {a[at]!r} against {b[at]!r})"
    raise VlkitError(f"{first.root} and {second.root} name different classes: {difference}")


def read_class_names(source: Sequence[str] | str | os.PathLike[str]) -> list[str]:
    """Class names from a sequence, a text file (one per line) or a JSON list / id2label object; validated."""
    if not isinstance(source, (str, os.PathLike)):
        return validate_class_names(list(source), "class_names")
    path = Path(source)
    if path.suffix.lower() == ".json":
        return _class_names_from_json(read_json(path), str(path))
    return _class_names_from_text(path)


def validate_class_names(
    names: Sequence[Any], source: str, entry_names: Sequence[str] | None = None
) -> list[str]:
    """Check names are non-empty unique strings; `entry_names[i]` says where name i is. Braces are fine:
    templates are filled by plain replacement, not str.format."""
    where = list(entry_names) if entry_names is not None else [f"class_names[{i}]" for i in range(len(names))]
    if not names:
        raise VlkitError(f"{source}: no class names")
    first_index: dict[str, int] = {}
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise VlkitError(
                f"{source}: {where[index]}: class name must be a string, got {type(name).__name__}"
            )
        if not name.strip():
            raise VlkitError(f"{source}: {where[index]}: empty class name")
        if name in first_index:
            raise VlkitError(
                f"{source}: {where[index]}: duplicate class name {name!r} (also {where[first_index[name]]})"
            )
        first_index[name] = index
    return list(names)


def _load_flat(root: Path, entries: list[Path], override: list[str] | None) -> ClassificationDataset:
    found: list[tuple[int, int, Path]] = []
    for entry in entries:
        if not _has_image_extension(entry):
            continue  # id2label.json, notes, stray folders
        if entry.is_dir():
            raise VlkitError(f"{entry}: is a directory, expected an image file")
        match = _FLAT_STEM.fullmatch(entry.stem)
        if match is None:
            raise VlkitError(
                f"{entry}: file name does not match {{class_id}}_{{n}}{entry.suffix} "
                f"(the flat layout, chosen because {root} has image files or {ID2LABEL_FILE} at its top)"
            )
        found.append((int(match.group(1)), int(match.group(2)), entry))
    if not found:
        raise VlkitError(f"{root}: no image files beside {ID2LABEL_FILE}")
    if override is not None:
        names, names_source = override, "class_names"
    elif (root / ID2LABEL_FILE).exists():
        names_source = str(root / ID2LABEL_FILE)
        names = _class_names_from_json(read_json(root / ID2LABEL_FILE), names_source, require_dict=True)
    else:
        raise VlkitError(f"{root}: flat layout without {ID2LABEL_FILE}; pass the class names")
    found.sort(key=lambda item: (item[0], item[1], item[2].name))
    for class_id, _, path in found:
        if class_id >= len(names):
            raise VlkitError(
                f"{path}: class id {class_id} has no class name ({names_source} names {len(names)} classes)"
            )
    return ClassificationDataset(
        root=root,
        paths=[path for _, _, path in found],
        labels=[class_id for class_id, _, _ in found],
        class_names=names,
        layout=FLAT_LAYOUT,
    )


def _load_imagefolder(root: Path, entries: list[Path], override: list[str] | None) -> ClassificationDataset:
    folders = [entry for entry in entries if entry.is_dir()]
    names = validate_class_names([folder.name for folder in folders], str(root), [f.name for f in folders])
    if override is not None:
        if len(override) != len(folders):
            raise VlkitError(
                f"class_names: {len(override)} names given but {root} has {len(folders)} class folders"
            )
        names = override
    paths: list[Path] = []
    labels: list[int] = []
    for label, folder in enumerate(folders):
        files = _class_folder_images(folder)
        if not files:
            logger.warning("%s: class folder has no images", folder)
        paths.extend(files)
        labels.extend([label] * len(files))
    if not paths:
        raise VlkitError(f"{root}: class folders hold no images")
    return ClassificationDataset(root=root, paths=paths, labels=labels, class_names=names,
                                 layout=IMAGEFOLDER_LAYOUT)


def _class_folder_images(folder: Path) -> list[Path]:
    files: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            raise VlkitError(
                f"{entry}: a folder inside class folder {folder.name!r}; images must sit directly in it"
            )
        if _has_image_extension(entry):
            files.append(entry)
    return files


def _class_names_from_json(data: Any, source: str, require_dict: bool = False) -> list[str]:
    if isinstance(data, list) and not require_dict:
        return validate_class_names(data, source, [f"[{i}]" for i in range(len(data))])
    if not isinstance(data, dict):
        expected = "an id2label object" if require_dict else "a list of class names or an id2label object"
        raise VlkitError(
            f'{source}: expected {expected} like {{"0": "red circle"}}, got {type(data).__name__}'
        )
    by_id: dict[int, tuple[str, Any]] = {}
    for key, name in data.items():
        if not _CLASS_ID.fullmatch(key):
            raise VlkitError(f'{source}: key {key!r} is not a class id (expected an integer like "0")')
        if int(key) in by_id:
            raise VlkitError(f"{source}: keys {by_id[int(key)][0]!r} and {key!r} are the same class id")
        by_id[int(key)] = (key, name)
    missing = [i for i in range(len(by_id)) if i not in by_id]
    if missing:
        raise VlkitError(
            f"{source}: class ids must run 0..{len(by_id) - 1} without gaps; {missing[0]} is missing"
        )
    ordered = [by_id[i] for i in range(len(by_id))]
    return validate_class_names([name for _, name in ordered], source, [repr(key) for key, _ in ordered])


def _class_names_from_text(path: Path) -> list[str]:
    if not path.exists():
        raise VlkitError(f"{path}: class names file not found")
    if path.is_dir():
        raise VlkitError(f"{path}: is a directory, expected a class names file")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VlkitError(f"{path}: not valid UTF-8 (byte {exc.start})") from exc
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()  # a trailing newline or blank lines at the end are not classes
    return validate_class_names(lines, str(path), [f"line {i + 1}" for i in range(len(lines))])


def _has_image_extension(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS
