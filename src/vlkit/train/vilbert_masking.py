"""ViLBERT's pre-training corruptions, as pure seeded functions: masked words (BERT's 15%, 80/10/10), masked
regions (15%, their features zeroed 90% of the time and left as they are 10%, as the paper) and the
settings that say how much.

The reference (facebookresearch/vilbert-multi-task, `datasets/concept_cap_dataset.py`) masks neither words
nor regions of a mismatched caption-image pair: the masked objectives would then learn from a caption that
does not describe the image. `mask_mismatched` keeps that choice explicit. transformers'
`DataCollatorForLanguageModeling` masks words the same way but draws from torch's global generator and knows
no regions; these few lines draw from a numpy generator the caller seeds per step, which the training loop's
exact resume needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vlkit.runtime.options import option, positive, require

IGNORE_INDEX = -100  # a word position without a masked-word target (cross-entropy's ignore_index)


@dataclass
class ViLBertDataConfig:
    """How ViLBERT's batches are made. Every field is one CLI option (its metadata's flag)."""

    batch_size: int = option(32, "--batch-size", "Caption-image pairs (or questions) per batch.")
    max_text_tokens: int = option(40, "--max-text-tokens", "Word pieces per text, [CLS] and [SEP] included.")
    word_mask_probability: float = option(0.15, "--word-mask", "Share of word pieces masked (BERT: 0.15).")
    mask_token_share: float = option(0.8, help="of the masked words, the share replaced by [MASK]")
    random_token_share: float = option(0.1, help="of the masked words, the share replaced by a random word")
    region_mask_probability: float = option(
        0.15, "--region-mask", "Share of regions masked (the paper: 0.15)."
    )
    region_zero_share: float = option(
        0.9,
        help="of the masked regions, the share zeroed (the paper: 0.9; the rest keep their features)",
    )
    mismatch_probability: float = option(
        0.5, "--mismatch", "Share of pairs whose caption is another image's (the alignment objective)."
    )
    mask_mismatched: bool = option(
        False, help="also mask the words and regions of mismatched pairs (reference: no)"
    )
    retrieval_candidates: int = option(
        4, "--retrieval-candidates", "Pairs per training caption for retrieval: the true one, then negatives."
    )
    seed: int = option(0, "--data-seed", "Seed of the batch order, the masks and the mismatches.")

    def __post_init__(self) -> None:
        positive(self, "batch_size", "max_text_tokens")
        for name in ("word_mask_probability", "mask_token_share", "random_token_share",
                     "region_mask_probability", "region_zero_share", "mismatch_probability"):  # fmt: skip
            value = getattr(self, name)
            require(self, name, 0.0 <= value <= 1.0, f"must be in [0, 1], got {value}")
        require(
            self,
            "random_token_share",
            self.mask_token_share + self.random_token_share <= 1.0,
            "mask_token_share + random_token_share must be at most 1",
        )
        require(
            self, "max_text_tokens", self.max_text_tokens >= 3, "must be at least 3 ([CLS], a word, [SEP])"
        )
        require(self, "retrieval_candidates", self.retrieval_candidates >= 2, "must be at least 2")


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
