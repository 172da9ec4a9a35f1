"""A detector's boxes in the COCO detection layout: read as corners in file order, and each way a file can be
wrong is one error line naming the file and the entry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vlkit.data.detections import read_detection_boxes
from vlkit.errors import VlkitError

SIZES = {1: (100, 50), "b": (40, 40)}


def write(tmp_path, data) -> str:
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_boxes_read_as_corners_in_file_order_with_sizes_from_the_file(tmp_path):
    data = {
        "images": [{"id": 1, "width": 100, "height": 50}, {"id": "b", "width": 40, "height": 40}],
        "annotations": [
            {"image_id": 1, "bbox": [10, 5, 20, 10], "score": 0.9, "category_id": 3},
            {"image_id": "b", "bbox": [0, 0, 40, 40]},
            {"image_id": 1, "bbox": [80.5, 40, 20, 10.4]},  # 0.4 px past the edge: a detector's rounding
        ],
    }
    boxes = read_detection_boxes(write(tmp_path, data), [1, "b"])
    assert np.allclose(boxes.boxes[1], [[10, 5, 30, 15], [80.5, 40, 100, 50]])
    assert np.allclose(boxes.boxes["b"], [[0, 0, 40, 40]]) and boxes.sizes == SIZES


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([{"image_id": 1, "bbox": [0, 0, 1, 1]}], "not a boxes file"),
        ({"images": []}, "not a boxes file"),
        ({"annotations": [{"image_id": 1, "box": [0, 0, 1, 1]}]}, r"annotations\[0\]: missing 'bbox'"),
        ({"annotations": [{"image_id": 1, "bbox": [0, 0, 1]}]}, r"annotations\[0\]: bbox must be 4"),
        ({"annotations": [{"image_id": 1, "bbox": [90, 0, 20, 10]}]}, r"\[0\]: .*outside its 100x50"),
        ({"annotations": [{"image_id": 1, "bbox": [0, 0, 0, 10]}]}, r"annotations\[0\]: .*has no area"),
        ({"annotations": [{"image_id": 1, "bbox": [1, 1, 2, 2]}, {"image_id": 9, "bbox": [1, 1, 2, 2]}]},
         r"annotations\[1\]: image_id 9 is not an image of the dataset"),
        ({"annotations": [{"image_id": 1, "bbox": [1, 1, 2, 2]}]}, "image 'b' has no box"),
        ({"images": [{"id": 1, "width": 0, "height": 5}], "annotations": []}, r"images\[0\]: 'width' and"),
    ],
    ids=["list", "no-annotations", "no-bbox", "short-bbox", "outside", "empty-box", "unknown-image",
         "image-without-boxes", "bad-size"],
)  # fmt: skip
def test_bad_boxes_files_are_one_line_naming_the_file_and_entry(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(VlkitError, match=message) as caught:
        read_detection_boxes(path, [1, "b"], SIZES)
    assert str(caught.value).startswith(path) and "\n" not in str(caught.value)
