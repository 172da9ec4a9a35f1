"""`cross-attn`: train only the captioner's new weights (cross-attention, its layer norms, the projection).

The smallest method: the pretrained encoder and decoder stay exactly as they were, and the decoder learns to
read the image only through the blocks the captioner added. Nothing to configure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlkit.models.tuning.base import TuningMethod

if TYPE_CHECKING:
    from transformers import VisionEncoderDecoderModel


@dataclass
class CrossAttnConfig:
    """No options: what trains is fixed."""


def apply(model: VisionEncoderDecoderModel, config: CrossAttnConfig) -> VisionEncoderDecoderModel:
    from vlkit.models.tuning.weights import freeze_all, train_new_weights

    freeze_all(model)
    train_new_weights(model)
    return model


METHOD = TuningMethod(
    name="cross-attn",
    summary="only the new cross-attention blocks, their layer norms and the projection",
    config_class=CrossAttnConfig,
    apply=apply,
)
