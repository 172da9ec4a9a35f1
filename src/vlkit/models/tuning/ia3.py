"""`ia3`: the new weights plus IA3's learned rescaling vectors in the decoder (peft's `IA3Config`).

IA3 multiplies chosen activations by trained vectors initialized to one: on GPT-2, the fused query/key/value
projection's output and the MLP's input to its output projection (peft's defaults for GPT-2, anchored on the
self-attention blocks so the cross-attention is not rescaled twice). peft does the method and injects it in
place, as for LoRA.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vlkit.errors import VlkitError
from vlkit.models.tuning.base import TuningMethod, gpt2_block_pattern

if TYPE_CHECKING:
    from transformers import VisionEncoderDecoderModel


@dataclass
class Ia3TuningConfig:
    """IA3's settings."""

    target_modules: list[str] = field(
        default_factory=lambda: ["attn.c_attn", "mlp.c_proj"],
        metadata={"help": "modules of each GPT-2 block whose activations are rescaled, comma-separated"},
    )
    feedforward_modules: list[str] = field(
        default_factory=lambda: ["mlp.c_proj"],
        metadata={"help": "those of target_modules rescaled at their input (feed-forward), comma-separated"},
    )


def apply(model: VisionEncoderDecoderModel, config: Ia3TuningConfig) -> VisionEncoderDecoderModel:
    extra = sorted(set(config.feedforward_modules) - set(config.target_modules))
    if extra:
        raise VlkitError(f"feedforward_modules: {extra[0]!r} is not one of target_modules")
    from peft import IA3Config, inject_adapter_in_model

    from vlkit.models.tuning.weights import freeze_all, train_new_weights

    freeze_all(model)
    peft_config = IA3Config(
        target_modules=gpt2_block_pattern(config.target_modules),
        feedforward_modules=(
            gpt2_block_pattern(config.feedforward_modules) if config.feedforward_modules else []
        ),
        fan_in_fan_out=True,
    )
    inject_adapter_in_model(peft_config, model.decoder)
    train_new_weights(model)
    return model


METHOD = TuningMethod(
    name="ia3",
    summary="the new weights plus IA3 rescaling vectors in the decoder (peft)",
    config_class=Ia3TuningConfig,
    apply=apply,
)
