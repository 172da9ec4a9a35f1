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
from typing import TYPE_CHECKING

from vlkit.errors import VlkitError
from vlkit.models.tuning.base import TuningMethod

if TYPE_CHECKING:
    from transformers import VisionEncoderDecoderModel


@dataclass
class AdapterConfig:
    """Bottleneck adapter settings."""

    bottleneck: int = field(default=64, metadata={"help": "width of each adapter's bottleneck"})
    train_layer_norms: bool = field(
        default=True, metadata={"help": "also train the decoder's layer norms, as Houlsby et al. do"}
    )


def apply(model: VisionEncoderDecoderModel, config: AdapterConfig) -> VisionEncoderDecoderModel:
    if config.bottleneck < 1:
        raise VlkitError(f"bottleneck: must be at least 1, got {config.bottleneck}")
    from vlkit.models.tuning.adapter_layer import BottleneckAdapter
    from vlkit.models.tuning.weights import decoder_blocks, freeze_all, train_new_weights

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
