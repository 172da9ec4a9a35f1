"""The one-call data of a ViLBERT run: a shapes world through `vlkit:shapes-clip`'s region features (boxes
or the patch grid) and real images with a detector's boxes, each batch through a tiny ViLBERT configured by
`model_fields`."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import torch

from tests.models.tiny_vilbert import TINY_VILBERT
from vlkit.data.regions import RegionRecipe
from vlkit.models.vilbert.model import ViLBertModel
from vlkit.train.region_features import load_region_encoder
from vlkit.train.vilbert_batches import model_inputs
from vlkit.train.vilbert_data import load_detection_data, load_world_data
from vlkit.train.vilbert_data_config import ViLBertDataConfig

CONFIG = ViLBertDataConfig(batch_size=4, retrieval_candidates=2)


def tiny_model(data) -> ViLBertModel:
    return ViLBertModel(dataclasses.replace(TINY_VILBERT, **data.model_fields()))


def test_a_world_s_data_feeds_a_vilbert_and_keeps_heldout_items_for_validation(shapes_world, tmp_path):
    encoder = load_region_encoder("vlkit:shapes-clip")
    data = load_world_data(shapes_world, encoder, tmp_path / "cache", CONFIG)
    assert data.model_fields()["v_feature_size"] == 128 and data.model_fields()["v_target_size"] == 49
    assert not any(item.heldout for item in data.train.vqa_items + data.train.referring_items)
    assert any(item.heldout for item in data.val.vqa_items) and any(data.val.retrieval_set().text_heldout)
    model = tiny_model(data)
    for batch in (
        data.train.pretraining(0),
        data.train.vqa(1),
        data.val.referring(0),
        data.train.retrieval(0),
    ):
        assert model(**model_inputs(batch)).vision_sequence.shape[1] == 1 + 12
    grid = load_world_data(
        shapes_world, encoder, tmp_path / "cache", CONFIG, RegionRecipe(source="grid"), data.tokenizer,
        with_val=False,
    )  # fmt: skip
    batch = grid.train.referring(0)
    assert batch["region_features"].shape == (4, 16, 128) and batch["region_mask"].all()
    best = batch["referring_iou"].argmax(
        1
    )  # no cell is the object: the one overlapping it most stands for it
    assert (
        torch.equal(batch["referring_target"], best) and batch["referring_hit"][torch.arange(4), best].all()
    )
    assert model(**model_inputs(batch)).vision_sequence.shape[1] == 1 + 16


def test_real_images_with_a_detector_s_boxes_run_the_same_model(shapes_world, tmp_path):
    world = json.loads((shapes_world / "val.json").read_text())
    images = world["images"][:4]
    captions = {
        "images": [{"id": f"im{i['id']}", "file_name": i["file_name"]} for i in images],
        "annotations": [
            {"image_id": f"im{a['image_id']}", "caption": a["caption"]}
            for a in world["annotations"]
            if a["image_id"] in {i["id"] for i in images}
        ],
    }
    boxes = {
        "images": [{"id": f"im{i['id']}", "width": 64, "height": 64} for i in images],
        "annotations": [{"image_id": f"im{i['id']}", "bbox": o["bbox"]} for i in images for o in i["objects"]]
        + [{"image_id": f"im{images[0]['id']}", "bbox": [0, 0, 64, 64], "score": 0.1}],
    }
    (tmp_path / "captions.json").write_text(json.dumps(captions))
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    encoder = load_region_encoder("vlkit:shapes-clip")
    reference = load_world_data(shapes_world, encoder, tmp_path / "cache", CONFIG, with_val=False)
    data = load_detection_data(
        tmp_path / "captions.json", shapes_world / "images", tmp_path / "boxes.json", encoder,
        reference.tokenizer, tmp_path / "cache", CONFIG,
    )  # fmt: skip
    regions = data.train.regions.regions
    assert regions.mask.sum(1).tolist() == [len(i["objects"]) + (n == 0) for n, i in enumerate(images)]
    batch = data.train.pretraining(0)
    assert "region_targets" not in batch and "masked_regions" not in batch  # no classes: no region target
    model = ViLBertModel(dataclasses.replace(TINY_VILBERT, **data.model_fields()))
    output = model(**model_inputs(batch))
    assert model.alignment_logits(output).shape == (4, 2) and torch.isfinite(output.vision_pooled).all()


def test_the_data_settings_and_readers_load_no_model_library():
    # The CLI builds its options from RegionRecipe and ViLBertDataConfig; `--help` must stay light.
    code = (
        "import sys, vlkit.train.vilbert_data_config, vlkit.data.regions, vlkit.data.detections, "
        "vlkit.data.scene_tasks; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
