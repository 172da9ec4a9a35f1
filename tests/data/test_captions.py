from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vlkit.data.captions import MAX_CAPTION_WORDS, load_caption_dataset
from vlkit.errors import VlkitError


def valid_annotations() -> dict[str, Any]:
    return {
        "images": [
            {"id": 1, "file_name": "000001.png", "objects": [{"shape": "circle"}], "mask_file": "m1.png"},
            {"id": 2, "file_name": "000002.png"},
            {"id": 3, "file_name": "000003.png"},
        ],
        "annotations": [
            {"id": 10, "image_id": 2, "caption": "A blue square."},
            {"id": 11, "image_id": 1, "caption": "A red circle on the left."},
            {"id": 12, "image_id": 1, "caption": "One red circle."},
            {"id": 13, "image_id": 3, "caption": "A green triangle."},
        ],
    }


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    root.mkdir()
    for n in (1, 2, 3):
        Image.new("RGB", (4, 4), (n, n, n)).save(root / f"00000{n}.png")
    return root


def write(tmp_path: Path, data: Any, name: str = "train.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_loads_images_in_file_order_with_captions_in_annotation_order(
    tmp_path: Path, image_root: Path
) -> None:
    dataset = load_caption_dataset(write(tmp_path, valid_annotations()), image_root)
    assert len(dataset) == 3
    assert [image.id for image in dataset.images] == [1, 2, 3]
    assert dataset.images[0].captions == ["A red circle on the left.", "One red circle."]
    assert dataset.images[0].path == image_root / "000001.png"
    assert dataset.images[0].extra == {"objects": [{"shape": "circle"}], "mask_file": "m1.png"}
    assert dataset.images[1].extra == {}
    assert dataset.all_captions() == [
        "A red circle on the left.",
        "One red circle.",
        "A blue square.",
        "A green triangle.",
    ]
    assert dataset.stem_to_image()["000003"].captions == ["A green triangle."]
    assert dataset.image_paths() == [image_root / f"00000{n}.png" for n in (1, 2, 3)]


def test_string_ids_and_annotations_without_id_are_accepted(tmp_path: Path, image_root: Path) -> None:
    data = {
        "images": [{"id": "a", "file_name": "000001.png"}],
        "annotations": [{"image_id": "a", "caption": "x"}, {"image_id": "a", "caption": "y"}],
    }
    dataset = load_caption_dataset(write(tmp_path, data), image_root)
    assert dataset.images[0].id == "a" and dataset.images[0].captions == ["x", "y"]


def test_image_without_caption_needs_require_captions_false(tmp_path: Path, image_root: Path) -> None:
    data = valid_annotations()
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 2]
    path = write(tmp_path, data)
    expected = r"train.json: images\[1\]: image '000002.png' \(id 2\) has no caption"
    with pytest.raises(VlkitError, match=expected):
        load_caption_dataset(path, image_root)
    dataset = load_caption_dataset(path, image_root, require_captions=False)
    assert dataset.images[1].captions == []


def test_prediction_only_set_may_omit_annotations(tmp_path: Path, image_root: Path) -> None:
    data = {"images": valid_annotations()["images"]}
    path = write(tmp_path, data)
    with pytest.raises(VlkitError, match="train.json: missing top-level key 'annotations'"):
        load_caption_dataset(path, image_root)
    assert len(load_caption_dataset(path, image_root, require_captions=False)) == 3


def test_missing_files_are_only_checked_when_asked(tmp_path: Path, image_root: Path) -> None:
    (image_root / "000002.png").unlink()
    path = write(tmp_path, valid_annotations())
    with pytest.raises(VlkitError, match=r"train.json: images\[1\]: image file .*000002.png not found"):
        load_caption_dataset(path, image_root)
    assert len(load_caption_dataset(path, image_root, check_files=False)) == 3


def test_missing_image_root_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(VlkitError, match="nowhere: image root folder not found"):
        load_caption_dataset(write(tmp_path, valid_annotations()), tmp_path / "nowhere")


def test_stem_collision_is_an_error_naming_both_files(tmp_path: Path, image_root: Path) -> None:
    (image_root / "sub").mkdir()
    Image.new("RGB", (2, 2)).save(image_root / "sub" / "000001.jpg")
    data = valid_annotations()
    data["images"].append({"id": 4, "file_name": "sub/000001.jpg"})
    dataset = load_caption_dataset(write(tmp_path, data), image_root, require_captions=False)
    with pytest.raises(VlkitError, match="'000001.png' and 'sub/000001.jpg' share the stem '000001'"):
        dataset.stem_to_image()


