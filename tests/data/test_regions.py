"""ViLBERT's regions without a detector: every object's true box among a fixed number of regions, seeded
jittered copies and distractors, class targets by overlap (against hand computations), the grid variant,
and the padding of a region set."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vlkit.data.regions import (
    DISTRACTOR_BACKGROUND,
    JITTER_IOU,
    KINDS,
    RegionRecipe,
    grid_regions,
    object_class,
    overlaps,
    region_classes,
    region_labels,
    scene_regions,
    stack_regions,
    xywh_to_corners,
)
from vlkit.data.scene_tasks import load_world_split
from vlkit.errors import ConfigError
from vlkit.shapes.grammar import SceneObject

RECIPE = RegionRecipe()


@pytest.fixture(scope="module")
def train(shapes_world):
    return load_world_split(shapes_world, "train")


def regions_of(scene, recipe=RECIPE):
    return scene_regions(scene.objects, scene.image_size, scene.image_size, scene.image_id, recipe)


def test_every_object_has_its_true_box_and_every_image_the_same_number_of_regions(train):
    for scene in train.scenes:
        regions = regions_of(scene)
        assert len(regions.boxes) == RECIPE.regions  # counting boxes says nothing about the objects
        assert np.allclose(regions.labels.sum(1), 1.0, atol=1e-6)
        truth = xywh_to_corners([o.bbox for o in scene.objects])
        assert len(regions.object_regions) == len(scene.objects)
        for j, region in enumerate(regions.object_regions):
            assert np.array_equal(regions.boxes[region], truth[j])
            assert KINDS[regions.kinds[region]] == "object"
            assert regions.labels[region, object_class(scene.objects[j])] == pytest.approx(1.0)
        best = overlaps(regions.boxes, truth, "iou").max(1)
        kinds = [KINDS[k] for k in regions.kinds]
        assert kinds.count("jitter") == RECIPE.jitter_copies * len(scene.objects)
        for k, iou in zip(kinds, best, strict=True):
            if k == "jitter":
                assert JITTER_IOU[0] <= iou < JITTER_IOU[1]
        background = regions.labels[:, 0][np.array(kinds) == "distractor"]
        assert (background >= DISTRACTOR_BACKGROUND).all()
        inside = (regions.boxes >= 0).all() and (regions.boxes <= scene.image_size).all()
        assert inside and (regions.boxes[:, 2:] > regions.boxes[:, :2]).all()


def test_boxes_are_seeded_by_recipe_and_image_alone(train):
    scene = train.scenes[3]
    first, again = regions_of(scene), regions_of(scene)
    assert np.array_equal(first.boxes, again.boxes) and first.object_regions == again.object_regions
    other_seed = regions_of(scene, dataclasses.replace(RECIPE, seed=1))
    assert not np.array_equal(first.boxes, other_seed.boxes)
    moved = scene_regions(scene.objects, scene.image_size, scene.image_size, "another id", RECIPE)
    assert not np.array_equal(first.boxes, moved.boxes)


def test_a_label_is_the_overlap_with_each_object_and_background_the_rest():
    star = SceneObject("blue", "star", "small", (0, 0, 10, 10))
    circle = SceneObject("red", "circle", "small", (20, 0, 10, 10))
    boxes = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [10, 0, 25, 10]], dtype=np.float32)
    iou = region_labels(boxes, [star, circle], "iou")
    blue_star, red_circle = object_class(star), object_class(circle)
    assert region_classes()[blue_star] == "blue star" and region_classes()[0] == "background"
    assert iou[0, blue_star] == pytest.approx(50 / 150) and iou[0, 0] == pytest.approx(100 / 150)
    assert iou[1, blue_star] == pytest.approx(1.0) and iou[1, 0] == pytest.approx(0.0)
    assert iou[2, red_circle] == pytest.approx(50 / 200) and iou[2, 0] == pytest.approx(150 / 200)
    coverage = region_labels(boxes, [star, circle], "coverage")
    assert coverage[0, blue_star] == pytest.approx(0.5) and coverage[2, red_circle] == pytest.approx(50 / 150)
    assert np.allclose(coverage.sum(1), 1.0)


def test_the_patch_grid_as_regions():
    objects = [SceneObject("green", "square", "large", (16, 16, 32, 32))]
    grid = grid_regions(64, 64, (4, 4), objects)
    assert grid.boxes.shape == (16, 4) and grid.labels.shape == (16, len(region_classes()))
    assert np.array_equal(grid.boxes[1], [16, 0, 32, 16]) and np.array_equal(grid.boxes[4], [0, 16, 16, 32])
    inside = [5, 6, 9, 10]  # the four middle cells lie wholly inside the square: coverage says so
    assert np.allclose(grid.labels[inside, object_class(objects[0])], 1.0)
    assert np.allclose(np.delete(grid.labels, inside, axis=0)[:, 0], 1.0)
    cropped = grid_regions(100, 64, (2, 2), None, visible=(18.0, 0.0, 82.0, 64.0))  # a centre crop
    assert np.array_equal(cropped.boxes[0], [18, 0, 50, 32]) and cropped.labels is None
    assert np.allclose(cropped.locations()[3], [50 / 100, 0.5, 0.82, 1.0, 0.32 * 0.5])


def test_a_region_set_pads_with_masked_empty_regions():
    small = grid_regions(64, 32, (1, 2), [])
    large = grid_regions(64, 64, (2, 2), [])
    stacked = stack_regions(["a", "b"], [small, large], "grid")
    assert stacked.boxes.shape == (2, 4, 4) and stacked.mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    locations = stacked.locations()
    assert np.allclose(locations[0, 1], [0.5, 0, 1, 1, 0.5]) and not locations[0, 2:].any()
    assert stacked.digest() != stack_regions(["a", "c"], [small, large], "grid").digest()


def test_a_recipe_out_of_range_names_its_field():
    with pytest.raises(ConfigError, match="RegionRecipe.label_overlap"):
        RegionRecipe(label_overlap="area")
    with pytest.raises(ConfigError, match="RegionRecipe.regions"):
        RegionRecipe(regions=0)
