"""Region features from a frozen encoder's patch tokens: the pooling against hand computations, boxes mapped
through the image processor's resize and crop (checked on its own pixels), the grid variant giving the
tokens themselves, and the on-disk cache: reused when nothing changed, rebuilt when anything did."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from vlkit.data.regions import RegionRecipe, scene_regions, stack_regions
from vlkit.data.scene_tasks import load_world_split
from vlkit.errors import VlkitError
from vlkit.train.region_features import encode_regions, encoder_grid_regions, load_region_encoder
from vlkit.train.region_pooling import cell_weights, input_frame, pool_regions

IMAGES = 5  # the first images of the tiny world's val split


@pytest.fixture(scope="module")
def encoder():
    return load_region_encoder("vlkit:shapes-clip")  # a 64 px ViT, 16 px patches: a 4 x 4 grid


@pytest.fixture(scope="module")
def val(shapes_world):
    split = load_world_split(shapes_world, "val")
    return split.scenes[:IMAGES], split.dataset.image_paths()[:IMAGES]


def scene_set(scenes, recipe=RegionRecipe()):
    regions = [scene_regions(s.objects, s.image_size, s.image_size, s.image_id, recipe) for s in scenes]
    return stack_regions([s.image_id for s in scenes], regions, recipe.describe(), recipe.regions)


def test_a_region_is_the_area_weighted_mean_of_the_cells_it_covers():
    tokens = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(1, 6, 2)  # a 2 x 3 grid, 2 channels
    boxes = torch.tensor([[[0.5, 0.0, 2.0, 1.0], [1.0, 0.5, 1.5, 1.5], [2.0, 1.0, 3.0, 2.0], [5, 5, 6, 6]]])
    pooled = pool_regions(tokens, cell_weights(boxes, (2, 3)))[0]
    cell = tokens[0]  # row by row: cell (r, c) is token 3 r + c
    assert torch.allclose(pooled[0], (0.5 * cell[0] + 1.0 * cell[1]) / 1.5)  # half a cell, then a whole one
    assert torch.allclose(pooled[1], (0.25 * cell[1] + 0.25 * cell[4]) / 0.5)  # across two rows
    assert torch.equal(pooled[2], cell[5])  # a box that is a cell: its token, exactly
    assert torch.equal(pooled[3], cell[5])  # off the grid: the nearest cell


def test_boxes_follow_the_processor_resize_and_centre_crop(encoder):
    # A 128 x 64 image, left half white: CLIP's processor keeps the height (64) and crops the middle 64
    # columns, so image column 64 (the edge) must land on input column 32.
    image = np.zeros((64, 128, 3), dtype=np.uint8)
    image[:, :64] = 255
    pixels = encoder.image_processor(images=[Image.fromarray(image)], return_tensors="pt")["pixel_values"]
    bright = (pixels[0, 0] > 0).float().mean(0)  # (64,) share of bright pixels per input column
    frame = input_frame(encoder.image_processor, 128, 64)
    edge = frame.to_input(np.array([64.0, 0, 64, 0]))[0]
    assert edge == 32 and bright[:32].min() == 1 and bright[32:].max() == 0
    assert frame.visible(128, 64) == (32.0, 0.0, 96.0, 64.0)


def test_pooled_features_are_the_encoder_tokens_weighted_by_hand(encoder, val, tmp_path):
    scenes, paths = val
    regions = scene_set(scenes)
    features = encode_regions(encoder, paths, regions, tmp_path, batch_size=2).rows([1]).features[0]
    tokens = encoder.patch_tokens([Image.open(paths[1]).convert("RGB")])[0]  # (16, C)
    for region in range(regions.boxes.shape[1]):
        x1, y1, x2, y2 = regions.boxes[1, region] / 16  # a 64 px input, not resized: 16 px a cell
        area = np.zeros((4, 4))
        for r in range(4):
            for c in range(4):
                area[r, c] = max(0, min(x2, c + 1) - max(x1, c)) * max(0, min(y2, r + 1) - max(y1, r))
        expected = (torch.from_numpy(area.reshape(16, 1)).float() * tokens).sum(0) / area.sum()
        assert torch.allclose(features[region], expected, atol=1e-5)


def test_the_grid_variant_gives_the_patch_tokens_and_the_cache_is_reused(encoder, val, tmp_path):
    scenes, paths = val
    grids = [encoder_grid_regions(encoder, s.image_size, s.image_size, s.objects) for s in scenes]
    regions = stack_regions([s.image_id for s in scenes], grids, "grid")
    built = encode_regions(encoder, paths, regions, tmp_path, batch_size=2)
    tokens = encoder.patch_tokens([Image.open(p).convert("RGB") for p in paths])
    assert built.rows(range(IMAGES)).features.shape == (IMAGES, 16, encoder.feature_size)
    assert torch.allclose(built.rows(range(IMAGES)).features, tokens, atol=1e-5)
    again = encode_regions(encoder, paths, regions, tmp_path, batch_size=3)
    assert not built.reused and again.reused and again.folder == built.folder
    assert torch.equal(again.rows([0, 4]).features, built.rows([0, 4]).features)


def test_a_change_of_boxes_encoder_or_dtype_is_a_new_cache(encoder, val, tmp_path):
    scenes, paths = val
    base = encode_regions(encoder, paths, scene_set(scenes), tmp_path)
    moved = encode_regions(encoder, paths, scene_set(scenes, RegionRecipe(seed=1)), tmp_path)
    half = encode_regions(encoder, paths, scene_set(scenes), tmp_path, dtype="float16")
    other = load_region_encoder("vlkit:shapes-clip")
    with torch.no_grad():
        next(other.encoder.parameters()).add_(0.01)
    retrained = encode_regions(other, paths, scene_set(scenes), tmp_path)
    folders = {base.folder, moved.folder, half.folder, retrained.folder}
    assert len(folders) == 4 and not any(f.reused for f in (moved, half, retrained))
    assert not torch.equal(moved.rows([0]).features, base.rows([0]).features)
    assert half.cache.parts[0].dtype == np.float16
    assert torch.allclose(half.rows([0]).features, base.rows([0]).features, atol=1e-2)


def test_an_image_whose_size_differs_from_its_boxes_is_named(encoder, val, tmp_path):
    scenes, paths = val
    regions = scene_set(scenes)
    regions = dataclasses.replace(regions, sizes=regions.sizes * 2)
    with pytest.raises(VlkitError, match=r"is 64x64, its boxes are for 128x128"):
        encode_regions(encoder, paths, regions, tmp_path)


def test_crop_pooling_encodes_each_box_alone_and_is_its_own_cache(encoder, val, tmp_path):
    from vlkit.train.region_features import POOLINGS, crop_box
    from vlkit.train.vilbert_train_config import POOLING_NAMES

    assert tuple(POOLINGS) == POOLING_NAMES
    scenes, paths = val
    regions = scene_set(scenes)
    cells = encode_regions(encoder, paths, regions, tmp_path)
    crops = encode_regions(encoder, paths, regions, tmp_path, batch_size=2, pooling="crop")
    assert crops.folder != cells.folder and not crops.reused
    image = Image.open(paths[2]).convert("RGB")
    features = crops.rows([2]).features[0]
    real = np.flatnonzero(regions.mask[2])
    for region in real:
        x1, y1, x2, y2 = crop_box(regions.boxes[2, region], *image.size)
        expected = encoder.pooled([image.crop((x1, y1, x2, y2))])[0]  # the box alone, through the processor
        assert torch.allclose(features[region], expected, atol=1e-5)
    assert not torch.allclose(features[real[0]], cells.rows([2]).features[0, real[0]], atol=1e-3)
    padding = np.flatnonzero(~regions.mask.any(0))
    assert torch.count_nonzero(crops.rows(range(IMAGES)).features[~torch.from_numpy(regions.mask)]) == 0
    assert padding.size == 0 or torch.count_nonzero(features[padding]) == 0
    with pytest.raises(VlkitError, match="--region-pooling"):
        encode_regions(encoder, paths, regions, tmp_path, pooling="roi")


def test_crop_box_rounds_outward_and_stays_inside_the_image():
    from vlkit.train.region_features import crop_box

    assert crop_box(np.array([1.2, 2.7, 10.1, 20.0]), 64, 64) == (1, 2, 11, 20)
    assert crop_box(np.array([-5.0, -1.0, 70.0, 80.0]), 64, 48) == (0, 0, 64, 48)
    assert crop_box(np.array([63.5, 10.0, 63.6, 10.0]), 64, 64) == (63, 10, 64, 11)  # never empty
