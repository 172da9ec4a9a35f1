"""ViLBERT's batches: the masking fractions (15% of words, 80/10/10; 15% of regions, 90% zeroed) and the 50%
mismatched captions on a seeded sample, with tolerances of four standard deviations (a wrong share fails);
mismatches that really are; targets of each task; held-out items never in a training batch; every batch
through a tiny ViLBERT's forward and heads."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.models.tiny_vilbert import TINY_VILBERT
from vlkit.data.regions import RegionRecipe, region_classes, scene_regions, stack_regions, xywh_to_corners
from vlkit.data.scene_tasks import load_world_split
from vlkit.errors import VlkitError
from vlkit.models.vilbert.heads import masked_region_loss
from vlkit.models.vilbert.model import ViLBertModel
from vlkit.models.vilbert.tokenizer import train_wordpiece_tokenizer
from vlkit.shapes.questions import ANSWERS, ReferringItem, SceneTasks, scene_tasks
from vlkit.train.feature_cache import FeatureCache
from vlkit.train.region_features import RegionFeatures
from vlkit.train.vilbert_batches import ViLBertBatches, model_inputs
from vlkit.train.vilbert_data_config import ViLBertDataConfig
from vlkit.train.vilbert_masking import IGNORE_INDEX

FEATURES = 6
STEPS = 100


@pytest.fixture(scope="module")
def world(shapes_world, tmp_path_factory):
    """The tiny world's train split, its regions with random features (the encoder is tested elsewhere),
    its tasks (held-out items kept, flagged) and a WordPiece trained on its texts."""
    train = load_world_split(shapes_world, "train")
    recipe = RegionRecipe()
    regions = stack_regions(
        [s.image_id for s in train.scenes],
        [scene_regions(s.objects, s.image_size, s.image_size, s.image_id, recipe) for s in train.scenes],
        recipe.describe(),
        recipe.regions,
    )
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((*regions.mask.shape, FEATURES)) * regions.mask[..., None]).astype(
        np.float32
    )
    cache = FeatureCache(tmp_path_factory.mktemp("features"), [array], reused=False)
    features = RegionFeatures(regions, cache, "random")
    tasks = scene_tasks(train.scenes, seed=0, heldout=train.heldout, keep_heldout=True, questions_per_type=3)
    texts = train.dataset.all_captions() + [i.question for i in tasks.vqa] + [i.text for i in tasks.referring]
    tokenizer = train_wordpiece_tokenizer(texts, vocab_size=300)
    return train, features, tasks, tokenizer


def batches(world, **changes) -> ViLBertBatches:
    train, features, tasks, tokenizer = world
    config = dataclasses.replace(ViLBertDataConfig(batch_size=32), **changes)
    captions = [image.captions for image in train.dataset.images]
    return ViLBertBatches(features, captions, tokenizer, config, train.scenes, tasks, train.heldout)


def test_masked_words_are_15_percent_of_the_real_words_80_10_10(world):
    data, mask_id = batches(world), world[3].mask_token_id
    maskable = picked = as_mask = kept = 0
    for step in range(STEPS):
        batch = data.pretraining(step)
        labels, ids = batch["masked_word_labels"], batch["input_ids"]
        aligned = batch["aligned"].bool()
        assert (labels[~aligned] == IGNORE_INDEX).all()  # the reference masks no mismatched pair
        target = labels != IGNORE_INDEX
        specials = torch.isin(labels.clamp(min=0), torch.tensor(world[3].all_special_ids)) & target
        assert not specials.any() and not (target & ~batch["attention_mask"].bool()).any()
        maskable += int(batch["attention_mask"][aligned].sum() - 2 * aligned.sum())  # less [CLS], [SEP]
        picked += int(target.sum())
        as_mask += int((ids[target] == mask_id).sum())
        kept += int((ids[target] == labels[target]).sum())
    assert maskable > 15_000
    assert abs(picked / maskable - 0.15) < 4 * np.sqrt(0.15 * 0.85 / maskable)
    for share, expected in (
        (as_mask / picked, 0.8),
        (kept / picked, 0.1),
        (1 - (as_mask + kept) / picked, 0.1),
    ):
        assert abs(share - expected) < 4 * np.sqrt(expected * (1 - expected) / picked) + 0.005


def test_masked_regions_are_15_percent_90_percent_zeroed_with_their_class_targets(world):
    data = batches(world)
    real = picked = zeroed = 0
    for step in range(STEPS):
        batch = data.pretraining(step)
        clean = data.regions.rows([data.row_of[i] for i in _image_ids(data, batch)]).features
        masked, aligned = batch["masked_regions"], batch["aligned"].bool()
        assert not masked[~aligned].any() and not (masked & ~batch["region_mask"].bool()).any()
        unmasked = ~masked[..., None].expand_as(clean)
        assert torch.equal(batch["region_features"][unmasked], clean[unmasked])
        real += int(batch["region_mask"][aligned].sum())
        picked += int(masked.sum())
        zeroed += int((batch["region_features"][masked].abs().sum(-1) == 0).sum())
        targets = batch["region_targets"][batch["region_mask"].bool()]
        assert torch.allclose(targets.sum(-1), torch.ones(len(targets)), atol=1e-5)
    assert abs(picked / real - 0.15) < 4 * np.sqrt(0.15 * 0.85 / real)
    assert abs(zeroed / picked - 0.9) < 4 * np.sqrt(0.9 * 0.1 / picked)


def _image_ids(data, batch):
    """The images of a batch, found by their boxes (every image's boxes are its own: seeded per image)."""
    boxes = torch.from_numpy(data.regions.regions.locations())
    return [
        data.regions.regions.image_ids[int((boxes - row).abs().sum((1, 2)).argmin())]
        for row in batch["region_boxes"]
    ]


def test_half_the_captions_are_another_image_s_and_never_true_of_this_one(world):
    data = batches(world, word_mask_probability=0.0)
    signatures = {i: sig for i, sig in zip(data.regions.regions.image_ids, data.signatures, strict=True)}
    aligned_count = total = 0
    for step in range(STEPS):
        batch = data.pretraining(step)
        for row, image_id in enumerate(_image_ids(data, batch)):
            ids = batch["input_ids"][row][batch["attention_mask"][row].bool()].tolist()
            own = ids in data.captions[data.row_of[image_id]]
            assert own == bool(batch["aligned"][row])
            if not own:
                source = [i for i, captions in zip(signatures, data.captions, strict=True) if ids in captions]
                assert all(signatures[s] != signatures[image_id] for s in source)
        aligned_count += int(batch["aligned"].sum())
        total += len(batch["aligned"])
    assert abs(aligned_count / total - 0.5) < 4 * np.sqrt(0.25 / total)


def test_batches_are_a_function_of_the_step_and_the_seed(world):
    data = batches(world)
    first, again, other = data.pretraining(7), data.pretraining(7), data.pretraining(8)
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["masked_word_labels"], other["masked_word_labels"])
    reseeded = batches(world, seed=1).pretraining(7)
    assert not torch.equal(first["region_boxes"], reseeded["region_boxes"])


