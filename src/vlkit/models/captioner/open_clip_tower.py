"""An open_clip vision tower as a transformers model, so that `VisionEncoderDecoderModel` can hold it.

`OpenClipVisionModel` wraps the `visual` of an open_clip CLIP (`--encoder open_clip:ARCH/PRETRAINED`) and
returns as `last_hidden_state` its token sequence after the final layer norm: the class token, then the patch
grid row by row. open_clip's `forward_intermediates` gives exactly these (it splits the class token off; it
is put back in front, where the sequence had it), whereas `output_tokens=True` drops the class token and
skips the norm in some configurations. Its config records the architecture, the token layout and the
preprocessing, so a saved captioner rebuilds the tower with `pretrained=None` (nothing downloaded) and loads
its own weights. transformers knows nothing of open_clip, hence this adapter; `register_open_clip_config`
lets `AutoConfig`, and so `VisionEncoderDecoderConfig.from_pretrained`, read its config type.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput

from vlkit.errors import VlkitError
from vlkit.models.clip import OPEN_CLIP_PREFIX
from vlkit.models.open_clip_models import create_open_clip, parse_open_clip_name

MODEL_TYPE = "open_clip_vision"


@strict
class OpenClipVisionConfig(PreTrainedConfig):
    """What rebuilds an open_clip tower: its architecture (and, as a record, the weights' tag and open_clip's
    vision config of it), the width and layout of its tokens, and open_clip's preprocess config."""

    model_type = MODEL_TYPE

    arch: str = "ViT-B-32"
    pretrained: str | None = None
    vision_cfg: dict[str, Any] | None = None
    hidden_size: int = 768
    patch_grid: list[int] | None = None
    prefix_tokens: int = 1
    preprocess_cfg: dict[str, Any] | None = None


class OpenClipVisionModel(PreTrainedModel):
    """An open_clip `VisionTransformer` whose forward returns its tokens (B, 1 + rows * columns, width)."""

    config_class = OpenClipVisionConfig
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: OpenClipVisionConfig, visual: torch.nn.Module | None = None):
        super().__init__(config)
        self.visual = visual if visual is not None else _rebuild_visual(config)
        # Only the tokens are read: the projection into CLIP's joint space goes (open_clip's own pruning).
        self.visual.prune_intermediate_layers(indices=1, prune_norm=False, prune_head=True)
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:
        """Nothing: the weights are open_clip's pretrained ones, or the saved captioner's, loaded next."""

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> BaseModelOutput:
        out = self.visual.forward_intermediates(
            pixel_values,
            indices=1,
            normalize_intermediates=True,  # the final layer norm, as CLIP applies it before pooling
            intermediates_only=True,
            output_fmt="NLC",
            output_extra_tokens=True,
        )
        prefix, patches = out["image_intermediates_prefix"][-1], out["image_intermediates"][-1]
        return BaseModelOutput(last_hidden_state=torch.cat([prefix, patches], dim=1))  # (B, 1 + P, C)


def register_open_clip_config() -> None:
    """Let `AutoConfig` read an `open_clip_vision` config (a saved captioner's encoder). Called by the
    captioner's build and load, not on import; calling it again changes nothing."""
    AutoConfig.register(MODEL_TYPE, OpenClipVisionConfig, exist_ok=True)


def is_open_clip_name(name: str) -> bool:
    return name.startswith(OPEN_CLIP_PREFIX)


def load_open_clip_tower(name: str) -> OpenClipVisionModel:
    """The vision tower of `open_clip:ARCH/PRETRAINED` (no tag: random weights), with its layout recorded."""
    model, _ = create_open_clip(name)  # first: it names the extra when open_clip is not installed
    import open_clip
    from open_clip.transformer import VisionTransformer

    visual = model.visual
    if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None:
        raise VlkitError(
            f"--encoder {name}: its vision tower ({type(visual).__name__}"
            f"{', attentional pooler' if isinstance(visual, VisionTransformer) else ''}) gives no patch "
            "tokens; open_clip ViT towers do"
        )
    arch, pretrained = parse_open_clip_name(name)
    config = OpenClipVisionConfig(
        arch=arch,
        pretrained=pretrained,
        vision_cfg=_plain(open_clip.get_model_config(arch)["vision_cfg"]),
        hidden_size=int(visual.transformer.width),
        patch_grid=[int(n) for n in visual.grid_size],
        prefix_tokens=1,
        preprocess_cfg=_plain(visual.preprocess_cfg),
    )
    return OpenClipVisionModel(config, visual)


def _rebuild_visual(config: OpenClipVisionConfig) -> torch.nn.Module:
    """The tower of `config.arch` with random weights, after checking open_clip still defines it as it did."""
    source = f"{OPEN_CLIP_PREFIX}{config.arch}"
    try:
        import open_clip
    except ImportError as exc:
        raise VlkitError(f"{source}: open_clip models need the extra: pip install 'vlkit[openclip]'") from exc
    known = open_clip.get_model_config(config.arch)
    if known is None:
        raise VlkitError(f"{source}: the installed open_clip has no architecture {config.arch!r}")
    if config.vision_cfg is not None and _plain(known["vision_cfg"]) != config.vision_cfg:
        raise VlkitError(
            f"{source}: the installed open_clip defines its vision tower differently from the one saved "
            f"({_plain(known['vision_cfg'])} against {config.vision_cfg})"
        )
    with _quiet_open_clip(open_clip):  # it would warn that the weights are random; they are loaded next
        return open_clip.create_model(config.arch, pretrained=None).visual


def _plain(value: Any) -> Any:
    """As JSON holds it (tuples become lists), so a saved config compares equal to a fresh one."""
    return json.loads(json.dumps(value))


@contextlib.contextmanager
def _quiet_open_clip(module: Any) -> Iterator[None]:
    """Drop open_clip's warnings (it logs on the root logger) while a tower is rebuilt for loading."""
    package = str(Path(module.__file__).parent)

    def not_open_clip(record: logging.LogRecord) -> bool:
        return not record.pathname.startswith(package)

    root = logging.getLogger()
    root.addFilter(not_open_clip)
    try:
        yield
    finally:
        root.removeFilter(not_open_clip)
