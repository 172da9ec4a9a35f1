"""Caption training on the tiny shapes world: every method learns, per-epoch CIDEr-D keeps the best, resume
is exact, and the feature cache spares the encoder without changing the losses."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers.modeling_outputs import BaseModelOutput

from tests.models.tiny import save_tiny_clip
from vlkit.cli.main import main
from vlkit.data.captions import load_caption_dataset
from vlkit.data.images import read_image
from vlkit.models.architectures import LmArchitecture
from vlkit.models.captioner.config import CaptionerSpec
from vlkit.models.captioner.model import build_captioner, load_captioner
from vlkit.models.tuning import TUNING_METHODS
from vlkit.train import caption_trainer
from vlkit.train.caption_batches import tokenize_captions
from vlkit.train.caption_trainer import RESULT_FILE, train_captioner
from vlkit.train.checkpoint import list_checkpoints, load_checkpoint
from vlkit.train.config import CaptionTrainConfig, LmTrainConfig, LoopConfig
from vlkit.train.lm_trainer import train_lm


@pytest.fixture(scope="module")
def datasets(shapes_world):
    return (
        load_caption_dataset(shapes_world / "train.json", shapes_world / "images"),
        load_caption_dataset(shapes_world / "val.json", shapes_world / "images"),
    )


@pytest.fixture(scope="module")
def parts(datasets, tmp_path_factory):
    """A tiny CLIP and a tiny caption LM pretrained on the world's captions, as the real recipe has."""
    root = tmp_path_factory.mktemp("parts")
    loop = LoopConfig(
        steps=60, learning_rate=3e-3, warmup_steps=4, checkpoint_every=100, mixed_precision="no"
    )
    arch = LmArchitecture(width=32, layers=2, heads=2, positions=40, vocab_size=300)
    lm = train_lm(
        LmTrainConfig(architecture=arch, loop=loop, batch_size=32), datasets[0].all_captions(), root / "lm"
    )
    return save_tiny_clip(root / "clip"), lm


def _config(parts, tuning="lora", steps=6, **options) -> CaptionTrainConfig:
    loop = LoopConfig(
        steps=steps, learning_rate=1e-2, warmup_steps=2, checkpoint_every=3, log_every=1, mixed_precision="no"
    )
    options.setdefault("batch_size", 8)
    spec = {name: options.pop(name) for name in ("connector_layers", "connector") if name in options}
    captioner = CaptionerSpec(str(parts[0]), str(parts[1]), tuning, max_caption_tokens=24, **spec)
    return CaptionTrainConfig(captioner, loop=loop, **options)


def _log(folder):
    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]


def _fixed_loss(captioner, dataset) -> float:
    """Teacher-forcing loss of every image's first caption in eval mode: the same numbers before and after."""
    tokens = [tokenize_captions(captioner, image.captions[:1], 24) for image in dataset.images]
    inputs, labels = torch.cat([t.inputs for t in tokens]), torch.cat([t.labels for t in tokens])
    pixels = captioner.preprocess([read_image(image.path) for image in dataset.images])
    captioner.model.eval()
    with torch.no_grad():
        features = captioner.encode_images(pixels)
        out = captioner.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=features),
            decoder_input_ids=inputs,
            decoder_attention_mask=(labels != -100).long(),
            labels=labels,
        )
    return float(out.loss)


@pytest.mark.parametrize("method", list(TUNING_METHODS))
def test_every_method_lowers_the_caption_loss(parts, datasets, tmp_path, method):
    # Eight images with one caption each, so every step sees the same pairs. Measured: 30 steps lower this
    # loss by 0.03 (cross-attn, ia3) to 1.4 (full); a frozen tiny LM learns to read random features slowly.
    images = [dataclasses.replace(image, captions=image.captions[:1]) for image in datasets[0].images[:8]]
    train = dataclasses.replace(datasets[0], images=images)
    config = _config(parts, method, steps=30)
    before = _fixed_loss(build_captioner(config.spec()), train)
    result = train_captioner(config, train, None, tmp_path / method)
    after = _fixed_loss(load_captioner(tmp_path / method), train)
    assert after < before - 0.01, (before, after)
    saved = json.loads((tmp_path / method / RESULT_FILE).read_text())
    assert saved["trainable_parameters"] == result.parameters.trainable
    assert saved["trainable_share"] == pytest.approx(result.parameters.share)
    assert 0 < result.parameters.share <= 1 and (result.parameters.share == 1) == (method == "full")
    assert (result.feature_cache is None) == (method == "full")  # the encoder trains: nothing to cache


