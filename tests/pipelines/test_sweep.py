"""`vlkit caption sweep` and the retrieval baseline it compares against."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.models.tiny import save_tiny_clip
from tests.models.tiny_captioner import save_tiny_parts
from vlkit.captioning.retrieval import retrieval_captions
from vlkit.cli.main import main
from vlkit.data.captions import load_caption_dataset
from vlkit.errors import VlkitError
from vlkit.models.captioner.config import CaptionerSpec
from vlkit.models.captioner.model import load_captioner
from vlkit.models.clip import load_clip
from vlkit.pipelines.method_runs import train_method
from vlkit.pipelines.sweep import SweepConfig
from vlkit.train.config import CaptionTrainConfig, LoopConfig

METHOD_KEYS = {"tuning", "cider", "clip_score", "chair_i", "trainable_params", "step_time_s", "peak_rss_mib"}


def test_retrieval_gives_a_training_image_its_own_first_caption(shapes_world, tmp_path):
    clip = load_clip(str(save_tiny_clip(tmp_path / "clip")))
    train = load_caption_dataset(shapes_world / "train.json", shapes_world / "images")
    queries = train.image_paths()[:12]
    assert retrieval_captions(clip, train, queries) == {
        path.stem: image.captions[0] for path, image in zip(queries, train.images, strict=False)
    }


def test_retrieval_picks_the_nearest_training_image(shapes_world, tmp_path):
    clip = load_clip(str(save_tiny_clip(tmp_path / "clip")))
    train = load_caption_dataset(shapes_world / "train.json", shapes_world / "images")
    val = load_caption_dataset(shapes_world / "val.json", shapes_world / "images")
    got = retrieval_captions(clip, train, val.image_paths()[:5])
    bank = clip.encode_images(clip.preprocess([_read(p) for p in train.image_paths()]))
    for path in val.image_paths()[:5]:
        query = clip.encode_images(clip.preprocess([_read(path)]))
        similarity = (query @ bank.T)[0]
        chosen = [i for i, image in enumerate(train.images) if image.captions[0] == got[path.stem]]
        assert max(float(similarity[i]) for i in chosen) == pytest.approx(float(similarity.max()), abs=1e-5)


def _read(path: Path):
    from vlkit.data.images import read_image

    return read_image(path)


def test_sweep_on_the_quick_embedded_default_writes_its_table_and_reuses_finished_runs(tmp_path):
    out = tmp_path / "SWEEP.json"
    argv = ["--quiet", "caption", "sweep", "--quick", "--methods", "cross-attn,lora", "--out", str(out)]
    main(argv)
    report = json.loads(out.read_text())
    assert [row["tuning"] for row in report["methods"]] == ["cross-attn", "lora"]
    for row in report["methods"]:
        assert METHOD_KEYS <= row.keys()
        assert row["trainable_params"] > 0 and row["step_time_s"] > 0 and row["peak_rss_mib"] > 100
        assert row["cider"] is not None and row["clip_score"] is not None
        # 4 steps teach the decoder little: its captions may mention no object, which leaves CHAIR-i undefined
        assert row["chair_i"] is None or 0.0 <= row["chair_i"] <= 1.0
    lora, cross = report["methods"][1], report["methods"][0]
    assert lora["trainable_params"] > cross["trainable_params"]  # the same new weights plus LoRA's
    assert set(report["baselines"]["retrieval"]) == {"cider", "clip_score", "chair_i"}
    markdown = out.with_suffix(".md").read_text()
    assert "| cross-attn |" in markdown and "| lora |" in markdown and "retrieval baseline" in markdown
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = tmp_path / "SWEEP" / "runs" / "lora" / "vlkit_sweep_run.json"
    before = record.stat().st_mtime_ns
    main(argv)
    assert record.stat().st_mtime_ns == before  # the finished run was reused, not trained again
    assert json.loads(out.read_text())["methods"] == report["methods"]
    # the encoder trained again under the same path (as after a new world): the runs are trained again
    weights = tmp_path / "SWEEP" / "clip" / "model.safetensors"
    weights.write_bytes(weights.read_bytes())
    main(argv)
    assert record.stat().st_mtime_ns > before
    # a connector is part of every method's captioner: the runs train again, each with it
    before = record.stat().st_mtime_ns
    main([*argv, "--connector-layers", "1", "--connector", "local"])
    assert record.stat().st_mtime_ns > before
    for method in ("cross-attn", "lora"):
        model = load_captioner(tmp_path / "SWEEP" / "runs" / method).model
        assert model.config.connector_kind == "local" and len(model.connector.layers) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--methods", "cross-attn,bogus"], "--methods: unknown 'bogus'"),
        (["--steps", "0"], "--steps: must be positive"),
        (["--encoder", "gpt2"], "--encoder/--decoder need --data"),
    ],
)
def test_sweep_rejects_bad_options_in_one_line(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["caption", "sweep", "--out", str(tmp_path / "s.json"), *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_every_method_keeps_the_caption_length_that_prefix_tuning_fits(tmp_path):
    clip, _, gpt2 = save_tiny_parts(tmp_path)  # GPT-2 with 40 positions; prefix tuning reserves 10
    with_prefix = SweepConfig(_train(clip, gpt2), methods=["cross-attn", "prefix"])
    tokens = with_prefix.caption_tokens()
    assert tokens == 30
    configs = [with_prefix.train_config(m, tmp_path / "cache", tokens) for m in with_prefix.methods]
    assert [c.captioner.max_caption_tokens for c in configs] == [30, 30]
    assert SweepConfig(_train(clip, gpt2), methods=["cross-attn", "lora"]).caption_tokens() == 32


def _train(clip, gpt2, steps: int = 600, batch_size: int = 32) -> CaptionTrainConfig:
    """Every method's training, as `vlkit caption sweep` builds it."""
    return CaptionTrainConfig(
        CaptionerSpec(str(clip), str(gpt2)),
        batch_size=batch_size,
        loop=LoopConfig(steps=steps),
        val_limit=200,
    )


