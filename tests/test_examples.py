"""The example files the README points to stay valid for the installed libraries."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import torch
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.launch import prepare_multi_gpu_env

import vlkit.attend as attend
from tests.models.tiny_captioner import save_tiny_parts
from vlkit.models.captioner import CaptionerSpec, build_captioner, load_captioner

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


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_connector_relevance_example_reads_maps_back_through_the_connector(
    shapes_world, tmp_path, monkeypatch, capsys
):
    example = _example("connector_relevance_maps")
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