def _set(path: str, value: Any) -> Callable[[dict[str, Any], Path], None]:
    """A mutation setting data[a][i][k] (path "a.i.k") to value."""

    def mutate(data: dict[str, Any], root: Path) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any], Path], None]:
    def mutate(data: dict[str, Any], root: Path) -> None:
        section, index, key = path.split(".")
        del data[section][int(index)][key]

    return mutate


def _outside_file(data: dict[str, Any], root: Path) -> None:
    Image.new("RGB", (2, 2)).save(root.parent / "outside.png")  # exists, so only the escape check can fail
    data["images"][1]["file_name"] = "../outside.png"


def _absolute_file(data: dict[str, Any], root: Path) -> None:
    data["images"][1]["file_name"] = str(root / "000002.png")


def _symlink_out(data: dict[str, Any], root: Path) -> None:
    Image.new("RGB", (2, 2)).save(root.parent / "secret.png")
    (root / "link.png").symlink_to(root.parent / "secret.png")
    data["images"][1]["file_name"] = "link.png"


def _directory_file(data: dict[str, Any], root: Path) -> None:
    (root / "folder.png").mkdir()
    data["images"][1]["file_name"] = "folder.png"


def _unchanged(data: dict[str, Any], root: Path) -> None:
    pass


def _top(key: str, value: Any) -> Callable[[dict[str, Any], Path], None]:
    def mutate(data: dict[str, Any], root: Path) -> None:
        data[key] = value

    return mutate


def _drop_top(key: str) -> Callable[[dict[str, Any], Path], None]:
    def mutate(data: dict[str, Any], root: Path) -> None:
        del data[key]

    return mutate


# name -> (mutation of the valid file, regex the message must match after "train.json: ")
SCHEMA_ERRORS: dict[str, tuple[Callable[[dict[str, Any], Path], None], str]] = {
    "missing_images_key": (_drop_top("images"), "missing top-level key 'images'"),
    "images_not_a_list": (_top("images", {"1": "a.png"}), "'images' must be a list, got an object"),
    "images_empty": (_top("images", []), "'images' is empty"),
    "annotations_not_a_list": (_top("annotations", "x"), "'annotations' must be a list, got a string"),
    "image_entry_not_object": (
        _set("images.1", "000002.png"),
        r"images\[1\]: expected an object, got a string",
    ),
    "image_missing_file_name": (_delete("images.0.file_name"), r"images\[0\]: missing field 'file_name'"),
    "image_missing_id": (_delete("images.2.id"), r"images\[2\]: missing field 'id'"),
    "image_id_float": (
        _set("images.2.id", 3.5),
        r"images\[2\]: field 'id' must be an integer or a string, got a number",
    ),
    "image_id_bool": (_set("images.2.id", True), r"images\[2\]: field 'id' must be .*, got a boolean"),
    "file_name_not_string": (
        _set("images.1.file_name", 2),
        r"images\[1\]: field 'file_name' must be a string, got an integer",
    ),
    "file_name_empty": (_set("images.1.file_name", " "), r"images\[1\]: file_name is empty"),
    "duplicate_image_id": (_set("images.2.id", 1), r"images\[2\]: duplicate image id 1 \(also images\[0\]\)"),
    "duplicate_file_name": (
        _set("images.2.file_name", "./000001.png"),
        r"images\[2\]: duplicate file_name './000001.png' \(also images\[0\]\)",
    ),
    "file_name_escapes_root": (
        _outside_file,
        r"images\[1\]: file_name '../outside.png' escapes the image root",
    ),
    "file_name_absolute": (_absolute_file, r"images\[1\]: file_name '.*000002.png' is absolute"),
    "symlink_escapes_root": (_symlink_out, r"images\[1\]: file_name 'link.png' escapes the image root"),
    "image_file_is_directory": (_directory_file, r"images\[1\]: .*folder.png is a directory"),
    "annotation_not_object": (
        _set("annotations.2", ["x"]),
        r"annotations\[2\]: expected an object, got a list",
    ),
    "annotation_missing_image_id": (
        _delete("annotations.1.image_id"),
        r"annotations\[1\]: missing field 'image_id'",
    ),
    "annotation_missing_caption": (
        _delete("annotations.3.caption"),
        r"annotations\[3\]: missing field 'caption'",
    ),
    "annotation_dangling_image_id": (
        _set("annotations.3.image_id", 99),
        r"annotations\[3\]: image_id 99 has no image",
    ),
    "annotation_image_id_type_mismatch": (
        _set("annotations.3.image_id", "3"),
        r"annotations\[3\]: image_id '3' has no image",
    ),
    "duplicate_annotation_id": (
        _set("annotations.3.id", 10),
        r"annotations\[3\]: duplicate annotation id 10 \(also annotations\[0\]\)",
    ),
    "annotation_id_null": (
        _set("annotations.0.id", None),
        r"annotations\[0\]: field 'id' must be an integer or a string, got null",
    ),
    "caption_empty": (_set("annotations.2.caption", ""), r"annotations\[2\]: caption is empty"),
    "caption_whitespace": (_set("annotations.2.caption", " \t\n "), r"annotations\[2\]: caption is empty"),
    "caption_number": (
        _set("annotations.2.caption", 7),
        r"annotations\[2\]: field 'caption' must be a string, got an integer",
    ),
    "caption_null": (
        _set("annotations.2.caption", None),
        r"annotations\[2\]: field 'caption' must be a string, got null",
    ),
    "caption_list": (
        _set("annotations.2.caption", ["a", "b"]),
        r"annotations\[2\]: field 'caption' must be a string, got a list",
    ),
    "caption_too_long": (
        _set("annotations.1.caption", "word " * (MAX_CAPTION_WORDS + 1)),
        r"annotations\[1\]: caption has 1,001 words, over the limit of 1,000",
    ),
    "control_valid_file_loads": (_unchanged, ""),
}


