"""`adapter`: the new weights plus Houlsby-style bottleneck adapters in every decoder block.

Houlsby et al. (2019) put a small bottleneck (down-projection, non-linearity, up-projection, with a skip
connection) after the attention and after the feed-forward sublayer of each block, before the block's own
residual addition, and also train the layer norms. peft has no such adapter, so it is written here: one module
and two forward hooks per block, which leave GPT-2's own modules and their state-dict names untouched. The
up-projection starts at zero, so an untrained adapter is the identity and training starts from the
pretrained decoder's behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import VisionEncoderDecoderModel

from vlkit.errors import VlkitError
from vlkit.models.tuning.base import TuningMethod, decoder_blocks, freeze_all, train_new_weights


@dataclass
class AdapterConfig:
    """Bottleneck adapter settings."""

    bottleneck: int = field(default=64, metadata={"help": "width of each adapter's bottleneck"})
    train_layer_norms: bool = field(
        default=True, metadata={"help": "also train the decoder's layer norms, as Houlsby et al. do"}
    )


class BottleneckAdapter(torch.nn.Module):
    """x + up(gelu(down(x))), with `up` zero-initialized so the adapter starts as the identity."""

    def __init__(self, width: int, bottleneck: int):
        super().__init__()
        self.down = torch.nn.Linear(width, bottleneck)
        self.up = torch.nn.Linear(bottleneck, width)
        torch.nn.init.zeros_(self.up.weight)
        torch.nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(torch.nn.functional.gelu(self.down(hidden)))  # (B, T, C)

    def after_attention(self, module: torch.nn.Module, args: tuple, output: tuple) -> tuple:
        # GPT-2's attention returns (output, attention weights); only the output is adapted.
        return (self(output[0]), *output[1:])

    def after_mlp(self, module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return self(output)


def apply(model: VisionEncoderDecoderModel, config: AdapterConfig) -> VisionEncoderDecoderModel:
    if config.bottleneck < 1:
        raise VlkitError(f"bottleneck: must be at least 1, got {config.bottleneck}")
    freeze_all(model)
    width = model.decoder.config.n_embd
    for block in decoder_blocks(model):
        # Submodules of the block, so their weights are saved with the captioner; the hooks are bound methods
        # of those submodules, so a deep copy of the model hooks its own copies.
        block.attn_adapter = BottleneckAdapter(width, config.bottleneck)
        block.mlp_adapter = BottleneckAdapter(width, config.bottleneck)
        block.attn.register_forward_hook(block.attn_adapter.after_attention)
        block.mlp.register_forward_hook(block.mlp_adapter.after_mlp)
        if config.train_layer_norms:
            block.ln_1.requires_grad_(True)
            block.ln_2.requires_grad_(True)
    if config.train_layer_norms:
        model.decoder.transformer.ln_f.requires_grad_(True)
    train_new_weights(model)
    return model


METHOD = TuningMethod(
    name="adapter",
    summary="the new weights plus Houlsby bottleneck adapters after each decoder block's attention and MLP",
    config_class=AdapterConfig,
    apply=apply,
)
