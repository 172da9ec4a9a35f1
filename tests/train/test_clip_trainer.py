from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.models.tiny import TINY_CLIP
from vlkit.cli.main import main
from vlkit.data.captions import load_caption_dataset
from vlkit.errors import VlkitError
from vlkit.models.clip import load_clip
from vlkit.train import clip_trainer, negatives
from vlkit.train.checkpoint import list_checkpoints
from vlkit.train.clip_trainer import train_clip
from vlkit.train.config import ClipTrainConfig, LoopConfig


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
    monkeypatch.setattr(
        clip_trainer, "contrastive_loss", lambda model, batch, **options: torch.tensor(float("nan"))
    )
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


SHAPES = ["circle", "square", "triangle"]


def test_a_swapped_caption_differs_in_exactly_one_group_word():
    rng = np.random.default_rng(0)
    caption = "a red circle to the left of a blue square."
    for _ in range(50):
        negative = negatives.swap_one_word(caption, [SHAPES], rng)
        before, after = caption.split(" "), negative.split(" ")
        changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        assert len(changed) == 1
        old, new = (word.strip(".") for word in changed[0])
        assert old in SHAPES and new in SHAPES and old != new
    assert negatives.swap_one_word("a red star", [SHAPES], rng) is None
    assert negatives.swap_one_word("a circle", [["circle"]], rng) is None  # nothing to swap it for


def test_hard_negatives_join_the_image_side_of_the_loss(datasets):
    train, _ = datasets
    swapped = negatives.hard_negative_captions(train, [SHAPES], seed=0)
    assert [len(n) for n in swapped] == [len(image.captions) for image in train.images]
    model = clip_trainer.build_clip(TINY_CLIP, 1, 0, seed=0)
    logit_scale = model.logit_scale.exp().item()
    pixels = torch.randn(4, 3, 32, 32)
    ids = torch.randint(2, 50, (8, 6))
    loss = clip_trainer.contrastive_loss(model, {"pixel_values": pixels, "input_ids": ids})
    with torch.no_grad():
        image = torch.nn.functional.normalize(
            model.get_image_features(pixel_values=pixels).pooler_output, dim=-1
        )
        text = torch.nn.functional.normalize(model.get_text_features(input_ids=ids).pooler_output, dim=-1)
    logits = logit_scale * image @ text.T  # (4, 8): 4 true captions, then 4 hard negatives
    target = torch.arange(4)
    expected = (
        torch.nn.functional.cross_entropy(logits, target)
        + torch.nn.functional.cross_entropy(logits[:, :4].T, target)
    ) / 2
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-5)


def test_training_with_hard_negatives_runs_and_records_them(datasets, tmp_path):
    train, val = datasets
    config = _config(steps=4)
    config.swap_groups = [SHAPES]
    out = train_clip(config, train, val, tmp_path / "neg")
    assert json.loads((out / "vlkit_train_config.json").read_text())["swap_groups"] == [SHAPES]
    assert ClipTrainConfig.from_dict(
        json.loads((out / "vlkit_train_config.json").read_text())
    ).swap_groups == [SHAPES]


def test_swapped_negatives_keep_to_the_training_texts_trigrams():
    seen = negatives.caption_trigrams(["a red square", "a blue circle", "a red star"])
    rng = np.random.default_rng(0)
    # "a red circle" never occurs in training (a held-out pair): it must not be made as a negative
    made = {
        negatives.swap_one_word("a red square", [["square", "circle", "star"]], rng, seen) for _ in range(30)
    }
    assert made == {"a red star"}
    assert negatives.swap_one_word("a red square", [["square", "circle"]], rng, seen) is None


def test_clip_train_takes_swap_groups_and_rejects_a_group_of_one(shapes_world, tmp_path, capsys):
    out = tmp_path / "swap"
    main(["--quiet", "clip", "train", "--data", str(shapes_world), "--out", str(out), "--steps", "2",
          "--batch-size", "8", "--swap-group", "circle,square,star"])  # fmt: skip
    assert json.loads((out / "vlkit_train_config.json").read_text())["swap_groups"] == [
        ["circle", "square", "star"]
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(["clip", "train", "--data", str(shapes_world), "--out", str(out), "--swap-group", "circle"])
    assert exit_info.value.code == 2 and "--swap-group" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "corpus"), [([], "alt_text/train.json"), (["--scene-captions"], "train.json")]
)
def test_clip_train_on_a_world_reads_its_alt_text_corpus_unless_told_scenes(
    shapes_world, tmp_path, monkeypatch, extra, corpus
):
    seen = {}

    def record(config, train, val, out_dir, resume=False):
        seen["train"], seen["val"] = train, val

    monkeypatch.setattr("vlkit.train.clip_trainer.train_clip", record)
    main(["--quiet", "clip", "train", "--data", str(shapes_world), "--out", str(tmp_path / "m"), *extra])
    expected = load_caption_dataset(shapes_world / corpus, (shapes_world / corpus).parent / "images")
    assert seen["train"].image_paths() == expected.image_paths()
    assert seen["val"].image_paths()[0].parent == (shapes_world / corpus).parent / "images"


def test_scene_captions_needs_a_world(tmp_path, capsys):
    folder = tmp_path / "captions"
    (folder / "images").mkdir(parents=True)
    (folder / "train.json").write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(SystemExit) as exit_info:
        main(["clip", "train", "--data", str(folder), "--out", str(tmp_path / "m"), "--scene-captions"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "--scene-captions" in err and "\n" not in err