def test_validation_scores_cider_d_every_epoch_and_keeps_the_best(parts, datasets, tmp_path):
    train, val = datasets
    config = _config(parts, "cross-attn", batch_size=20, epochs=3, val_limit=6)  # 3 steps an epoch
    result = train_captioner(config, train, val, tmp_path / "run")
    scored = {r["step"]: r["val_cider_d"] for r in _log(tmp_path / "run") if "val_cider_d" in r}
    assert sorted(scored) == [3, 6, 9]
    best_step = max(scored, key=lambda step: (scored[step], -step))
    assert (result.best_step, result.best_cider) == (best_step, scored[best_step])
    assert json.loads((tmp_path / "run" / "best" / "best.json").read_text())["step"] == best_step
    assert load_captioner(result.best_dir).tuning == "cross-attn"


def test_resume_after_a_crash_gives_the_weights_of_an_uninterrupted_run(
    parts, datasets, tmp_path, monkeypatch
):
    train, val = datasets
    config = _config(parts, "lora", val_limit=4)  # LoRA and GPT-2 dropout: resume must replay the masks
    train_captioner(config, train, val, tmp_path / "ref")
    reference = load_file(str(tmp_path / "ref" / "model.safetensors"))
    original = caption_trainer.CaptionBatches.__call__

    def crash_at_step_4(self, step):
        if step == 4:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(caption_trainer.CaptionBatches, "__call__", crash_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        train_captioner(config, train, val, tmp_path / "crash")
    checkpoints = list_checkpoints(tmp_path / "crash" / "checkpoints")
    assert [p.name for p in checkpoints] == ["step-000000003"]
    trainable = {n for n, p in build_captioner(config.spec()).model.named_parameters() if p.requires_grad}
    assert set(load_checkpoint(checkpoints[0]).model) == trainable  # no frozen weights in checkpoints
    monkeypatch.setattr(caption_trainer.CaptionBatches, "__call__", original)
    train_captioner(config, train, val, tmp_path / "crash", resume=True)
    resumed = load_file(str(tmp_path / "crash" / "model.safetensors"))
    assert resumed.keys() == reference.keys() and all(
        torch.equal(resumed[k], reference[k]) for k in reference
    )
    untimed = [
        [{k: v for k, v in r.items() if k != "seconds"} for r in _log(tmp_path / run)]
        for run in ("ref", "crash")
    ]
    assert untimed[0] == untimed[1] and [r["step"] for r in untimed[1]] == [1, 2, 3, 4, 5, 6]


def test_the_feature_cache_spares_the_encoder_and_keeps_the_losses(parts, datasets, tmp_path, monkeypatch):
    train, _ = datasets
    events: list[str] = []
    build, batches = caption_trainer.build_captioner, caption_trainer.CaptionBatches.__call__

    def counting_build(spec, **options):
        captioner = build(spec, **options)
        captioner.model.encoder.register_forward_hook(lambda *args: events.append("encoder"))
        return captioner

    def logged_batches(self, step):
        events.append(f"batch {step}")
        return batches(self, step)

    monkeypatch.setattr(caption_trainer, "build_captioner", counting_build)
    monkeypatch.setattr(caption_trainer.CaptionBatches, "__call__", logged_batches)
    cache_dir = str(tmp_path / "features")
    # 60 images of 20: 3 steps an epoch, 2 epochs; the cache is built in batches of 64 (one encoder call).
    cached = _config(parts, "lora", batch_size=20, epochs=2, feature_cache_dir=cache_dir)
    result = train_captioner(cached, train, None, tmp_path / "cached")
    assert events == ["encoder"] + [f"batch {step}" for step in range(6)]

    events.clear()
    uncached = _config(parts, "lora", batch_size=20, epochs=2, feature_cache=False)
    train_captioner(uncached, train, None, tmp_path / "uncached")
    assert events == [e for step in range(6) for e in (f"batch {step}", "encoder")]
    losses = [[r["loss"] for r in _log(tmp_path / name)] for name in ("cached", "uncached")]
    assert np.allclose(losses[0], losses[1], rtol=1e-5, atol=1e-6)

    events.clear()
    again = train_captioner(cached, train, None, tmp_path / "again")  # another run, same images and encoder
    assert "encoder" not in events and again.feature_cache == result.feature_cache


def _caption_train_command(parts, world, out, *options: str) -> None:
    main(["--quiet", "caption", "train", "--data", str(world), "--encoder", str(parts[0]), "--decoder",
          str(parts[1]), "--out", str(out), "--batch-size", "8", "--max-caption-tokens", "20", "--val-limit",
          "3", "--mixed-precision", "no", *options])  # fmt: skip


def test_caption_train_and_predict_commands(parts, shapes_world, tmp_path, capsys):
    out = tmp_path / "captioner"
    options = ["--tuning", "lora", "--tuning-option", "rank=2", "--steps", "2"]
    _caption_train_command(parts, shapes_world, out, *options)
    assert load_captioner(out).tuning_config.rank == 2 and (out / "best" / "best.json").is_file()
    images = tmp_path / "images"
    images.mkdir()
    for name in ("val_00000.png", "val_00001.png", "val_00002.png"):
        (images / name).write_bytes((shapes_world / "images" / name).read_bytes())
    predictions = tmp_path / "pred.json"
    main(["--quiet", "caption", "predict", "--model", str(out), "--images", str(images), "--out",
          str(predictions), "--beams", "2", "--batch-size", "2"])  # fmt: skip
    captions = json.loads(predictions.read_text())
    assert sorted(captions) == ["val_00000", "val_00001", "val_00002"] and all(
        isinstance(c, str) for c in captions.values()
    )  # the DLCV layout holds captions only: how they were made goes beside them
    run = json.loads((tmp_path / "pred.run.json").read_text())
    assert run["precision"] == "fp32" and run["decoding"]["num_beams"] == 2 and run["n_captions"] == 3
    assert "(precision fp32)" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["caption", "train", "--tuning", "qlora"], "--tuning: unknown method 'qlora'"),
        (["caption", "train", "--tuning-option", "rank"], "--tuning-option: expected KEY=VALUE"),
        (["caption", "predict", "--model", "{tmp}/none"], "captioner folder not found"),
    ],
)
def test_caption_commands_turn_bad_input_into_one_line_and_exit_2(
    shapes_world, tmp_path, capsys, argv, message
):
    common = {
        "train": [
            "--data",
            str(shapes_world),
            "--encoder",
            "e",
            "--decoder",
            "d",
            "--out",
            str(tmp_path / "o"),
        ],
        "predict": ["--images", str(shapes_world / "images"), "--out", str(tmp_path / "p.json")],
    }[argv[1]]
    with pytest.raises(SystemExit) as exit_info:
        main([a.replace("{tmp}", str(tmp_path)) for a in argv] + common)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error