def test_heldout_items_never_train_and_are_all_evaluated(world):
    data = batches(world)
    assert any(item.heldout for item in data.vqa_items), "no held-out item in the tiny world: test is vacuous"
    per_epoch = len(data._vqa_train) // 32
    seen = torch.cat([data.vqa(step)["item"] for step in range(3 * per_epoch)])
    assert not any(data.vqa_items[i].heldout for i in seen.tolist())
    evaluated = torch.cat([batch["item"] for batch in data.vqa_eval(batch_size=50)])
    assert evaluated.tolist() == list(range(len(data.vqa_items)))
    flags = torch.cat([batch["heldout"] for batch in data.vqa_eval()])
    assert flags.tolist() == [item.heldout for item in data.vqa_items]


def test_task_targets_are_the_items_answers_and_the_objects_true_boxes(world):
    train, data = world[0], batches(world)
    batch = data.vqa(0)
    items = [data.vqa_items[i] for i in batch["item"].tolist()]
    assert [ANSWERS[a] for a in batch["answer"].tolist()] == [item.answer for item in items]
    referring = data.referring(0)
    scenes = {s.image_id: s for s in train.scenes}
    for row, item_index in enumerate(referring["item"].tolist()):
        item = data.referring_items[item_index]
        truth = xywh_to_corners([scenes[item.image_id].objects[item.target].bbox])[0]
        image = data.row_of[item.image_id]
        target = int(referring["referring_target"][row])
        assert np.array_equal(data.regions.regions.boxes[image, target], truth)
        iou = referring["referring_iou"][row]
        assert iou[target] == pytest.approx(1.0) and (iou <= 1.0).all()
        assert referring["referring_hit"][row].tolist() == (iou >= 0.5).tolist()  # the copies close enough


