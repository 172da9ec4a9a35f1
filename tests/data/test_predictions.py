"""Reading predictions files in the DLCV and COCO results layouts, and every way they can be wrong."""

from __future__ import annotations

import json
import logging

import pytest

from vlkit.data.captions import load_caption_dataset
from vlkit.data.predictions import load_predictions
from vlkit.errors import VlkitError


@pytest.fixture
def dataset(tmp_path):
    """Seven images (ids 10..16, files img0.jpg .. img6.jpg, one in a sub-folder), one caption each."""
    images = [{"id": 10 + i, "file_name": f"img{i}.jpg" if i else "sub/img0.png"} for i in range(7)]
    annotations = [{"image_id": 10 + i, "caption": f"caption {i}"} for i in range(7)]
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return load_caption_dataset(path, tmp_path, check_files=False)


def _write(tmp_path, data, raw: str | None = None):
    path = tmp_path / "pred.json"
    path.write_text(raw if raw is not None else json.dumps(data))
    return path


def test_dlcv_layout_is_keyed_by_file_stem_and_returned_by_image_id_in_dataset_order(tmp_path, dataset):
    stems = ["img6", "img0", "img5", "img4", "img3", "img2", "img1"]
    path = _write(tmp_path, {stem: f"pred {stem}" for stem in stems})
    predictions = load_predictions(path, dataset)
    assert list(predictions) == [10, 11, 12, 13, 14, 15, 16]
    assert predictions[10] == "pred img0" and predictions[16] == "pred img6"


def test_dlcv_keys_may_be_file_names_with_their_extension(tmp_path, dataset):
    # the annotation's file name, its last part, or the stem, one style or several in one file
    keys = ["sub/img0.png", "img1.jpg", "img2.jpg", "img3", "img4.jpg", "img5", "img6.jpg"]
    predictions = load_predictions(_write(tmp_path, {key: f"pred {key}" for key in keys}), dataset)
    assert predictions == {10 + i: f"pred {key}" for i, key in enumerate(keys)}
    assert load_predictions(_write(tmp_path, {"img0.png": "x"}), dataset, allow_partial=True) == {10: "x"}


def test_a_file_name_key_is_refused_with_a_wrong_extension_showing_the_stems(tmp_path, dataset):
    with pytest.raises(VlkitError) as error:
        load_predictions(_write(tmp_path, {"img1.png": "x"}), dataset, allow_partial=True)
    message = str(error.value)
    assert "(by file stem or file name; e.g. 'img1.png')" in message and "\n" not in message
    assert "file stems such as 'img0', 'img1', 'img2'" in message


def test_two_keys_for_one_image_are_refused(tmp_path, dataset):
    with pytest.raises(VlkitError, match=r"keys 'img1' and 'img1.jpg' both name 'img1.jpg'; keep one$"):
        load_predictions(_write(tmp_path, {"img1": "a", "img1.jpg": "b"}), dataset, allow_partial=True)


@pytest.mark.parametrize(
    ("files", "key", "named"),
    [
        (["x/a.png", "y/a.png"], "a", "'x/a.png' and 'y/a.png'"),
        (["x/a.png", "y/a.png"], "a.png", "'x/a.png' and 'y/a.png'"),
        (["a.png", "a.png.jpg"], "a.png", "'a.png' and 'a.png.jpg'"),  # a name, and the other's stem
    ],
)
def test_a_key_that_could_name_two_images_is_refused(tmp_path, files, key, named):
    images = [{"id": i, "file_name": name} for i, name in enumerate(files)]
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": images, "annotations": [{"image_id": 0, "caption": "c"}]}))
    dataset = load_caption_dataset(path, tmp_path, check_files=False, require_captions=False)
    with pytest.raises(VlkitError) as error:
        load_predictions(_write(tmp_path, {key: "x"}), dataset, allow_partial=True)
    assert f"key {key!r} could name {named} of {path}; key them by file name" in str(error.value)
    assert load_predictions(_write(tmp_path, {files[1]: "x"}), dataset, allow_partial=True) == {1: "x"}


def test_coco_results_layout_is_keyed_by_image_id_and_ignores_extra_fields(tmp_path, dataset):
    entries = [{"image_id": 16 - i, "caption": f"pred {16 - i}", "score": 0.5} for i in range(7)]
    predictions = load_predictions(_write(tmp_path, entries), dataset)
    assert list(predictions) == list(range(10, 17))
    assert predictions[12] == "pred 12"


