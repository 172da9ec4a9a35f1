"""ViLBERT's pre-training corruptions, as pure seeded functions: masked words (BERT's 15%, 80/10/10), masked
regions (15%, their features zeroed 90% of the time and left as they are 10%, as the paper).

The reference (facebookresearch/vilbert-multi-task, `datasets/concept_cap_dataset.py`) masks neither words
nor regions of a mismatched caption-image pair: the masked objectives would then learn from a caption that
does not describe the image. `mask_mismatched` keeps that choice explicit. transformers'
`DataCollatorForLanguageModeling` masks words the same way but draws from torch's global generator and knows
no regions; these few lines draw from a numpy generator the caller seeds per step, which the training loop's
exact resume needs. The settings are `ViLBertDataConfig` (torch-free, for the CLI's options).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vlkit.train.vilbert_data_config import ViLBertDataConfig

__all__ = ["IGNORE_INDEX", "MaskedRegions", "MaskedWords", "ViLBertDataConfig", "mask_regions", "mask_words"]

IGNORE_INDEX = -100  # a word position without a masked-word target (cross-entropy's ignore_index)


@dataclass
class MaskedWords:
    input_ids: torch.Tensor  # (B, T) with the masked positions replaced
    labels: torch.Tensor  # (B, T) the original id at each masked position, IGNORE_INDEX elsewhere


@dataclass
class MaskedRegions:
    features: torch.Tensor  # (B, R, F) with the zeroed regions' features zeroed
    masked: torch.Tensor  # (B, R) bool: the regions the masked-region loss scores (zeroed or kept)


def mask_words(
    input_ids: torch.Tensor,
    maskable: torch.Tensor,
    rng: np.random.Generator,
    config: ViLBertDataConfig,
    mask_id: int,
    random_ids: np.ndarray,
) -> MaskedWords:
    """BERT's masking of the `maskable` (B, T) positions (real words: not [CLS], [SEP] or padding): each is
    picked with `word_mask_probability`; a picked word becomes `mask_id` (`mask_token_share`), a random
    one of `random_ids` (`random_token_share`) or stays (the rest), and is a target either way."""
    shape = tuple(input_ids.shape)
    picked = (rng.random(shape) < config.word_mask_probability) & maskable.numpy()
    action = rng.random(shape)
    replacement = random_ids[rng.integers(len(random_ids), size=shape)]
    ids = input_ids.numpy().copy()
    to_mask = picked & (action < config.mask_token_share)
    to_random = picked & (action >= config.mask_token_share)
    to_random &= action < config.mask_token_share + config.random_token_share
    ids[to_mask] = mask_id
    ids[to_random] = replacement[to_random]
    labels = np.where(picked, input_ids.numpy(), IGNORE_INDEX)
    return MaskedWords(torch.from_numpy(ids), torch.from_numpy(labels))


def mask_regions(
    features: torch.Tensor, maskable: torch.Tensor, rng: np.random.Generator, config: ViLBertDataConfig
) -> MaskedRegions:
    """Pick each `maskable` (B, R) region with `region_mask_probability`; zero the features of a picked one
    with `region_zero_share` (the others keep theirs, as BERT's unchanged words). All picked are targets."""
    shape = tuple(maskable.shape)
    picked = (rng.random(shape) < config.region_mask_probability) & maskable.bool().numpy()
    zeroed = picked & (rng.random(shape) < config.region_zero_share)
    out = features.clone()
    out[torch.from_numpy(zeroed)] = 0.0
    return MaskedRegions(out, torch.from_numpy(picked))
