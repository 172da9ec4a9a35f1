"""Outputs are atomic: a run that fails half way leaves the previous predictions, metrics and report intact
and no temporary file behind; a loss that turns NaN stops training and the last good checkpoint stays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.models.tiny_captioner import save_tiny_parts
from vlkit.captioning import generate
from vlkit.cli.main import main
from vlkit.data.captions import load_caption_dataset
from vlkit.models.captioner.model import CaptionerSpec, build_captioner
from vlkit.pipelines import evaluate
from vlkit.pipelines.report import write_report
from vlkit.runtime.files import atomic_open
from vlkit.train import clip_trainer
from vlkit.train.checkpoint import is_complete, list_checkpoints, load_checkpoint
from vlkit.train.clip_trainer import train_clip


class Boom(RuntimeError):
    pass


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


def test_atomic_open_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")
    with pytest.raises(Boom), atomic_open(path) as handle:
        handle.write(b"half of the new")
        raise Boom
    assert path.read_text() == "old" and _leftovers(tmp_path) == []


@pytest.fixture(scope="module")
def captioner_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("atomic-models")
    clip, _, gpt2 = save_tiny_parts(root)
    return build_captioner(CaptionerSpec(str(clip), str(gpt2), "cross-attn", max_caption_tokens=6)).save(
        root / "captioner"
    )


def test_predictions_stay_intact_when_captioning_fails_half_way(
    captioner_dir, shapes_world, tmp_path, monkeypatch
):
    out = tmp_path / "pred.json"
    args = ["--quiet", "caption", "predict", "--model", str(captioner_dir), "--images",
            str(shapes_world / "images"), "--out", str(out), "--batch-size", "8"]  # fmt: skip
    main(args)
    before = out.read_bytes()
    assert len(json.loads(before)) > 8  # several batches: the failure below comes after the first
    real, calls = generate.caption_images, []

    def fail_on_the_second_batch(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise Boom("generation failed")
        return real(*a, **k)

    monkeypatch.setattr(generate, "caption_images", fail_on_the_second_batch)
    with pytest.raises(Boom):
        main(args)
    assert out.read_bytes() == before and _leftovers(tmp_path) == []


def test_metrics_and_report_stay_intact_when_a_run_fails_half_way(shapes_world, tmp_path, monkeypatch):
    data = load_caption_dataset(shapes_world / "val.json", shapes_world / "images")
    (tmp_path / "pred.json").write_text(json.dumps({image.stem: "a red circle" for image in data.images}))
    run = tmp_path / "run"
    args = ["--quiet", "evaluate", "--predictions", str(tmp_path / "pred.json"), "--annotations",
            str(shapes_world / "val.json"), "--images", str(shapes_world / "images"), "--out",
            str(run / "captions" / "evaluation"), "--metrics", "cider,chair"]  # fmt: skip
    main(args)
    metrics = run / "captions" / "evaluation" / "metrics.json"
    before = metrics.read_bytes()
    index = write_report(run)
    page = index.read_bytes()

    monkeypatch.setattr(
        evaluate, "_grounding_metrics", lambda *a, **k: (_ for _ in ()).throw(Boom("half way"))
    )
    with pytest.raises(Boom):
        main(args)
    assert metrics.read_bytes() == before

    import vlkit.pipelines.report as report

    monkeypatch.setattr(report, "_config_section", lambda *a, **k: (_ for _ in ()).throw(Boom("half way")))
    with pytest.raises(Boom):
        write_report(run)
    assert index.read_bytes() == page and _leftovers(run) == []


def test_a_nan_loss_keeps_the_last_good_checkpoint(shapes_world, tmp_path, monkeypatch):
    from tests.train.test_clip_trainer import _config

    train = load_caption_dataset(shapes_world / "train.json", shapes_world / "images")
    real, steps = clip_trainer.contrastive_loss, []

    def nan_at_step_5(model, batch, **options):
        steps.append(1)
        loss = real(model, batch, **options)
        return loss * float("nan") if len(steps) == 5 else loss

    monkeypatch.setattr(clip_trainer, "contrastive_loss", nan_at_step_5)
    out = tmp_path / "nan"
    with pytest.raises(Exception, match="loss became nan at step 5"):
        train_clip(_config(steps=8), train, None, out)
    checkpoints = list_checkpoints(out / "checkpoints")
    assert [c.name for c in checkpoints] == ["step-000000003"] and is_complete(checkpoints[0])
    state = load_checkpoint(checkpoints[0])
    assert all(torch.isfinite(t).all() for t in state.model.values())