COMMANDS = [["caption", "train"], ["caption", "predict"], ["lm", "train"]]


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_of_the_caption_and_lm_commands(path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # one line per option, so the checks below are not split by wrapping
    assert main([*path, "--help"]) is None
    out = capsys.readouterr().out
    expected = {
        "caption train": [*(f"{name}:" for name in TUNING_METHODS), "--tuning-option", "--epochs"],
        "caption predict": ["--beams", "--max-length", "--length-penalty", "--batch-size"],
        "lm train": ["--data", "--steps", "--seed", "--resume"],
    }[" ".join(path)]
    assert all(text in out for text in expected), [text for text in expected if text not in out]


def test_same_seed_gives_identical_weights_captions_and_metrics(parts, datasets, shapes_world, tmp_path):
    """Two runs from the same seed and inputs: the same tensors bit for bit, captions and scores."""
    from vlkit.captioning.generate import predict_captions
    from vlkit.pipelines.evaluate import EvaluationRequest, run_evaluation
    from vlkit.runtime.files import write_json_atomic

    outcomes = []
    for run in ("a", "b"):
        folder = tmp_path / run
        train_captioner(_config(parts, "lora", steps=8), datasets[0], None, folder)
        captions = predict_captions(load_captioner(folder), datasets[1].image_paths())
        write_json_atomic(folder / "pred.json", captions)
        request = EvaluationRequest(
            predictions=folder / "pred.json",
            annotations=shapes_world / "val.json",
            images=shapes_world / "images",
            out=folder / "eval",
            metrics=("cider", "bleu", "chair"),
            allow_empty=True,
        )
        metrics = run_evaluation(request)["metrics"]
        outcomes.append((load_file(folder / "model.safetensors"), captions, metrics))
    (weights_a, captions_a, metrics_a), (weights_b, captions_b, metrics_b) = outcomes
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[name], weights_b[name]) for name in weights_a)
    assert captions_a == captions_b
    assert json.dumps(metrics_a, sort_keys=True) == json.dumps(metrics_b, sort_keys=True)
    assert metrics_a["cider"]["value"] is not None


