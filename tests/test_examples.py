"""The example files the README points to stay valid for the installed libraries."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import torch
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.launch import prepare_multi_gpu_env
from PIL import Image

import vlkit.pipelines.attend as attend
from tests.models.tiny import save_tiny_clip
from tests.models.tiny_captioner import save_tiny_parts
from vlkit.captioning.generate import caption_images
from vlkit.data.captions import load_caption_dataset
from vlkit.data.classification import load_classification_dataset
from vlkit.data.images import read_image
from vlkit.models.captioner.model import CaptionerSpec, build_captioner, load_captioner
from vlkit.models.clip import load_clip
from vlkit.zeroshot.classifier import analyse_prompts, resolve_templates

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_the_fsdp_config_is_read_by_accelerate_and_wraps_the_captioners_decoder_blocks(tmp_path, monkeypatch):
    # What `accelerate launch --config_file` does with the file, up to the FSDP plugin each process builds
    config = EXAMPLES / "accelerate" / "fsdp_caption_decoder.yaml"
    args, *_ = _validate_launch_command(
        launch_command_parser().parse_args(["--config_file", str(config), "x.py"])
    )
    for name, value in prepare_multi_gpu_env(args).items():
        if name.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(name, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.transformer_cls_names_to_wrap == ["GPT2Block"]
    clip, _, gpt2 = save_tiny_parts(tmp_path)
    captioner = build_captioner(CaptionerSpec(str(clip), str(gpt2), "full", None, 8))
    blocks = [m for m in captioner.model.decoder.modules() if type(m).__name__ == "GPT2Block"]
    assert len(blocks) == captioner.model.decoder.config.n_layer


def _example(name: str, folder: str = ""):
    """The example `EXAMPLES/folder/name.py`, loaded as a module."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_connector_relevance_example_reads_maps_back_through_the_connector(
    shapes_world, tmp_path, monkeypatch, capsys
):
    example = _example("connector_relevance_maps", "research")
    clip, _, gpt2 = save_tiny_parts(tmp_path)  # CLIP width 32, GPT-2 24: the connector reads projected tokens
    spec = CaptionerSpec(str(clip), str(gpt2), "cross-attn", None, 8, connector_layers=1, connector="local")
    folder = build_captioner(spec).save(tmp_path / "captioner")
    model = load_captioner(folder).model
    rows, columns = model.connector.layers[0].grid
    n = 1 + rows * columns  # CLS, then the patch grid row by row
    relevance = example.connector_relevance(model.connector, torch.randn(2, n, model.decoder.config.n_embd))
    assert relevance.shape == (2, n, n) and torch.allclose(relevance.sum(-1), torch.ones(2, n))
    assert torch.equal(relevance[:, 0], torch.eye(n)[0].expand(2, n))  # CLS passes unchanged
    for j in range(rows * columns):  # a patch depends on its 3x3 neighbours only, never on CLS
        near = [
            1 + i
            for i in range(rows * columns)
            if abs(i // columns - j // columns) <= 1 and abs(i % columns - j % columns) <= 1
        ]
        far = [i for i in range(n) if i not in near]
        assert (relevance[:, 1 + j, near] > 0).all() and (relevance[:, 1 + j, far] == 0).all()
    monkeypatch.setattr(attend, "caption_images", attend.caption_images)  # the example swaps it: put it back
    out = tmp_path / "relevance"
    argv = ["x", "--model", str(folder), "--annotations", str(shapes_world / "val.json"), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    example.main()
    grounding = json.loads((out / "grounding.json").read_text())
    assert grounding["n_images"] == 20
    assert "heads=mean,layers=0" in {a["name"] for a in grounding["aggregations"]}
    printed = capsys.readouterr().out
    assert "pointing game" in printed or "no generated word" in printed


@pytest.fixture(scope="module")
def tiny_captioner(tmp_path_factory) -> Path:
    """A captioner folder of tiny random parts (CLIP encoder, cross-attn tuning, 8 caption tokens)."""
    root = tmp_path_factory.mktemp("tiny_captioner")
    clip, _, gpt2 = save_tiny_parts(root)
    return build_captioner(CaptionerSpec(str(clip), str(gpt2), "cross-attn", None, 8)).save(
        root / "captioner"
    )


def _run(example, monkeypatch, capsys, *args: str) -> list[str]:
    """Run the example's main() with these command-line arguments; its printed lines."""
    monkeypatch.setattr(sys, "argv", ["x", *map(str, args)])
    example.main()
    return capsys.readouterr().out.splitlines()


def test_the_zeroshot_example_prints_each_templates_top1_and_the_ensembles(
    shapes_world, tmp_path, monkeypatch, capsys
):
    clip = save_tiny_clip(tmp_path / "clip")
    data = shapes_world / "classification" / "val"
    lines = _run(_example("zeroshot"), monkeypatch, capsys, "--model", clip, "--data", data)
    scores = [re.fullmatch(r"\s*(\d+\.\d)%  (.+)", line) for line in lines[1:]]
    assert all(scores), lines
    assert [m[2] for m in scores] == [*resolve_templates("seed"), "ensemble"]
    dataset = load_classification_dataset(data)
    analysis = analyse_prompts(
        load_clip(str(clip)), dataset.paths, dataset.labels, dataset.class_names, resolve_templates("seed")
    )
    assert [m[1] for m in scores] == [f"{s.top1:.1%}"[:-1] for s in [*analysis.templates, analysis.ensemble]]
    assert lines[0] == f"{len(dataset)} images, {len(dataset.class_names)} classes, 3 templates"


def test_the_train_example_writes_a_loadable_captioner_and_reports_the_best_cider(
    shapes_world, tmp_path, monkeypatch, capsys
):
    clip, _, gpt2 = save_tiny_parts(tmp_path)
    out = tmp_path / "out"
    args = ["--data", shapes_world, "--encoder", clip, "--decoder", gpt2, "--steps", "2", "--out", out]
    lines = _run(_example("train_captioner"), monkeypatch, capsys, *args)
    assert lines[0].startswith("cross-attn: ") and "parameters train" in lines[0]
    assert re.fullmatch(r"best validation CIDEr-D \d+\.\d{4} at step [12]: .*best", lines[-1]), lines
    for folder in (out, out / "best"):
        captioner = load_captioner(folder)
        assert captioner.tuning == "cross-attn" and captioner.max_caption_tokens == 32
        assert lines[0] == f"cross-attn: {captioner.parameter_count().describe()}"
    assert json.loads((out / "vlkit_caption_result.json").read_text())["steps"] == 2


def test_the_caption_example_prints_one_caption_per_image(shapes_world, tiny_captioner, monkeypatch, capsys):
    paths = sorted((shapes_world / "images").glob("*.png"))[:3]
    lines = _run(_example("caption_images"), monkeypatch, capsys, "--model", tiny_captioner, *paths)
    expected = caption_images(load_captioner(tiny_captioner), [read_image(p) for p in paths]).captions
    assert lines == [f"{path.name}: {caption}" for path, caption in zip(paths, expected, strict=True)]


def test_the_evaluate_example_prints_every_metric_a_number_or_why_not(
    shapes_world, tmp_path, monkeypatch, capsys
):
    val = load_caption_dataset(shapes_world / "val.json", shapes_world / "images")
    predictions = {image.stem: image.captions[0] for image in val.images[:5]}
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(predictions))
    example = _example("evaluate_captions")
    world = shapes_world
    args = ["--predictions", pred, "--annotations", world / "val.json", "--images", world / "images"]
    lines = _run(example, monkeypatch, capsys, *args)
    assert lines[0] == f"5 of {len(val)} images scored"
    metrics = dict(line.split(": ", 1) for line in lines[1:])
    assert {"cider", "bleu_4", "meteor", "rouge_l", "clip_score", "ref_clip_score"} <= set(metrics), metrics
    assert float(metrics["cider"]) > 0  # each prediction is one of its references
    assert metrics["clip_score"] == metrics["ref_clip_score"] == "unavailable: no clip given"
    for value in metrics.values():
        assert re.fullmatch(r"\d+\.\d{4}", value) or value.startswith("unavailable: "), value
    clip = save_tiny_clip(tmp_path / "clip")
    lines = _run(
        example, monkeypatch, capsys, *args, "--clip", clip, "--metrics", "clip_score,ref_clip_score"
    )
    metrics = dict(line.split(": ", 1) for line in lines[1:])
    assert list(metrics) == ["clip_score", "ref_clip_score"]
    assert re.fullmatch(r"-?\d+\.\d{4}", metrics["clip_score"]), metrics
    assert re.fullmatch(r"-?\d+\.\d{4}", metrics["ref_clip_score"]), metrics


def test_the_attention_example_draws_one_panel_per_generated_token(
    shapes_world, tiny_captioner, tmp_path, monkeypatch, capsys
):
    image = sorted((shapes_world / "images").glob("*.png"))[0]
    out = tmp_path / "maps" / "attention.png"
    lines = _run(
        _example("attention_maps"), monkeypatch, capsys, "--model", tiny_captioner, image, "--out", out
    )
    expected = caption_images(load_captioner(tiny_captioner), [read_image(image)])
    assert lines == [f"{expected.captions[0]!r}: {len(expected.tokens[0])} token maps -> {out}"]
    with Image.open(out) as png:  # 2.2 x 2.6 inches a panel at 100 dpi: one panel per token
        assert png.format == "PNG" and png.size == (round(220 * len(expected.tokens[0])), 260)