@pytest.mark.parametrize("case", sorted(SCHEMA_ERRORS))
def test_each_schema_error_names_the_file_and_entry(tmp_path: Path, image_root: Path, case: str) -> None:
    mutate, expected = SCHEMA_ERRORS[case]
    data = copy.deepcopy(valid_annotations())
    mutate(data, image_root)
    path = write(tmp_path, data)
    if case == "control_valid_file_loads":
        assert len(load_caption_dataset(path, image_root)) == 3
        return
    with pytest.raises(VlkitError) as raised:
        load_caption_dataset(path, image_root)
    message = str(raised.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    assert re.match(expected, message[len(f"{path}: ") :]), message


def test_a_caption_at_the_word_limit_is_fine(tmp_path: Path, image_root: Path) -> None:
    data = valid_annotations()
    data["annotations"][1]["caption"] = " ".join(["word"] * MAX_CAPTION_WORDS)
    assert len(load_caption_dataset(write(tmp_path, data), image_root)) == 3


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"images": [', "malformed JSON"),
        (b'{"images": [{"id": 1, "file_name": "caf\xe9.png"}]}', "not valid UTF-8"),
        (b"", "malformed JSON"),
        (b"[1, 2]", "expected a JSON object with 'images' and 'annotations', got a list"),
        (b"null", "expected a JSON object with 'images' and 'annotations', got null"),
    ],
)
def test_unreadable_or_wrong_top_level_json_names_the_file(
    tmp_path: Path, image_root: Path, raw: bytes, expected: str
) -> None:
    path = tmp_path / "val.json"
    path.write_bytes(raw)
    with pytest.raises(VlkitError, match=expected) as raised:
        load_caption_dataset(path, image_root)
    assert str(raised.value).startswith(f"{path}: ")


def test_annotation_file_missing_or_a_directory(tmp_path: Path, image_root: Path) -> None:
    with pytest.raises(VlkitError, match="nope.json: file not found"):
        load_caption_dataset(tmp_path / "nope.json", image_root)
    with pytest.raises(VlkitError, match="images: is a directory"):
        load_caption_dataset(image_root, image_root)


