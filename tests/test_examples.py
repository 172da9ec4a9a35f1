"""The example files the README points to stay valid for the installed libraries."""

from __future__ import annotations

from pathlib import Path

from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.launch import prepare_multi_gpu_env

from tests.models.tiny_captioner import save_tiny_parts
from vlkit.models.captioner import CaptionerSpec, build_captioner

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
