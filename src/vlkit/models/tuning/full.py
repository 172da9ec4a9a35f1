"""`full`: every weight trains, the vision encoder included.

The reference point the parameter-efficient methods are measured against. Because the encoder trains, its
features change every step, so the frozen-encoder feature cache is not used with this method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlkit.models.tuning.base import TuningMethod

if TYPE_CHECKING:
    from transformers import VisionEncoderDecoderModel


@dataclass
class FullConfig:
    """No options: everything trains."""


def apply(model: VisionEncoderDecoderModel, config: FullConfig) -> VisionEncoderDecoderModel:
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model


METHOD = TuningMethod(
    name="full",
    summary="everything, the vision encoder included",
    config_class=FullConfig,
    apply=apply,
    trains_encoder=True,
)
