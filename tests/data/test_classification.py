from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vlkit.data.classification import (
    FLAT_LAYOUT,
    IMAGEFOLDER_LAYOUT,
    load_classification_dataset,
    read_class_names,
)
from vlkit.data.images import read_image
from vlkit.errors import VlkitError

CLASS_NAMES = ["blue square", "green triangle", "red circle"]  # already in sorted order
ID2LABEL = {str(i): name for i, name in enumerate(CLASS_NAMES)}
# (class id, n) of every image; n is not contiguous and 10 sorts after 2 numerically.
SAMPLES = [(0, 2), (0, 10), (1, 0), (2, 1), (2, 3), (2, 20)]


def sample_image(class_id: int, n: int) -> Image.Image:
    """A tiny image whose pixels say which sample it is."""
    return Image.new("RGB", (3, 2), (class_id * 50, n, 7))


def write_flat(folder: Path, id2label: Any = ID2LABEL, ext: str = ".png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for class_id, n in SAMPLES:
        sample_image(class_id, n).save(folder / f"{class_id}_{n}{ext}", format="PNG")
    if id2label is not None:
        (folder / "id2label.json").write_text(json.dumps(id2label))
    return folder


def write_imagefolder(folder: Path) -> Path:
    for class_id, n in SAMPLES:
        class_folder = folder / CLASS_NAMES[class_id]
        class_folder.mkdir(parents=True, exist_ok=True)
        sample_image(class_id, n).save(class_folder / f"img{n:03d}.png")
    return folder


def pixel_key(path: Path) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(read_image(path))[0, 0])


def test_flat_layout_loads_labels_in_numeric_order(tmp_path: Path) -> None:
    dataset = load_classification_dataset(write_flat(tmp_path / "train"))
    assert dataset.layout == FLAT_LAYOUT
    assert dataset.class_names == CLASS_NAMES
    assert [p.name for p in dataset.paths] == [f"{c}_{n}.png" for c, n in SAMPLES]
    assert dataset.labels == [c for c, _ in SAMPLES]
    assert len(dataset) == 6 and dataset.class_counts() == [2, 1, 3]


def test_imagefolder_layout_numbers_classes_by_sorted_folder_name(tmp_path: Path) -> None:
    dataset = load_classification_dataset(write_imagefolder(tmp_path / "train"))
    assert dataset.layout == IMAGEFOLDER_LAYOUT
    assert dataset.class_names == CLASS_NAMES
    assert dataset.labels == [0, 0, 1, 2, 2, 2]
    assert [p.parent.name for p in dataset.paths] == [CLASS_NAMES[label] for label in dataset.labels]


def test_both_layouts_give_the_same_labels_to_the_same_images(tmp_path: Path) -> None:
    flat = load_classification_dataset(write_flat(tmp_path / "flat"))
    folders = load_classification_dataset(write_imagefolder(tmp_path / "folders"))
    flat_labels = {pixel_key(p): flat.class_names[y] for p, y in zip(flat.paths, flat.labels, strict=True)}
    folder_labels = {
        pixel_key(p): folders.class_names[y] for p, y in zip(folders.paths, folders.labels, strict=True)
    }
    assert len(flat_labels) == len(SAMPLES)
    assert flat_labels == folder_labels


def test_any_image_extension_and_stray_files_in_flat_layout(tmp_path: Path) -> None:
    root = write_flat(tmp_path / "d", ext=".JPG")  # PNG bytes behind an upper-case .JPG name
    (root / "README.txt").write_text("notes")
    (root / ".0_99.png").write_bytes(b"hidden, ignored")
    (root / "extras").mkdir()
    dataset = load_classification_dataset(root)
    assert [p.suffix for p in dataset.paths] == [".JPG"] * 6
    assert pixel_key(dataset.paths[0]) == (0, 2, 7)


@pytest.mark.parametrize(
    "make_override",
    [
        lambda tmp: ["sq", "tri", "circ"],
        lambda tmp: str(_write(tmp / "names.txt", "sq\ntri\r\ncirc\n\n")),
        lambda tmp: _write(tmp / "names.json", json.dumps(["sq", "tri", "circ"])),
        lambda tmp: _write(tmp / "names.json", json.dumps({"2": "circ", "0": "sq", "1": "tri"})),
    ],
    ids=["sequence", "text_file_as_str", "json_list", "json_id2label"],
)
def test_class_names_override_in_both_layouts(tmp_path: Path, make_override: Callable[[Path], Any]) -> None:
    override = make_override(tmp_path)
    for root in (write_flat(tmp_path / "flat"), write_imagefolder(tmp_path / "folders")):
        dataset = load_classification_dataset(root, class_names=override)
        assert dataset.class_names == ["sq", "tri", "circ"]
        assert dataset.labels == [0, 0, 1, 2, 2, 2]


