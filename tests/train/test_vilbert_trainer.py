"""ViLBERT's pre-training and fine-tuning on the tiny shapes world through the shared loop: the losses fall,
a crashed run resumes to the uninterrupted run's weights, held-out items never reach training, and the
evaluation reports every figure with the held-out combinations apart."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from vlkit.models.vilbert.vl_models import load_vl_model
from vlkit.train import vilbert_trainer
from vlkit.train.checkpoint import list_checkpoints
from vlkit.train.config import LoopConfig
from vlkit.train.vilbert_data_config import ViLBertDataConfig
from vlkit.train.vilbert_eval import evaluate
from vlkit.train.vilbert_setup import build_model, load_data
from vlkit.train.vilbert_train_config import VilbertTrainConfig
from vlkit.train.vilbert_trainer import FinetuneBatches, finetune, pretrain, pretraining_losses

TINY_RUN = {"hidden_size": 16, "attention_heads": 2, "text_layers": 1, "vision_layers": 1,
            "coattention_layers": 1, "ffn_size": 24, "eval_every": 3, "eval_batch_size": 64,
            "rerank_candidates": 5, "referring_rows": 4, "retrieval_rows": 2}  # fmt: skip


def tiny_config(cache, steps: int = 6, **changes) -> VilbertTrainConfig:
    loop = LoopConfig(steps=steps, learning_rate=3e-3, warmup_steps=1, checkpoint_every=3, log_every=1)
    data = ViLBertDataConfig(batch_size=8, retrieval_candidates=3)
    return VilbertTrainConfig(
        **{**TINY_RUN, "loop": loop, "data": data, "feature_cache_dir": str(cache), **changes}
    )


@pytest.fixture(scope="module")
def world_data(shapes_world, tmp_path_factory):
    cache = tmp_path_factory.mktemp("vilbert-features")
    config = tiny_config(cache)
    return config, load_data(config, shapes_world)


def _log(run):
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


def _untimed(run):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in _log(run)]


def _weights_equal(a, b) -> bool:
    first, second = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_pretraining_lowers_its_loss_on_a_fixed_batch(world_data, tmp_path):
    config, data = world_data
    config = dataclasses.replace(config, loop=dataclasses.replace(config.loop, steps=12))
    batch = data.train.pretraining(0)
    weights = {"word": 1.0, "region": 1.0, "alignment": 1.0}

    def loss_of(model) -> float:
        with torch.inference_mode():
            return float(sum(pretraining_losses(model.eval(), batch, weights).values()))

    before = loss_of(build_model(config, data))
    outcome = pretrain(config, None, tmp_path / "pre", data=data)
    after = loss_of(load_vl_model(tmp_path / "pre"))
    assert after < before - 0.5 and outcome.steps == 12
    logged = _log(tmp_path / "pre")
    assert {"loss_word", "loss_region", "loss_alignment"} <= set(logged[0])
    assert [r["step"] for r in logged if "val_loss" in r] == [3, 6, 9, 12]
    saved = json.loads((tmp_path / "pre" / "vlkit_vilbert_train.json").read_text())
    assert VilbertTrainConfig.from_dict(saved) == config
    assert json.loads((tmp_path / "pre" / "config.json").read_text())["vlkit_vl_model"] == "vilbert"


@pytest.mark.parametrize("phase", ["pretrain", "finetune"])
def test_a_run_stopped_at_step_4_and_resumed_ends_with_the_uninterrupted_weights(
    world_data, tmp_path, monkeypatch, phase
):
    config, data = world_data  # dropout on, masks and mismatches drawn per step: resume must replay them
    run = pretrain if phase == "pretrain" else finetune
    run(config, None, tmp_path / "ref", data=data)
    owner, name = (type(data.train), "pretraining") if phase == "pretrain" else (FinetuneBatches, "__call__")
    original = getattr(owner, name)

    def crash_at_step_4(self, step):
        if step == 4:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(owner, name, crash_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        run(config, None, tmp_path / "crash", data=data)
    assert [p.name for p in list_checkpoints(tmp_path / "crash" / "checkpoints")] == ["step-000000003"]
    monkeypatch.setattr(owner, name, original)
    run(config, None, tmp_path / "crash", resume=True, data=data)
    assert _weights_equal(tmp_path / "ref", tmp_path / "crash")
    assert _untimed(tmp_path / "ref") == _untimed(tmp_path / "crash")


def test_held_out_items_never_reach_fine_tuning_and_are_scored_apart(world_data, tmp_path):
    config, data = world_data
    weights = {"vqa": 1.0, "referring": 1.0, "retrieval": 1.0}
    batches = FinetuneBatches(data.train, weights, {"referring": 4, "retrieval": 2})
    epoch = max(len(data.train.vqa_items), len(data.train.referring_items)) // config.data.batch_size
    seen_vqa, seen_referring = set(), set()
    for step in range(2 * epoch):
        batch = batches(step)
        rows = [batch[f"{task}.input_ids"].shape[0] for task in ("vqa", "referring", "retrieval")]
        assert rows == [8, 4, 2] and batch["retrieval.input_ids"].shape[1] == 3  # 3 candidates each
        assert not batch["vqa.heldout"].any() and not batch["referring.heldout"].any()
        seen_vqa |= set(batch["vqa.item"].tolist())
        seen_referring |= set(batch["referring.item"].tolist())
    assert len(seen_vqa) > len(data.train.vqa_items) // 2  # (the flags above are those of many items)
    assert not any(data.train.vqa_items[i].heldout for i in seen_vqa)
    assert not any(data.train.referring_items[i].heldout for i in seen_referring)
    assert any(item.heldout for item in data.val.vqa_items)

    outcome = finetune(config, None, tmp_path / "ft", init_dir=None, data=data)
    results = evaluate(tmp_path / "ft", data=data, out_json=tmp_path / "eval.json")
    assert json.loads((tmp_path / "eval.json").read_text()) == results
    assert results["vqa_heldout_items"] == sum(item.heldout for item in data.val.vqa_items) > 0
    assert results["vqa_items"] + results["vqa_heldout_items"] == len(data.val.vqa_items)
    assert results["refer_heldout_items"] == sum(item.heldout for item in data.val.referring_items)
    for key in ("vqa_accuracy", "vqa_heldout_accuracy", "refer_accuracy", "refer_heldout_accuracy",
                "retrieval_r1", "retrieval_r5", "retrieval_r10"):  # fmt: skip
        assert 0.0 <= results[key] <= 1.0
    assert set(results["vqa_by_type"]) == {"colour", "count", "exists", "relation"}
    assert set(results["refer_baselines"]) == {"centre", "largest", "chance"}
    assert results["params"] == load_vl_model(tmp_path / "ft").count_parameters() == outcome.parameters
    assert results["retrieval_r10"] == 1.0  # 5 candidates per caption: every rank is at most 5
    assert results["retrieval_queries"] == len(data.val.captions)  # each image's first caption
    best = json.loads((tmp_path / "ft" / "best" / "best.json").read_text())
    scored = {r["step"]: r["val_vqa_accuracy"] for r in _log(tmp_path / "ft") if "val_vqa_accuracy" in r}
    assert sorted(scored) == [3, 6] and best["val_vqa_accuracy"] == max(scored.values())


def test_fine_tuning_from_a_pretraining_run_takes_its_model_and_tokenizer(world_data, tmp_path, monkeypatch):
    config, data = world_data
    one_step = dataclasses.replace(config, loop=dataclasses.replace(config.loop, steps=1))
    pretrain(one_step, None, tmp_path / "pre", data=data)
    start = load_vl_model(tmp_path / "pre").state_dict()
    taken = {}
    original = vilbert_trainer.run_training

    def record_start(model, *args, **kwargs):
        taken.update({k: v.clone() for k, v in model.state_dict().items()})
        return original(model, *args, **kwargs)

    monkeypatch.setattr(vilbert_trainer, "run_training", record_start)
    bigger = dataclasses.replace(config, hidden_size=32)  # the model's size comes from --init
    finetune(bigger, None, tmp_path / "ft", init_dir=tmp_path / "pre", data=data)
    assert all(torch.equal(taken[k], start[k]) for k in start)
    saved = json.loads((tmp_path / "ft" / "vlkit_vilbert_train.json").read_text())
    assert saved["hidden_size"] == config.hidden_size