def test_shapes_world_captions_load_with_their_extra_fields(shapes_world: Path) -> None:
    dataset = load_caption_dataset(shapes_world / "train.json", shapes_world / "images")
    assert len(dataset) > 0
    assert all(image.captions and image.path.is_file() for image in dataset.images)
    assert {"objects", "mask_file"} <= set(dataset.images[0].extra)
    assert len(dataset.stem_to_image()) == len(dataset)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from vlkit.cli.main import main

    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_inspect_summarizes_captions_and_reports_skips(
    tmp_path: Path, image_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, valid_annotations())
    code, out, err = run_cli(["data", "inspect", str(path), "--images", str(image_root)], capsys)
    assert code == 0, err
    assert "3 of 3" in out and "min 1, mean 1.3, max 2" in out  # captions per image: 2, 1, 1
    (image_root / "000002.png").unlink()
    code, out, err = run_cli(["data", "inspect", str(path), "--images", str(image_root)], capsys)
    assert code == 2 and r"images[1]: image file" in err and "not found" in err
    code, out, err = run_cli(
        ["data", "inspect", str(path), "--images", str(image_root), "--on-bad-image", "skip"], capsys
    )
    assert code == 0, err
    assert "2 of 3" in out and "skipped images (1)" in out


def test_cli_inspect_of_annotations_needs_images_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, valid_annotations())
    code, _, err = run_cli(["data", "inspect", str(path)], capsys)
    assert code == 2 and "needs --images" in err and "train.json" in err
    code, _, err = run_cli(["data", "inspect", str(tmp_path / "absent.json")], capsys)
    assert code == 2 and "absent.json: not found" in err


# Random JSON for the loader: arbitrary values, and objects shaped like the COCO layout with random fields, so
# that the search reaches past the first type check into the per-entry checks.
_SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=12)
_ANY_JSON = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_FILE_NAMES = st.sampled_from(
    ["000001.png", "000002.png", "missing.png", "../escape.png", "", ".", "a/b.png"]
)
_IMAGE = st.one_of(
    st.fixed_dictionaries({"id": st.integers(0, 3), "file_name": _FILE_NAMES}),  # well formed
    st.fixed_dictionaries({}, optional={"id": _ANY_JSON, "file_name": _FILE_NAMES | _ANY_JSON}),
    _ANY_JSON,
)
_ANNOTATION = st.one_of(
    st.fixed_dictionaries(
        {"id": st.integers(0, 5), "image_id": st.integers(0, 3), "caption": st.text(max_size=30)}
    ),
    st.fixed_dictionaries(
        {}, optional={"id": _ANY_JSON, "image_id": st.integers(0, 3) | _ANY_JSON, "caption": _ANY_JSON}
    ),
    _ANY_JSON,
)
_COCO_LIKE = st.one_of(
    st.fixed_dictionaries(
        {"images": st.lists(_IMAGE, min_size=1, max_size=4), "annotations": st.lists(_ANNOTATION, max_size=6)}
    ),
    st.fixed_dictionaries({}, optional={"images": st.lists(_IMAGE) | _ANY_JSON, "annotations": _ANY_JSON}),
    st.fixed_dictionaries(  # valid images; captions random in content and in which images they cover
        {
            "images": st.sampled_from(
                [
                    [{"id": 1, "file_name": "000001.png"}],
                    [{"id": 1, "file_name": "000001.png"}, {"id": 2, "file_name": "a/b.png"}],
                ]
            ),
            "annotations": st.lists(
                st.tuples(st.sampled_from([1, 1, 2, 3]), st.text(min_size=1, max_size=30)),
                min_size=1,
                max_size=4,
            ).map(
                lambda pairs: [
                    {"id": index, "image_id": image_id, "caption": caption}
                    for index, (image_id, caption) in enumerate(pairs)
                ]
            ),
        }
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(_COCO_LIKE, _ANY_JSON))
def test_random_json_gives_a_clear_error_or_a_valid_dataset(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("random-json")
    for name in ("000001.png", "000002.png"):
        (root / name).write_bytes(b"")  # file existence is checked, contents are not
    (root / "a").mkdir()
    (root / "a" / "b.png").write_bytes(b"")
    path = root / "ann.json"
    path.write_text(json.dumps(data))
    try:
        dataset = load_caption_dataset(path, root)
    except VlkitError as error:
        message = str(error)
        assert message.startswith(str(root)) and "\n" not in message, message
        return
    # Accepted: every image is a file inside the root with at least one non-empty string caption.
    assert dataset.images
    for image in dataset.images:
        assert image.path.is_file() and image.path.resolve().is_relative_to(root.resolve())
        assert image.captions and all(isinstance(c, str) and c.strip() for c in image.captions)