def test_flat_layout_without_id2label_takes_given_names(tmp_path: Path) -> None:
    root = write_flat(tmp_path / "d", id2label=None)
    with pytest.raises(VlkitError, match="flat layout without id2label.json; pass the class names"):
        load_classification_dataset(root)
    assert load_classification_dataset(root, CLASS_NAMES).labels == [0, 0, 1, 2, 2, 2]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _flat_with(id2label: Any) -> Callable[[Path], Path]:
    return lambda tmp: write_flat(tmp / "d", id2label=id2label)


def _flat_plus(name: str, directory: bool = False) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        root = write_flat(tmp / "d")
        (root / name).mkdir() if directory else sample_image(0, 0).save(root / name, format="PNG")
        return root

    return make


def _folders_plus(relative: str, directory: bool = False) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        root = write_imagefolder(tmp / "d")
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir() if directory else sample_image(0, 0).save(path, format="PNG")
        return root

    return make


def _empty(tmp: Path) -> Path:
    (tmp / "d").mkdir()
    (tmp / "d" / "notes.txt").write_text("no images here")
    return tmp / "d"


def _id2label_raw(raw: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        root = write_flat(tmp / "d", id2label=None)
        (root / "id2label.json").write_bytes(raw)
        return root

    return make


def _id2label_is_folder(tmp: Path) -> Path:
    root = write_flat(tmp / "d", id2label=None)
    (root / "id2label.json").mkdir()
    return root


# name -> (builder of a bad dataset folder under tmp, regex the message must match)
BAD_DATASETS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing_folder": (lambda tmp: tmp / "nowhere", r".*nowhere: dataset folder not found"),
    "root_is_a_file": (
        lambda tmp: _write(tmp / "f.png", "x"),
        r".*f.png: expected a dataset folder, got a file",
    ),
    "empty_folder": (_empty, r".*d: no images found"),
    "only_id2label": (lambda tmp: _write_only_id2label(tmp), r".*d: no image files beside id2label.json"),
    "flat_name_no_underscore": (
        _flat_plus("cat.png"),
        r".*cat.png: file name does not match \{class_id\}_\{n\}",
    ),
    "flat_name_not_int": (_flat_plus("0_a.png"), r".*0_a.png: file name does not match"),
    "flat_name_negative": (_flat_plus("-1_2.png"), r".*-1_2.png: file name does not match"),
    "flat_label_without_name": (
        _flat_plus("7_1.png"), r".*7_1.png: class id 7 has no class name \(.*id2label.json names 3 classes\)"
    ),
    "flat_directory_as_image": (_flat_plus("1_9.png", directory=True), r".*1_9.png: is a directory"),
    "id2label_malformed": (_id2label_raw(b'{"0": "a",'), r".*id2label.json: malformed JSON"),
    "id2label_not_utf8": (_id2label_raw(b'{"0": "caf\xe9"}'), r".*id2label.json: not valid UTF-8"),
    "id2label_is_a_list": (_flat_with(CLASS_NAMES), r".*id2label.json: expected an id2label object"),
    "id2label_is_a_folder": (_id2label_is_folder, r".*id2label.json: is a directory"),
    "id2label_key_not_int": (
        _flat_with({"0": "a", "one": "b"}),
        r".*id2label.json: key 'one' is not a class id",
    ),
    "id2label_key_negative": (
        _flat_with({"0": "a", "-1": "b"}),
        r".*id2label.json: key '-1' is not a class id",
    ),
    "id2label_same_id_twice": (
        _flat_with({"0": "a", "1": "b", "01": "c"}),
        r".*id2label.json: keys '1' and '01' are the same class id"
    ),
    "id2label_gap": (
        _flat_with({"0": "a", "2": "c"}),
        r".*id2label.json: class ids must run 0..1 .*1 is missing",
    ),
    "id2label_value_not_string": (
        _flat_with({"0": "a", "1": 5, "2": "c"}),
        r".*id2label.json: '1': class name must be a string, got int"
    ),
    "id2label_value_empty": (
        _flat_with({"0": "a", "1": "  ", "2": "c"}),
        r".*id2label.json: '1': empty class name",
    ),
    "id2label_duplicate_names": (
        _flat_with({"0": "a", "1": "b", "2": "a"}),
        r".*id2label.json: '2': duplicate class name 'a' \(also '0'\)"
    ),
    "id2label_empty_object": (_flat_with({}), r".*id2label.json: no class names"),
    "nested_folder_in_class": (
        _folders_plus("red circle/more/x.png"), r".*more: a folder inside class folder 'red circle'"
    ),
    "image_named_folder_in_class": (
        _folders_plus("red circle/x.png", directory=True),
        r".*x.png: a folder inside class folder 'red circle'"
    ),
    "class_folders_without_images": (
        lambda tmp: _make_dirs(tmp / "d", ["a", "b"]), r".*d: class folders hold no images"
    ),
}