def test_a_method_that_fails_in_its_child_is_one_line_naming_it(shapes_world, tmp_path):
    clip, _, gpt2 = save_tiny_parts(tmp_path)
    sweep = SweepConfig(_train(clip, gpt2, steps=2, batch_size=4), methods=["prefix"])
    config = sweep.train_config("prefix", tmp_path / "cache", caption_tokens=35)  # 35 + 10 > 40 positions
    train = load_caption_dataset(shapes_world / "train.json", shapes_world / "images")
    with pytest.raises(VlkitError) as raised:
        train_method(config, train, None, tmp_path / "prefix")
    message = str(raised.value)
    assert (
        message.startswith("tuning prefix: CaptionerSpec.max_caption_tokens: 35 caption tokens")
        and "\n" not in message
    )


def _report_peak(queue) -> None:
    from vlkit.pipelines.method_runs import own_peak_rss_mib

    queue.put(own_peak_rss_mib())


def test_a_spawned_child_reports_its_own_peak_memory_not_its_parents():
    import multiprocessing

    import numpy as np

    held = np.ones(2 * 2**30 // 8)  # 2 GiB resident in this process while the child starts
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_report_peak, args=(queue,))
    child.start()
    peak = queue.get(timeout=120)
    child.join()
    assert held.sum() > 0
    assert 10 < peak < 2048, peak  # ru_maxrss would report at least this process's 2 GiB


def test_methods_trained_two_at_a_time_equal_those_trained_one_after_another(shapes_world, tmp_path):
    from vlkit.pipelines.method_runs import train_methods

    clip, _, gpt2 = save_tiny_parts(tmp_path)
    sweep = SweepConfig(_train(clip, gpt2, steps=3, batch_size=4), methods=["cross-attn", "ia3", "lora"])
    train = load_caption_dataset(shapes_world / "train.json", shapes_world / "images")
    weights = {}
    for processes in (1, 2):
        root = tmp_path / f"p{processes}"
        runs = [(sweep.train_config(m, root / "cache", 30), root / m) for m in sweep.methods]
        records = train_methods(runs, train, None, processes=processes)
        assert [r["config"]["captioner"]["tuning"] for r in records] == sweep.methods
        assert len([d for d in (root / "cache").iterdir() if d.is_dir()]) == 1  # one shared cache, built once
        weights[processes] = {m: load_captioner(root / m).model.state_dict() for m in sweep.methods}
    for method in sweep.methods:
        for name, tensor in weights[1][method].items():
            # one thread a child against torch's default: the same steps, to float rounding
            assert torch.allclose(tensor, weights[2][method][name], rtol=1e-4, atol=1e-6), (method, name)


def test_a_failing_method_among_parallel_ones_is_raised_and_the_others_finish(shapes_world, tmp_path):
    from vlkit.pipelines.method_runs import CHILD_RESULT, train_methods

    clip, _, gpt2 = save_tiny_parts(tmp_path)
    sweep = SweepConfig(_train(clip, gpt2, steps=2, batch_size=4), methods=["cross-attn", "prefix"])
    train = load_caption_dataset(shapes_world / "train.json", shapes_world / "images")
    runs = [
        (sweep.train_config("cross-attn", tmp_path / "cache", 30), tmp_path / "cross-attn"),
        (sweep.train_config("prefix", tmp_path / "cache", 35), tmp_path / "prefix"),  # 35 + 10 > 40
    ]
    with pytest.raises(VlkitError, match="^tuning prefix: "):
        train_methods(runs, train, None, processes=2)
    assert (tmp_path / "cross-attn" / CHILD_RESULT).is_file()
