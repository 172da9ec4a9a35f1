"""The vision encoders a captioner takes, as plain data keyed by the checkpoint config's `model_type`: the
transformers class that holds each, how its image tokens are laid out, and what its config needs first.

Every encoder gives a token sequence (B, N, C) as `last_hidden_state`: `prefix_tokens` tokens that belong to
no patch (CLS, registers) first, then the patch grid row by row. The layout comes from the encoder itself
(its config, or the timm model's own `num_prefix_tokens` and `patch_embed.grid_size`), never from the name,
so the attention maps and the local connector cut the token axis where the encoder put its patches.
transformers loads hub ViTs, CLIPs and SigLIPs natively and timm models through its `TimmWrapperModel`;
open_clip towers go through `open_clip_tower`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transformers import (
    CLIPVisionModel,
    PreTrainedModel,
    SiglipVisionModel,
    TimmWrapperModel,
    ViTModel,
)

from vlkit.errors import VlkitError
from vlkit.models.captioner.open_clip_tower import MODEL_TYPE as OPEN_CLIP_TYPE
from vlkit.models.captioner.open_clip_tower import OpenClipVisionModel
from vlkit.models.captioner.preprocessing import open_clip_image_processor

EXTRA_HINT = "pip install 'vlkit[openclip]' (timm, open_clip and torchvision)"


@dataclass(frozen=True)
class TokenLayout:
    """An encoder's image tokens: `prefix_tokens` (CLS, registers), then a (rows, columns) patch grid."""

    prefix_tokens: int
    grid: tuple[int, int]

    @property
    def tokens(self) -> int:
        return self.prefix_tokens + self.grid[0] * self.grid[1]


@dataclass(frozen=True)
class EncoderKind:
    """A transformers vision model class whose `last_hidden_state` is the image tokens, its options, how its
    tokens are laid out, for checkpoints transformers cannot build as they are a config fix applied before
    building (`prepare`) and a check of the built encoder (`finish`), and for encoders without a
    transformers image processor of their own, the one made from the built encoder (`image_processor`).
    Each hook gets the name to report in errors."""

    model_class: type[PreTrainedModel]
    layout: Callable[[PreTrainedModel], TokenLayout]
    options: dict[str, Any] = field(default_factory=dict)
    prepare: Callable[[Any, str], Any] | None = None
    finish: Callable[[PreTrainedModel, str], None] | None = None
    image_processor: Callable[[PreTrainedModel, str], Any] | None = None

    def build(self, config: Any, source: str) -> PreTrainedModel:
        """An encoder of this kind made from `config` alone (a saved captioner's: its weights load next)."""
        if self.prepare is not None:
            config = self.prepare(config, source)
        try:
            encoder = self.model_class(config, **self.options)
        except ImportError as exc:  # transformers' word for a timm architecture the installed timm lacks
            raise VlkitError(f"{source}: {exc}".splitlines()[0]) from exc
        if self.finish is not None:
            self.finish(encoder, source)
        return encoder


def _square_grid(prefix_tokens: int) -> Callable[[PreTrainedModel], TokenLayout]:
    """transformers' ViT-family layout: `prefix_tokens`, then (image_size // patch_size) squared patches."""

    def layout(encoder: PreTrainedModel) -> TokenLayout:
        side = int(encoder.config.image_size) // int(encoder.config.patch_size)
        return TokenLayout(prefix_tokens, (side, side))

    return layout


def timm_layout(encoder: PreTrainedModel) -> TokenLayout:
    """A timm ViT's own count of prefix tokens (class token and registers) and its patch grid."""
    model = encoder.timm_model
    rows, columns = (int(n) for n in model.patch_embed.grid_size)
    return TokenLayout(int(model.num_prefix_tokens), (rows, columns))


def open_clip_layout(encoder: PreTrainedModel) -> TokenLayout:
    """The layout the tower's config recorded when it was made (class token, then the patch grid)."""
    rows, columns = (int(n) for n in encoder.config.patch_grid)
    return TokenLayout(int(encoder.config.prefix_tokens), (rows, columns))


def open_clip_processor(encoder: PreTrainedModel, source: str) -> Any:
    return open_clip_image_processor(encoder.config.preprocess_cfg, source)


def prepare_timm_config(config: Any, source: str) -> Any:
    """A timm checkpoint's config, ready for `TimmWrapperModel`.

    timm's own `save_for_hf` records `num_classes` among the model arguments while `TimmWrapperModel` passes
    `num_classes=0` itself (no classifier head), and the two together are a TypeError: the recorded one goes.
    The pooled vector is not computed (the decoder reads the tokens)."""
    require_library("timm", source)
    arguments = {k: v for k, v in (config.model_args or {}).items() if k != "num_classes"}
    config.model_args = arguments or None
    config.do_pooling = False
    return config


def finish_timm_encoder(encoder: PreTrainedModel, source: str) -> None:
    """Refuse a timm model without a patch-token layout (a CNN's features are a map, not tokens), and give the
    config the `hidden_size` that `VisionEncoderDecoderModel` sizes its projection from (timm's lacks it)."""
    model = encoder.timm_model
    patch_embed = getattr(model, "patch_embed", None)
    if not hasattr(model, "num_prefix_tokens") or not hasattr(patch_embed, "grid_size"):
        raise VlkitError(
            f"{source}: timm model {encoder.config.architecture!r} gives no patch tokens (expected a "
            "ViT-family model, with num_prefix_tokens and patch_embed.grid_size)"
        )
    encoder.config.hidden_size = int(model.num_features)


def require_library(module: str, source: str) -> None:
    """A one-line error naming the extra when an optional library (timm, open_clip) is not installed."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise VlkitError(f"{source}: needs {module}, which is not installed: {EXTRA_HINT}") from exc


# A whole CLIP or SigLIP checkpoint loads as its vision tower; ViT's pooler is left out because the decoder
# reads the tokens, never the pooled vector. SigLIP has no class token.
ENCODER_KINDS: dict[str, EncoderKind] = {
    "clip": EncoderKind(CLIPVisionModel, _square_grid(1)),
    "clip_vision_model": EncoderKind(CLIPVisionModel, _square_grid(1)),
    "siglip": EncoderKind(SiglipVisionModel, _square_grid(0)),
    "siglip_vision_model": EncoderKind(SiglipVisionModel, _square_grid(0)),
    "vit": EncoderKind(ViTModel, _square_grid(1), {"add_pooling_layer": False}),
    "timm_wrapper": EncoderKind(
        TimmWrapperModel, timm_layout, prepare=prepare_timm_config, finish=finish_timm_encoder
    ),
    OPEN_CLIP_TYPE: EncoderKind(OpenClipVisionModel, open_clip_layout, image_processor=open_clip_processor),
}


def encoder_kind(model_type: str, source: str) -> EncoderKind:
    """The kind of an encoder config's `model_type`, or a one-line error naming `source` and the supported."""
    kind = ENCODER_KINDS.get(model_type)
    if kind is None:
        raise VlkitError(
            f"{source}: model type {model_type!r} is not a supported vision encoder "
            f"(supported: {', '.join(ENCODER_KINDS)})"
        )
    return kind
