"""The video captioner's temporal module: frame tokens over time, read by the decoder's cross-attention.

A video captioner runs its (image) encoder on every sampled frame. Each frame's tokens are pooled to a few
(`pool_frame_tokens`: the CLS token, or the patches' mean for an encoder without one, plus the patch grid
average-pooled to `frame_pool` x `frame_pool`), so cross-attention over 8 frames stays as short as over one
image. The frames' pooled tokens, laid out frame after frame as (B, frames * frame tokens, C), are what the
encoder "outputs" (and what the feature cache stores); the temporal module turns them into the tokens the
decoder reads:

    meanp    the mean over frames, token by token (CLIP4Clip's meanP): (B, frame tokens, D), blind to order
    concat   every frame's tokens, each frame with a learned temporal embedding: (B, frames * frame tokens, D)
    seq      concat's tokens through a small transformer (torch's `nn.TransformerEncoderLayer`, pre-norm):
             every token sees every frame's, so a change between frames becomes a feature

As the connector (`connector.py`), the module is a submodule of the captioner applied by a forward pre-hook
on the decoder, after transformers' `enc_to_dec_proj` (so in the decoder's width), before the connector's
own hook: `model(...)`, `generate`, and every tuning method see it, and the features stay what the frozen
encoder computes. Its settings live in config.json (`temporal`, `frames`, `frame_pool`, `temporal_layers`),
its weights in model.safetensors. transformers and torch have no video pooling of this kind for a
`VisionEncoderDecoderModel` (its video models are whole architectures), hence the few lines here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import VisionEncoderDecoderModel

from vlkit.errors import VlkitError
from vlkit.models.captioner.encoders import TokenLayout

TEMPORAL_KINDS = ("meanp", "concat", "seq")
MAX_FRAME_POOL = 8
MAX_TEMPORAL_LAYERS = 4


@dataclass(frozen=True)
class VideoSettings:
    """How a video captioner reads frames: the temporal module, the most frames it reads (the size of the
    temporal embedding table), the pooled grid side per frame, the transformer layers of `seq`, and how its
    frames are sampled from a clip."""

    temporal: str
    frames: int = 8
    frame_pool: int = 2
    temporal_layers: int = 1
    frame_sampling: str = "uniform"  # how clips are sampled for it (`vlkit.data.video.VideoSampling.mode`)

    @property
    def frame_tokens(self) -> int:
        """Tokens per frame after pooling: one summary token plus the pooled grid."""
        return 1 + self.frame_pool * self.frame_pool

    def check(self) -> None:
        if self.temporal not in TEMPORAL_KINDS:
            raise VlkitError(f"temporal: must be one of {', '.join(TEMPORAL_KINDS)}, got {self.temporal!r}")
        if not 1 <= self.frames <= 256:
            raise VlkitError(f"frames: must be between 1 and 256, got {self.frames}")
        if not 0 <= self.frame_pool <= MAX_FRAME_POOL:
            raise VlkitError(f"frame_pool: must be between 0 and {MAX_FRAME_POOL}, got {self.frame_pool}")
        if not 1 <= self.temporal_layers <= MAX_TEMPORAL_LAYERS:
            raise VlkitError(
                f"temporal_layers: must be between 1 and {MAX_TEMPORAL_LAYERS}, got {self.temporal_layers}"
            )

    @staticmethod
    def of(model: VisionEncoderDecoderModel) -> VideoSettings | None:
        """A model's settings from its config, or None for an image captioner."""
        config = model.config
        kind = getattr(config, "temporal", None)
        if not kind:
            return None
        return VideoSettings(
            kind,
            int(getattr(config, "frames", 8)),
            int(getattr(config, "frame_pool", 2)),
            int(getattr(config, "temporal_layers", 1)),
            str(getattr(config, "frame_sampling", "uniform")),
        )


