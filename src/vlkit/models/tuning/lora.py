"""`lora`: the new weights plus LoRA on the decoder's self-attention and MLP (peft's `LoraConfig`).

peft does the method: `inject_adapter_in_model` puts its LoRA layers into the GPT-2 decoder in place, so the
captioner stays a plain `VisionEncoderDecoderModel` (its `generate` and state-dict names unchanged apart from
the added `lora_A` / `lora_B` weights). GPT-2's linear layers are `Conv1D`s, stored transposed, hence
`fan_in_fan_out=True`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vlkit.models.tuning.base import TuningMethod, gpt2_block_pattern

if TYPE_CHECKING:
    from transformers import VisionEncoderDecoderModel

GPT2_TARGETS = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]


@dataclass
class LoraTuningConfig:
    """LoRA's settings."""

    rank: int = field(default=8, metadata={"help": "rank of each low-rank update (peft: r)"})
    alpha: float = field(default=16.0, metadata={"help": "scale numerator: updates are scaled by alpha/rank"})
    dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA branch's input"})
    target_modules: list[str] = field(
        default_factory=lambda: list(GPT2_TARGETS),
        metadata={"help": "modules of each GPT-2 block that get LoRA, comma-separated"},
    )


def apply(model: VisionEncoderDecoderModel, config: LoraTuningConfig) -> VisionEncoderDecoderModel:
    from peft import LoraConfig, inject_adapter_in_model

    from vlkit.models.tuning.weights import freeze_all, train_new_weights

    freeze_all(model)
    peft_config = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=gpt2_block_pattern(config.target_modules),
        fan_in_fan_out=True,
    )
    # peft marks its own LoRA weights trainable (and only them) inside the decoder.
    inject_adapter_in_model(peft_config, model.decoder)
    train_new_weights(model)
    return model


METHOD = TuningMethod(
    name="lora",
    summary="the new weights plus LoRA on the decoder's self-attention and MLP (peft)",
    config_class=LoraTuningConfig,
    apply=apply,
)