def _write_only_id2label(tmp: Path) -> Path:
    (tmp / "d").mkdir()
    _write(tmp / "d" / "id2label.json", json.dumps(ID2LABEL))
    return tmp / "d"


def _make_dirs(root: Path, names: list[str]) -> Path:
    for name in names:
        (root / name).mkdir(parents=True)
    return root


@pytest.mark.parametrize("case", sorted(BAD_DATASETS))
def test_each_bad_dataset_is_one_error_naming_the_entry(tmp_path: Path, case: str) -> None:
    build, expected = BAD_DATASETS[case]
    root = build(tmp_path)
    with pytest.raises(VlkitError) as raised:
        load_classification_dataset(root)
    message = str(raised.value)
    assert message.startswith(str(tmp_path)), message  # names the file or folder at fault
    assert "\n" not in message
    assert re.fullmatch(expected + ".*", message), message


@pytest.mark.parametrize(
    ("names_text", "expected"),
    [
        ("a\n\nc\n", r".*names.txt: line 2: empty class name"),
        ("a\nb\na\n", r".*names.txt: line 3: duplicate class name 'a' \(also line 1\)"),
        ("\n\n", r".*names.txt: no class names"),
    ],
)
def test_bad_class_names_text_file_names_the_line(tmp_path: Path, names_text: str, expected: str) -> None:
    path = _write(tmp_path / "names.txt", names_text)
    with pytest.raises(VlkitError, match=expected):
        read_class_names(path)


def test_class_names_file_errors(tmp_path: Path) -> None:
    with pytest.raises(VlkitError, match="missing.txt: class names file not found"):
        read_class_names(tmp_path / "missing.txt")
    with pytest.raises(VlkitError, match=r"class_names: class_names\[1\]: empty class name"):
        read_class_names(["a", ""])
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(VlkitError, match="bad.txt: not valid UTF-8"):
        read_class_names(tmp_path / "bad.txt")
    with pytest.raises(VlkitError, match="n.json: expected a list of class names or an id2label object"):
        read_class_names(_write(tmp_path / "n.json", '"just a string"'))


def test_override_count_must_match_class_folders(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "d")
    with pytest.raises(VlkitError, match="class_names: 2 names given but .* has 3 class folders"):
        load_classification_dataset(root, class_names=["a", "b"])


def test_override_too_short_for_flat_labels_names_the_file(tmp_path: Path) -> None:
    root = write_flat(tmp_path / "d")
    expected = r"2_1.png: class id 2 has no class name \(class_names names 2 classes\)"
    with pytest.raises(VlkitError, match=expected):
        load_classification_dataset(root, class_names=["a", "b"])


def test_shapes_world_flat_and_imagefolder_copies_agree_by_class_name(shapes_world: Path) -> None:
    flat = load_classification_dataset(shapes_world / "classification" / "val")
    folders = load_classification_dataset(shapes_world / "imagefolder" / "val")
    assert (flat.layout, folders.layout) == (FLAT_LAYOUT, IMAGEFOLDER_LAYOUT)
    assert sorted(flat.class_names) == folders.class_names  # same classes; ImageFolder numbers them sorted
    by_bytes = {p.read_bytes(): flat.class_names[y] for p, y in zip(flat.paths, flat.labels, strict=True)}
    assert len(by_bytes) == len(flat) == len(folders)
    for path, label in zip(folders.paths, folders.labels, strict=True):
        assert by_bytes[path.read_bytes()] == folders.class_names[label]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from vlkit.cli.main import main

    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_inspect_summarizes_a_classification_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_flat(tmp_path / "train")
    code, out, err = run_cli(["data", "inspect", str(root)], capsys)
    assert code == 0, err
    assert "flat" in out and "6 of 6" in out
    for name, count in zip(CLASS_NAMES, [2, 1, 3], strict=True):
        assert any(name in line and line.rstrip(" │").endswith(str(count)) for line in out.splitlines())


def test_cli_inspect_skips_or_stops_at_a_bad_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_imagefolder(tmp_path / "train")
    bad = root / "red circle" / "img020.png"
    bad.write_bytes(bad.read_bytes()[:20])
    code, out, err = run_cli(["data", "inspect", str(root)], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "img020.png" in err and "truncated" in err
    code, out, err = run_cli(["data", "inspect", str(root), "--on-bad-image", "skip"], capsys)
    assert code == 0, err
    assert "5 of 6" in out and "skipped images (1)" in out


def test_cli_inspect_refuses_images_option_for_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_flat(tmp_path / "train")
    code, _, err = run_cli(["data", "inspect", str(root), "--images", str(root)], capsys)
    assert code == 2 and "--images: only for a caption annotation file" in err
    code, _, err = run_cli(["data", "inspect", str(root), "--on-bad-image", "ignore"], capsys)
    assert code == 2 and "unknown policy 'ignore'" in err