def test_retrieval_groups_put_the_true_pair_first_and_candidates_cover_every_caption(world):
    data = batches(world, retrieval_candidates=4, batch_size=8)
    batch = data.retrieval(0)
    assert batch["input_ids"].shape[:2] == (8, 4) and batch["retrieval_target"].tolist() == [0] * 8
    for group in range(8):
        (image,) = _image_ids(data, {"region_boxes": batch["region_boxes"][group, :1]})
        ids = batch["input_ids"][group, 0][batch["attention_mask"][group, 0].bool()].tolist()
        assert ids in data.captions[data.row_of[image]]
        others = _image_ids(data, {"region_boxes": batch["region_boxes"][group, 1:3]})
        assert image not in others  # candidates 1, 2: the caption with other images
    retrieval = data.retrieval_set()
    candidates = data.retrieval_candidates(5, seed=0)
    assert candidates.shape == (len(retrieval.texts), 5)
    assert torch.equal(candidates[:, 0], retrieval.text_image_index)
    assert all(len(set(row)) == 5 for row in candidates.tolist())
    pairs = list(data.retrieval_pairs(candidates[:10], batch_size=16))
    assert torch.cat([p["image_index"] for p in pairs]).tolist() == candidates[:10].flatten().tolist()


def test_every_batch_runs_through_a_tiny_vilbert(world):
    data, tokenizer = batches(world, batch_size=4, retrieval_candidates=3), world[3]
    config = dataclasses.replace(
        TINY_VILBERT, vocab_size=len(tokenizer), max_position_embeddings=40, v_feature_size=FEATURES,
        v_target_size=len(region_classes()), num_answers=len(ANSWERS),
    )  # fmt: skip
    model = ViLBertModel(config)
    pre = data.pretraining(0)
    out = model(**model_inputs(pre))
    assert model.masked_word_logits(out).shape == (*pre["input_ids"].shape, len(tokenizer))
    region_logits = model.masked_region_logits(out)
    assert region_logits.shape == pre["region_targets"].shape == (4, 12, len(region_classes()))
    assert torch.isfinite(masked_region_loss(region_logits, pre["region_targets"], pre["masked_regions"]))
    assert model.alignment_logits(out).shape == (4, 2)
    assert model.answer_logits(model(**model_inputs(data.vqa(0)))).shape == (4, len(ANSWERS))
    assert model.referring_logits(model(**model_inputs(data.referring(0)))).shape == (4, 12)
    assert model.retrieval_scores(model(**model_inputs(data.retrieval(0)))).shape == (4 * 3,)


def test_an_item_about_an_image_without_regions_is_named(world):
    train, features, _, tokenizer = world
    missing = SceneTasks([], [ReferringItem("nowhere", "the star", 0, False)])
    captions = [image.captions for image in train.dataset.images]
    with pytest.raises(
        VlkitError, match=r"referring\[0\]: image_id 'nowhere' is not an image of the regions"
    ):
        ViLBertBatches(features, captions, tokenizer, ViLBertDataConfig(), train.scenes, missing)


def test_the_data_configs_round_trip_and_name_a_bad_field():
    config = ViLBertDataConfig(batch_size=7, mismatch_probability=0.3, mask_mismatched=True)
    assert ViLBertDataConfig.from_dict(config.to_dict()) == config
    recipe = RegionRecipe(regions=20, label_overlap="coverage", seed=4)
    assert RegionRecipe.from_dict(recipe.to_dict()) == recipe
    with pytest.raises(VlkitError, match="ViLBertDataConfig.random_token_share"):
        ViLBertDataConfig(mask_token_share=0.95, random_token_share=0.1)
    with pytest.raises(VlkitError, match="unknown field 'masking'"):
        ViLBertDataConfig.from_dict({"masking": 0.2})