def test_missing_images_are_an_error_listing_five_and_suggesting_allow_partial(tmp_path, dataset):
    path = _write(tmp_path, {"img0": "only one"})
    with pytest.raises(VlkitError) as error:
        load_predictions(path, dataset)
    message = str(error.value)
    assert str(path) in message and "no prediction for 6 of 7 images" in message
    assert "'img1', 'img2', 'img3', 'img4', 'img5', ..." in message and "'img6'" not in message
    assert "--allow-partial" in message and "\n" not in message


def test_allow_partial_keeps_the_predicted_images_and_logs_the_count(tmp_path, dataset, caplog):
    path = _write(tmp_path, [{"image_id": 14, "caption": "x"}, {"image_id": 11, "caption": "y"}])
    with caplog.at_level(logging.WARNING, logger="vlkit.data.predictions"):
        predictions = load_predictions(path, dataset, allow_partial=True)
    assert predictions == {11: "y", 14: "x"} and list(predictions) == [11, 14]
    assert "5 of 7 images have no prediction" in caplog.text


@pytest.mark.parametrize("allow_partial", [False, True])
def test_unknown_images_are_always_an_error(tmp_path, dataset, allow_partial):
    data = {f"img{i}": "x" for i in range(7)} | {f"other{i}": "x" for i in range(6)}
    expected = (
        r"6 prediction\(s\) for images that .* \(by file stem or file name; e.g. 'other0', .*'other4', "
        r"\.\.\.\); its images' keys are file stems such as 'img0', 'img1', 'img2' \(or file names such as "
        r"'sub/img0.png'\)"
    )
    with pytest.raises(VlkitError, match=expected):
        load_predictions(_write(tmp_path, data), dataset, allow_partial=allow_partial)
    with pytest.raises(VlkitError, match=r"\(by image_id; e.g. 99\)"):
        load_predictions(_write(tmp_path, [{"image_id": 99, "caption": "x"}]), dataset, allow_partial=True)


@pytest.mark.parametrize(
    ("data", "raw", "message"),
    [
        (None, '{"img0": "a",', "malformed JSON at line 1"),
        ("a caption", None, 'expected {"file stem": "caption", ...} (DLCV) or [{"image_id"'),
        ({"img0": 3}, None, "prediction 'img0': caption must be a string, got an integer"),
        ({"img0": "   "}, None, "prediction 'img0': caption is empty"),
        ([{"image_id": 10}], None, "[0]: missing field 'caption'"),
        ([{"caption": "x"}], None, "[0]: missing field 'image_id'"),
        (["x"], None, "[0]: expected an object with 'image_id' and 'caption', got a string"),
        (
            [{"image_id": True, "caption": "x"}],
            None,
            "image_id must be an integer or a string, got a boolean",
        ),
        (
            [{"image_id": 10, "caption": "x"}, {"image_id": 10, "caption": "y"}],
            None,
            "[1]: second prediction",
        ),
        ([{"image_id": 10, "caption": ""}], None, "[0] (image_id 10): caption is empty"),
        ({"images": [], "annotations": []}, None, "looks like an annotation file"),
        ([], None, "no predictions"),
    ],
)
def test_malformed_files_are_one_line_naming_the_file(tmp_path, dataset, data, raw, message):
    path = _write(tmp_path, data, raw)
    with pytest.raises(VlkitError) as error:
        load_predictions(path, dataset, allow_partial=True)
    assert str(error.value).startswith(str(path)) and message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("layout", ["dlcv", "coco"])
def test_empty_captions_are_refused_unless_allowed(tmp_path, dataset, layout):
    captions = {i: ("" if i == 12 else f"pred {i}") for i in range(10, 17)}
    stems = {10: "img0", **{10 + i: f"img{i}" for i in range(1, 7)}}
    data = (
        {stems[i]: c for i, c in captions.items()}
        if layout == "dlcv"
        else [{"image_id": i, "caption": c} for i, c in captions.items()]
    )
    path = _write(tmp_path, data)
    with pytest.raises(VlkitError, match="caption is empty .*--allow-empty"):
        load_predictions(path, dataset)
    assert load_predictions(path, dataset, allow_empty=True) == captions
