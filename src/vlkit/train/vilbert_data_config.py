"""How ViLBERT's batches are made, as plain data (torch-free, so the CLI builds its options from these fields
without loading a model library), saved beside a run's weights as JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from vlkit.runtime.options import config_from_dict, option, positive, require


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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "ViLBertDataConfig") -> ViLBertDataConfig:
        """From the JSON form; an unknown field is an error naming `source`."""
        return config_from_dict(cls, data, source)