def pool_frame_tokens(tokens: torch.Tensor, layout: TokenLayout, frame_pool: int) -> torch.Tensor:
    """(frames, N, C) encoder tokens laid out as `layout` -> (frames, 1 + frame_pool**2, C): the first prefix
    token (CLS; the patches' mean when there is none), then the patch grid average-pooled to frame_pool x
    frame_pool (torch's `adaptive_avg_pool2d`), row by row."""
    if tokens.shape[1] != layout.tokens:
        raise VlkitError(
            f"frame tokens: {tokens.shape[1]} per frame, not the encoder's {layout.prefix_tokens} prefix "
            f"tokens and {layout.grid[0]}x{layout.grid[1]} grid"
        )
    patches = tokens[:, layout.prefix_tokens :]  # (F, P, C)
    summary = tokens[:, :1] if layout.prefix_tokens else patches.mean(dim=1, keepdim=True)  # (F, 1, C)
    if frame_pool == 0:
        return summary
    rows, columns = layout.grid
    grid = patches.transpose(1, 2).reshape(len(tokens), -1, rows, columns)  # (F, C, rows, columns)
    pooled = torch.nn.functional.adaptive_avg_pool2d(grid, frame_pool).flatten(2).transpose(1, 2)
    return torch.cat([summary, pooled], dim=1)  # (F, 1 + pool**2, C)


class TemporalModule(torch.nn.Module):
    """meanp, concat or seq over (B, frames * frame tokens, D) tokens in the decoder's width."""

    def __init__(self, settings: VideoSettings, width: int, heads: int):
        super().__init__()
        settings.check()
        self.kind, self.frame_tokens, self.frames = settings.temporal, settings.frame_tokens, settings.frames
        if self.kind != "meanp":
            self.frame_embedding = torch.nn.Parameter(torch.randn(settings.frames, width) * 0.02)
        if self.kind == "seq":
            self.layers = torch.nn.ModuleList(
                torch.nn.TransformerEncoderLayer(
                    width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
                )
                for _ in range(settings.temporal_layers)
            )

    def split_frames(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, frames * frame tokens, D) -> (B, frames, frame tokens, D), with a one-line error otherwise."""
        batch, length, width = tokens.shape
        frames, rest = divmod(length, self.frame_tokens)
        if rest or not 1 <= frames <= self.frames:
            raise VlkitError(
                f"temporal: {length} video tokens are not 1 to {self.frames} frames of {self.frame_tokens} "
                "tokens (frames read at most, frame_pool as trained)"
            )
        return tokens.reshape(batch, frames, self.frame_tokens, width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        frames = self.split_frames(tokens)  # (B, F, T, D)
        if self.kind == "meanp":
            return frames.mean(dim=1)  # (B, T, D)
        count = frames.shape[1]
        timed = frames + self.frame_embedding[:count, None, :]  # (B, F, T, D)
        out = timed.flatten(1, 2)  # (B, F * T, D)
        if self.kind == "seq":
            for layer in self.layers:
                out = layer(out)
        return out

    def output_frames(self, frames: int) -> int:
        """Frames the output tokens are laid out over (0 for meanp, whose tokens belong to no frame)."""
        return 0 if self.kind == "meanp" else frames


def attach_temporal(model: VisionEncoderDecoderModel, settings: VideoSettings | None) -> None:
    """Give `model` the temporal module of `settings` (nothing for an image captioner) and record the settings
    in its config; its hook must be registered before the connector's (it runs first)."""
    if settings is None:
        return
    settings.check()
    config = model.config
    config.temporal, config.frames = settings.temporal, settings.frames
    config.frame_pool, config.temporal_layers = settings.frame_pool, settings.temporal_layers
    config.frame_sampling = settings.frame_sampling
    decoder = model.decoder.config
    model.temporal = TemporalModule(settings, int(decoder.n_embd), int(decoder.n_head))

    def through_temporal(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        tokens = kwargs.get("encoder_hidden_states")
        if tokens is not None:
            kwargs["encoder_hidden_states"] = model.temporal(tokens)
        return args, kwargs

    model.decoder.register_forward_pre_hook(through_temporal, with_kwargs=True)


def encode_frame_pixels(
    model: VisionEncoderDecoderModel, pixels: torch.Tensor, layout: TokenLayout, frame_pool: int
) -> torch.Tensor:
    """(B, F, 3, H, W) frames -> (B, F * frame tokens, C) pooled encoder tokens, with the gradient when the
    caller allows it (a method that trains the encoder)."""
    batch, frames = pixels.shape[:2]
    dtype = next(model.encoder.parameters()).dtype
    tokens = model.encoder(pixel_values=pixels.flatten(0, 1).to(dtype)).last_hidden_state  # (B * F, N, C)
    pooled = pool_frame_tokens(tokens, layout, frame_pool)  # (B * F, T, C)
    return pooled.reshape(batch, frames * pooled.shape[1], pooled.shape[2])
