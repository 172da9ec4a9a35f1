"""The small CLIP vlkit trains from scratch (the embedded default's): a transformers `CLIPModel` of the sizes
in `ClipArchitecture` and its image processor. Training is `vlkit.train.clip_trainer`; the result loads
through `vlkit.models.clip` as any hub CLIP does."""

from __future__ import annotations

import torch
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

from vlkit.models.architectures import ClipArchitecture

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def build_clip(arch: ClipArchitecture, eos_token_id: int, bos_token_id: int, seed: int) -> CLIPModel:
    """A randomly initialized CLIPModel; the text config names the tokenizer's real end token so that
    transformers pools at its first occurrence (its legacy argmax rule applies only when the id is 2)."""
    config = CLIPConfig(
        text_config=dict(
            vocab_size=arch.vocab_size,
            hidden_size=arch.text_width,
            intermediate_size=4 * arch.text_width,
            num_hidden_layers=arch.text_layers,
            num_attention_heads=arch.heads,
            max_position_embeddings=arch.max_text_length,
            eos_token_id=eos_token_id,
            bos_token_id=bos_token_id,
            pad_token_id=eos_token_id,
            projection_dim=arch.projection_dim,
        ),
        vision_config=dict(
            image_size=arch.image_size,
            patch_size=arch.patch_size,
            hidden_size=arch.vision_width,
            intermediate_size=4 * arch.vision_width,
            num_hidden_layers=arch.vision_layers,
            num_attention_heads=arch.heads,
            projection_dim=arch.projection_dim,
        ),
        projection_dim=arch.projection_dim,
    )
    torch.manual_seed(seed)
    return CLIPModel(config)


def image_processor_for(arch: ClipArchitecture) -> CLIPImageProcessorPil:
    size = arch.image_size
    return CLIPImageProcessorPil(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
