"""A tiny ViLBERT config with the reference's layout in small (standard text layers first, then rounds of
visual layer, text layer and co-attention; last layers after), and seeded batches of words and regions."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlkit.models.vilbert.config import ViLBertConfig

# The reference's 6-layer base in small: 2 standard text layers, then 2 rounds, one visual layer after.
TINY_VILBERT = ViLBertConfig(
    vocab_size=40,
    hidden_size=16,
    num_hidden_layers=4,
    num_attention_heads=2,
    intermediate_size=24,
    max_position_embeddings=12,
    v_feature_size=6,
    v_target_size=5,
    v_hidden_size=12,
    v_num_hidden_layers=3,
    v_num_attention_heads=3,
    v_intermediate_size=20,
    bi_hidden_size=8,
    bi_num_attention_heads=2,
    t_biattention_id=[2, 3],
    v_biattention_id=[0, 1],
    num_answers=4,
)


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    region_features: torch.Tensor  # (B, R, F)
    region_boxes: torch.Tensor  # (B, R, 5)
    region_mask: torch.Tensor  # (B, R)

    def inputs(self) -> dict[str, torch.Tensor]:
        return dict(vars(self))


def random_boxes(batch: int, regions: int, generator: torch.Generator) -> torch.Tensor:
    """(B, R, 5) valid normalized boxes: x1 < x2, y1 < y2, and their area."""
    corners = torch.rand(batch, regions, 2, 2, generator=generator)  # (B, R, xy, two draws)
    low, high = corners.min(-1).values, corners.max(-1).values  # (B, R, 2)
    area = (high - low).prod(-1, keepdim=True)  # (B, R, 1)
    return torch.cat([low, high, area], dim=-1)


def tiny_batch(config: ViLBertConfig = TINY_VILBERT, seed: int = 0, batch: int = 3, words: int = 6,
               regions: int = 5) -> Batch:  # fmt: skip
    """Word 0 is [CLS] (id 2); sample 1 has 2 padded words, sample 0 has 2 padded regions."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, config.vocab_size, (batch, words), generator=generator)
    input_ids[:, 0] = 2
    attention_mask = torch.ones(batch, words, dtype=torch.long)
    attention_mask[1, -2:] = 0
    input_ids[attention_mask == 0] = 0
    region_mask = torch.ones(batch, regions, dtype=torch.long)
    region_mask[0, -2:] = 0
    features = torch.randn(batch, regions, config.v_feature_size, generator=generator)
    return Batch(input_ids, attention_mask, features, random_boxes(batch, regions, generator), region_mask)
