"""A shapes world's split as scenes, and task files: written and read back unchanged, and a bad entry (a
question about an image not in the dataset, an answer outside the vocabulary) one line naming it."""

from __future__ import annotations

import json

import pytest

from vlkit.data.scene_tasks import load_world_split, object_counts, read_task_file, write_task_file
from vlkit.errors import VlkitError
from vlkit.shapes.questions import scene_tasks


def test_a_world_split_reads_as_scenes_and_its_tasks_round_trip(shapes_world, tmp_path):
    val = load_world_split(shapes_world, "val")
    assert len(val.scenes) == len(val.dataset) == 20 and len(val.heldout) == 8
    assert [scene.image_id for scene in val.scenes] == [image.id for image in val.dataset.images]
    tasks = scene_tasks(val.scenes, seed=0, heldout=val.heldout)
    path = write_task_file(tmp_path / "tasks.json", tasks)
    assert read_task_file(path, object_counts(val.scenes)) == tasks


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"vqa": [{"image_id": 99, "question": "how many stars are there?", "answer": "1", "type": "count"}]},
         r"vqa\[0\]: image_id 99 is not an image of the dataset"),
        ({"vqa": [{"image_id": 0, "question": "what?", "answer": "maybe", "type": "count"}]},
         r"vqa\[0\]: answer 'maybe' is not in the answer vocabulary"),
        ({"referring": [{"image_id": 0, "text": "the star", "target": 7}]}, r"referring\[0\]: target \[7\]"),
    ],
    ids=["missing-image", "unknown-answer", "no-such-object"],
)  # fmt: skip
def test_a_bad_task_entry_is_one_line_naming_it(tmp_path, entry, message):
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps(entry))
    with pytest.raises(VlkitError, match=message) as caught:
        read_task_file(path, {0: 2, 1: 1})
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_a_malformed_object_of_a_world_is_named(shapes_world, tmp_path):
    data = json.loads((shapes_world / "val.json").read_text())
    data["images"][2]["objects"][0]["bbox"] = [60, 60, 10, 10]
    world = tmp_path / "world"
    world.mkdir()
    (world / "meta.json").write_text((shapes_world / "meta.json").read_text())
    (world / "images").symlink_to(shapes_world / "images")
    (world / "val.json").write_text(json.dumps(data))
    with pytest.raises(
        VlkitError, match=r"val.json: images\[2\]: objects\[0\]: bbox \[60, 60, 10, 10\] lies"
    ):
        load_world_split(world, "val")
