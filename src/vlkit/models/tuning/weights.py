"""The weights every tuning method touches: freezing, the captioner's new modules, parameter counts.

Each method's `apply` imports these when it runs (torch and transformers load then, not when the methods
are listed).
"""

from __future__ import annotations

import torch
from transformers import VisionEncoderDecoderModel

from vlkit.models.tuning.base import ParameterCount


def count_parameters(model: torch.nn.Module) -> ParameterCount:
    params = list(model.parameters())  # parameters() yields a shared (tied) tensor once
    return ParameterCount(
        trainable=sum(p.numel() for p in params if p.requires_grad), total=sum(p.numel() for p in params)
    )


def freeze_all(model: torch.nn.Module) -> None:
    for parameter in model.parameters():
        parameter.requires_grad_(False)


def decoder_blocks(model: VisionEncoderDecoderModel) -> torch.nn.ModuleList:
    """The GPT-2 decoder's transformer blocks (the captioner's decoders are GPT-2-family)."""
    return model.decoder.transformer.h


def new_weight_modules(model: VisionEncoderDecoderModel) -> list[torch.nn.Module]:
    """The modules a captioner adds to its pretrained parts: each block's cross-attention and its layer norm,
    the projection from encoder width to decoder width (absent when the widths are equal), a video captioner's
    temporal module and the connector (when it has them)."""
    modules: list[torch.nn.Module] = []
    for block in decoder_blocks(model):
        modules += [block.crossattention, block.ln_cross_attn]
    for name in ("enc_to_dec_proj", "temporal", "connector"):
        module = getattr(model, name, None)
        if module is not None:
            modules.append(module)
    return modules


def train_new_weights(model: VisionEncoderDecoderModel) -> None:
    for module in new_weight_modules(model):
        module.requires_grad_(True)
