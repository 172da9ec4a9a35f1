"""The captioner's optional connector: new layers between the image tokens and the decoder's cross-attention.

As BLIP-2's Q-Former or mPLUG-Owl's abstractor sit between a frozen encoder and a frozen LM: `attention`,
torch's own pre-norm `nn.TransformerEncoderLayer` over all tokens, or `local`, a convolution MLP that mixes
each patch token with its 3x3 neighbours. Cross-attention reads a weighted mean of the tokens' linear
projections, which cannot combine the several tokens an object spans non-linearly; a connector layer can.
transformers' `VisionEncoderDecoderModel` has no such slot (its `enc_to_dec_proj` is a linear map that exists
only when the widths differ), so the connector is a submodule of the captioner applied by a forward pre-hook
on the decoder: `model(...)`, `generate` and every vlkit path see it, and the encoder's feature cache stays
what the frozen encoder computes.
"""

from __future__ import annotations

import torch
from transformers import VisionEncoderDecoderModel

from vlkit.errors import VlkitError
from vlkit.models.captioner.config import CONNECTOR_KINDS, MAX_CONNECTOR_LAYERS
from vlkit.models.captioner.encoders import TokenLayout


class LocalMixer(torch.nn.Module):
    """One pre-norm residual layer that mixes each patch token with its 3x3 neighbours on the patch grid
    (a convolution, GELU, a linear map back): a non-linear reader of the tokens an object spans. An output
    token depends on its own neighbourhood only, so an attention map over them is off by at most one patch
    (the pointing game still falls with it: docs/embedded-default.md). The `prefix_tokens` before the grid
    (CLS, registers) pass unchanged."""

    def __init__(self, width: int, grid: tuple[int, int], prefix_tokens: int = 1):
        super().__init__()
        self.grid, self.prefix_tokens = grid, prefix_tokens
        self.norm = torch.nn.LayerNorm(width)
        self.mix = torch.nn.Conv2d(width, 2 * width, kernel_size=3, padding=1)
        self.out = torch.nn.Linear(2 * width, width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        rows, columns = self.grid
        prefix = self.prefix_tokens
        if tokens.shape[1] != prefix + rows * columns:
            raise VlkitError(
                f"connector: {tokens.shape[1]} image tokens, not the encoder's {prefix} prefix tokens and "
                f"{rows}x{columns} grid"
            )
        patches = tokens[:, prefix:]
        grid = self.norm(patches).transpose(1, 2).reshape(tokens.shape[0], -1, rows, columns)
        mixed = torch.nn.functional.gelu(self.mix(grid)).flatten(2).transpose(1, 2)
        return torch.cat([tokens[:, :prefix], patches + self.out(mixed)], dim=1)


class Connector(torch.nn.Module):
    """New layers over the (projected) image tokens, in the decoder's width: transformer layers (`attention`,
    torch's own pre-norm `TransformerEncoderLayer`) or local mixers (`local`)."""

    def __init__(self, width: int, heads: int, layers: int, kind: str, layout: TokenLayout):
        super().__init__()
        if kind == "local":
            self.layers = torch.nn.ModuleList(
                LocalMixer(width, layout.grid, layout.prefix_tokens) for _ in range(layers)
            )
        else:
            self.layers = torch.nn.ModuleList(
                torch.nn.TransformerEncoderLayer(
                    width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
                )
                for _ in range(layers)
            )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            tokens = layer(tokens)
        return tokens


def attach_connector(model: VisionEncoderDecoderModel, layers: int, kind: str, layout: TokenLayout) -> None:
    """Give `model` a connector of `layers` new layers of `kind` (none for 0) over image tokens laid out as
    `layout` (the encoder's); record the layers and kind in its config."""
    if not isinstance(layers, int) or isinstance(layers, bool) or not 0 <= layers <= MAX_CONNECTOR_LAYERS:
        raise VlkitError(f"connector_layers must be between 0 and {MAX_CONNECTOR_LAYERS}, got {layers!r}")
    if kind not in CONNECTOR_KINDS:
        raise VlkitError(f"connector must be one of {', '.join(CONNECTOR_KINDS)}, got {kind!r}")
    model.config.connector_layers, model.config.connector_kind = layers, kind
    if layers == 0:
        return
    decoder = model.decoder.config
    model.connector = Connector(int(decoder.n_embd), int(decoder.n_head), layers, kind, layout)

    def through_connector(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        tokens = kwargs.get("encoder_hidden_states")
        if tokens is not None:
            kwargs["encoder_hidden_states"] = model.connector(tokens)
        return args, kwargs

    model.decoder.register_forward_pre_hook(through_connector, with_kwargs=True)
