"""Where the decoder looked: per generated token, its cross-attention over the image tokens as a map.

`vlkit.captioning.generate` returns, per image, the cross-attention each generated token was produced with,
shaped (tokens, layers, heads, image tokens). This module reduces it to one map per token over the encoder's
patch grid: heads by their mean or max, layers by one chosen layer, their mean, or a rollout-style product
(the per-layer maps multiplied patch by patch and renormalized: a patch ranks high only when every layer
attends to it). Image tokens before the grid (the encoder's prefix tokens: CLS, a timm ViT's registers, as
`Captioner.prefix_tokens()` counts them) are taken out, and their share of the attention is kept apart, so a
map is a distribution over the encoder's `Captioner.patch_grid()`. Nothing in transformers or the plotting
libraries does this for cross-attention (attention-rollout code exists for encoders' self-attention), hence
the few functions here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from vlkit.errors import VlkitError

HEAD_REDUCTIONS = ("mean", "max")
LAYER_REDUCTIONS = ("mean", "rollout", "last")  # or a layer index, 0-based


@dataclass(frozen=True)
class Aggregation:
    """How to reduce (layers, heads) to one map: `layers` is "mean", "rollout", "last" or an index."""

    heads: str = "mean"
    layers: str | int = "mean"

    @property
    def name(self) -> str:
        return f"heads={self.heads},layers={self.layers}"

    @staticmethod
    def parse(heads: str, layers: str) -> Aggregation:
        if heads not in HEAD_REDUCTIONS:
            raise VlkitError(f"--heads: unknown {heads!r} (choose {', '.join(HEAD_REDUCTIONS)})")
        if layers not in LAYER_REDUCTIONS:
            try:
                return Aggregation(heads, int(layers))
            except ValueError:
                raise VlkitError(
                    f"--layers: unknown {layers!r} (choose {', '.join(LAYER_REDUCTIONS)} or a layer index)"
                ) from None
        return Aggregation(heads, layers)


def all_aggregations(n_layers: int) -> list[Aggregation]:
    """Every reduction worth comparing: both head reductions x (mean, rollout, each layer)."""
    layer_choices: list[str | int] = ["mean", "rollout", *range(n_layers)]
    return [Aggregation(h, layer) for h in HEAD_REDUCTIONS for layer in layer_choices]


@dataclass
class TokenMaps:
    """One image's maps: (tokens, rows, columns), each a distribution over patches, and the prefix share."""

    maps: np.ndarray
    prefix_share: np.ndarray  # (tokens,) attention on the prefix tokens (CLS, registers), not renormalized


def token_maps(
    attentions: torch.Tensor, grid: tuple[int, int], prefix_tokens: int, aggregation: Aggregation
) -> TokenMaps:
    """(tokens, layers, heads, image tokens) cross-attention -> per-token maps over the patch grid."""
    if attentions.dim() != 4:
        raise VlkitError(
            f"attention must be (tokens, layers, heads, image tokens), got {tuple(attentions.shape)}"
        )
    rows, columns = grid
    n_tokens, n_layers, _, n_image = attentions.shape
    if n_image != prefix_tokens + rows * columns:
        raise VlkitError(
            f"attention covers {n_image} image tokens, but the grid {rows}x{columns} plus {prefix_tokens} "
            "prefix tokens makes a different number"
        )
    attn = attentions.float()
    per_layer = attn.mean(dim=2) if aggregation.heads == "mean" else attn.amax(dim=2)  # (T, L, N)
    prefix_share = per_layer[..., :prefix_tokens].sum(-1).mean(-1) if prefix_tokens else torch.zeros(n_tokens)
    patches = _normalize(per_layer[..., prefix_tokens:])  # (T, L, P)
    layers = aggregation.layers
    if layers == "mean":
        reduced = patches.mean(dim=1)
    elif layers == "rollout":
        # In log space: a product of many small numbers would underflow.
        reduced = torch.softmax(torch.log(patches.clamp_min(1e-12)).sum(dim=1), dim=-1)
    else:
        index = n_layers - 1 if layers == "last" else int(layers)
        if not -n_layers <= index < n_layers:
            raise VlkitError(f"--layers: layer {index} does not exist (the decoder has {n_layers})")
        reduced = patches[:, index]
    maps = _normalize(reduced).reshape(n_tokens, rows, columns)
    return TokenMaps(maps.numpy(), prefix_share.numpy())


def _normalize(values: torch.Tensor) -> torch.Tensor:
    total = values.sum(dim=-1, keepdim=True)
    uniform = torch.full_like(values, 1.0 / values.shape[-1])
    return torch.where(total > 0, values / total.clamp_min(1e-30), uniform)


def upsample(grid_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (rows, columns) map -> (height, width), bilinear, renormalized to sum to 1. `size` is (w, h)."""
    image = Image.fromarray(grid_map.astype(np.float32), mode="F").resize(size, Image.Resampling.BILINEAR)
    out = np.asarray(image, dtype=np.float64).clip(min=0)
    total = out.sum()
    return out / total if total > 0 else np.full(out.shape, 1.0 / out.size)


def attention_maps(output: Any, index: int, aggregation: Aggregation | None = None) -> TokenMaps:
    """The per-word maps of image `index` of a `caption_images(..., return_attentions=True)` output: one
    (rows, columns) distribution over the patch grid per generated token, reduced by `aggregation` (default:
    the mean over heads and layers)."""
    if output.attentions is None:
        raise VlkitError("attention_maps: caption the images with return_attentions=True")
    return token_maps(
        output.attentions[index], output.patch_grid, output.prefix_tokens, aggregation or Aggregation()
    )