def test_caption_train_with_a_connector_trains_it_from_cached_features(parts, shapes_world, tmp_path):
    out = tmp_path / "captioner"
    options = ["--tuning", "cross-attn", "--connector-layers", "1", "--steps", "3"]
    _caption_train_command(parts, shapes_world, out, *options)
    trained = load_captioner(out)
    fresh = build_captioner(_config(parts, "cross-attn", connector_layers=1).spec())
    assert len(trained.model.connector.layers) == 1 and (out / "feature_cache").is_dir()
    changed = [
        not torch.equal(a, b)
        for a, b in zip(trained.model.connector.parameters(), fresh.model.connector.parameters(), strict=True)
    ]
    assert all(changed)
    saved = json.loads((out / RESULT_FILE).read_text())
    assert saved["trainable_parameters"] == fresh.parameter_count().trainable


@pytest.mark.parametrize("method", list(TUNING_METHODS))
def test_a_batch_cut_after_its_longest_caption_has_the_loss_of_the_full_width_batch(parts, datasets, method):
    # Training batches are cut after the longest caption's end token; the loss must be the one of the rows
    # padded to the full caption length (prefix tuning's virtual tokens and masks included).
    from vlkit.models.tuning import tuning_method
    from vlkit.train.caption_batches import CaptionTokens, decoder_tensors

    tuning = tuning_method(method)
    spec = CaptionerSpec(
        str(parts[0]),
        str(parts[1]),
        method,
        dataclasses.asdict(tuning.default_config()),
        max_caption_tokens=24,
    )
    captioner = build_captioner(spec)

    # Rows of 30 tokens (prefix tuning reserves 10 of the tiny LM's 40 positions) for the captions of up to
    # 20 tokens (its 300-token vocabulary spells words out).
    def length(caption):
        return len(captioner.tokenizer(caption, add_special_tokens=False)["input_ids"])

    images = [i for i in datasets[0].images if length(i.captions[0]) <= 20][:6]
    tokens = [tokenize_captions(captioner, image.captions[:1], 30) for image in images]
    rows = CaptionTokens(torch.cat([t.inputs for t in tokens]), torch.cat([t.labels for t in tokens]))
    trimmed = decoder_tensors(rows)
    longest = int((rows.labels != -100).sum(dim=1).max())
    assert trimmed["labels"].shape[1] == longest < 30
    full = {
        "decoder_input_ids": rows.inputs,
        "decoder_attention_mask": (rows.labels != -100).long(),
        "labels": rows.labels,
    }
    torch.manual_seed(0)
    features = captioner.encode_images(captioner.preprocess([read_image(image.path) for image in images]))
    captioner.model.eval()
    with torch.no_grad():
        losses = [
            float(captioner.model(encoder_outputs=BaseModelOutput(last_hidden_state=features), **b).loss)
            for b in (full, trimmed)
        ]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5, abs=1e-6)
