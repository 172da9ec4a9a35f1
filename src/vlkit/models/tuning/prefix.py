"""`prefix`: the new weights plus prefix tuning of the decoder (peft's `PrefixTuningConfig`, `PrefixEncoder`).

Prefix tuning gives every decoder layer `num_virtual_tokens` trained key/value pairs that each caption token
attends to before its own. peft has the method, but its `PeftModelForCausalLM` cannot be the decoder of a
`VisionEncoderDecoderModel`: its `forward` replaces `past_key_values` with a freshly built prefix on every
call (right for teacher forcing), while the encoder-decoder's `generate` calls the decoder's `forward` once
per new token with the running cache, so each step would see only the prefix and its newest token. Measured
on a tiny captioner, the first step's logits match a full forward pass and every later one is off by 0.1 to
0.2. peft's own `generate` avoids this by patching the base model and calling it directly, which the
encoder-decoder never does (with `use_cache=False` it would work, recomputing the whole caption every step).

So this module keeps peft's parts (its config and its `PrefixEncoder`, which holds the trained weights and the
optional reparameterization MLP) and does what peft's `get_prompt` does in a forward pre-hook on the decoder:
when the decoder's cache is empty (teacher forcing, or the first generation step) it writes the prefix into
it, laid out as peft lays it out, so generation with the cache is exact. As in peft, the prefix occupies the
first positions, so the caption starts at position `num_virtual_tokens` and the decoder's `n_positions` must
hold both. Gradient checkpointing drops the decoder's cache and must stay off with this method.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vlkit.errors import VlkitError
from vlkit.models.tuning.base import TuningMethod

if TYPE_CHECKING:
    from transformers import VisionEncoderDecoderModel


@dataclass
class PrefixConfig:
    """Prefix tuning's settings."""

    num_virtual_tokens: int = field(
        default=10, metadata={"help": "trained key/value pairs per decoder layer"}
    )
    prefix_projection: bool = field(
        default=False, metadata={"help": "produce the prefix through a two-layer MLP (reparameterization)"}
    )
    projection_width: int | None = field(
        default=None,
        metadata={"help": "hidden width of that MLP, default the decoder's (peft: encoder_hidden_size)"},
    )


def apply(model: VisionEncoderDecoderModel, config: PrefixConfig) -> VisionEncoderDecoderModel:
    decoder_config = model.decoder.config
    if config.num_virtual_tokens < 1:
        raise VlkitError(f"num_virtual_tokens: must be at least 1, got {config.num_virtual_tokens}")
    from peft import PrefixTuningConfig

    from vlkit.models.tuning.prefix_layer import DecoderPrefix
    from vlkit.models.tuning.weights import freeze_all, train_new_weights

    freeze_all(model)
    peft_config = PrefixTuningConfig(
        task_type="CAUSAL_LM",
        num_virtual_tokens=config.num_virtual_tokens,
        token_dim=decoder_config.n_embd,
        num_layers=decoder_config.n_layer,
        num_attention_heads=decoder_config.n_head,
        prefix_projection=config.prefix_projection,
        encoder_hidden_size=config.projection_width or decoder_config.n_embd,
    )
    accepts = inspect.signature(type(model.decoder).forward).parameters
    prefix = DecoderPrefix(peft_config, "cache" if "cache" in accepts else "past_key_values")
    model.decoder.prefix = prefix  # a submodule, so its weights are saved and loaded with the captioner's
    # A bound method of a submodule: a deep copy of the model gets a hook bound to its own copy of the prefix.
    model.decoder.register_forward_pre_hook(prefix.inject, with_kwargs=True)
    prefix.requires_grad_(True)
    train_new_weights(model)
    return model


METHOD = TuningMethod(
    name="prefix",
    summary="the new weights plus trained key/value prefixes in every decoder layer (peft's prefix encoder)",
    config_class=PrefixConfig,
    apply=apply,
    reserved_positions=lambda config: config.num_virtual_tokens,
)
