from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from tests.models.tiny import TINY_CLIP
from vlkit.cli.main import main
from vlkit.data.captions import load_caption_dataset
from vlkit.errors import VlkitError
from vlkit.models.clip import load_clip
from vlkit.train import clip_trainer
from vlkit.train.checkpoint import list_checkpoints
from vlkit.train.clip_trainer import ClipTrainConfig, train_clip
from vlkit.train.loop import LoopConfig


def _config(steps: int = 6, **loop) -> ClipTrainConfig:
    arch = replace(TINY_CLIP, image_size=64, vocab_size=400)
    loop_config = LoopConfig(
        steps=steps,
        learning_rate=1e-3,
        warmup_steps=2,
        checkpoint_every=3,
        log_every=1,
        mixed_precision="no",
        **loop,
    )
    return ClipTrainConfig(architecture=arch, loop=loop_config, batch_size=8, eval_every=2)


@pytest.fixture(scope="module")
def datasets(shapes_world):
    return (
        load_caption_dataset(shapes_world / "train.json", shapes_world / "images"),
        load_caption_dataset(shapes_world / "val.json", shapes_world / "images"),
    )


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


def test_same_seed_gives_same_weights_and_the_model_loads_like_a_hub_clip(datasets, tmp_path):
    train, val = datasets
    first = train_clip(_config(), train, val, tmp_path / "a")
    second = train_clip(_config(), train, val, tmp_path / "b")
    a, b = _weights(first), _weights(second)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    clip = load_clip(str(first))
    assert clip.encode_texts(["a red circle"]).shape == (1, TINY_CLIP.projection_dim)
    log = [json.loads(line) for line in (first / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert all("val_loss" in r for r in log if r["step"] % 2 == 0)


def test_training_lowers_the_contrastive_loss(datasets, tmp_path):
    train, val = datasets
    out = train_clip(_config(steps=30), train, None, tmp_path / "c")
    log = [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert sum(log[-5:]) / 5 < sum(log[:5]) / 5


def test_resume_after_a_crash_gives_the_weights_of_an_uninterrupted_run(datasets, tmp_path, monkeypatch):
    train, val = datasets
    reference = _weights(train_clip(_config(), train, val, tmp_path / "ref"))
    original = clip_trainer.CaptionBatches.__call__

    def crash_at_step_4(self, step):
        if step == 4:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(clip_trainer.CaptionBatches, "__call__", crash_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        train_clip(_config(), train, val, tmp_path / "crash")
    assert [p.name for p in list_checkpoints(tmp_path / "crash" / "checkpoints")] == ["step-000000003"]
    monkeypatch.setattr(clip_trainer.CaptionBatches, "__call__", original)
    resumed = _weights(train_clip(_config(), train, val, tmp_path / "crash", resume=True))
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)
    steps = [
        json.loads(line)["step"] for line in (tmp_path / "crash" / "train_log.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_a_nan_loss_stops_training_naming_the_step(datasets, tmp_path, monkeypatch):
    train, _ = datasets
    monkeypatch.setattr(clip_trainer, "contrastive_loss", lambda model, batch: torch.tensor(float("nan")))
    with pytest.raises(VlkitError, match="loss became nan at step 1"):
        train_clip(_config(), train, None, tmp_path / "nan")


def test_clip_train_command_writes_an_hf_folder(shapes_world, tmp_path):
    out = tmp_path / "cli"
    main(
        [
            "--quiet",
            "clip",
            "train",
            "--data",
            str(shapes_world),
            "--out",
            str(out),
            "--steps",
            "2",
            "--batch-size",
            "8",
            "--mixed-precision",
            "no",
        ]
    )
    for name in ("config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"):
        assert (out / name).is_file(), name


def test_clip_train_rejects_a_batch_of_one(shapes_world, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["clip", "train", "--data", str(shapes_world), "--out", str(tmp_path / "x"), "--batch-size", "1"]
        )
    assert exit_info.value.code == 2
    assert "--batch-size: must be at least 2" in capsys.readouterr().err
