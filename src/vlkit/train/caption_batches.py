"""The captioner's training batches: captions tokenized GPT-2 style, and step-indexed batches of images (or
their cached features) each with one of its captions.

Each epoch is a seeded permutation of the images, each image with one of its captions drawn per batch
(`vlkit.train.stream.batch_picks`), so batch k is a pure function of k, as the training loop's exact resume
needs. The images come as pixels (`ImagePixels`, when the encoder trains) or as the frozen encoder's cached
features (`CachedFeatures`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlkit.data.images import read_image
from vlkit.models.captioner.model import Captioner
from vlkit.train.feature_cache import FeatureCache
from vlkit.train.stream import batch_picks


@dataclass
class CaptionTokens:
    """One image's captions for teacher forcing: the decoder reads `inputs`, predicts `labels`."""

    inputs: torch.Tensor  # (captions, T): start token, caption, end-token padding
    labels: torch.Tensor  # (captions, T): caption, end token, -100 padding


def tokenize_captions(captioner: Captioner, captions: Sequence[str], length: int) -> CaptionTokens:
    """Captions cut to `length - 1` tokens plus the end token; inputs are the labels shifted right."""
    tokenizer = captioner.tokenizer
    start, end = captioner.model.config.decoder_start_token_id, tokenizer.eos_token_id
    inputs = torch.full((len(captions), length), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(captions), length), -100, dtype=torch.long)
    encoded = tokenizer(list(captions), add_special_tokens=False, truncation=True, max_length=length - 1)
    for row, ids in enumerate(encoded["input_ids"]):
        target = [*ids, end]
        labels[row, : len(target)] = torch.tensor(target)
        inputs[row, : len(target)] = torch.tensor([start, *target[:-1]])
    return CaptionTokens(inputs, labels)


class CachedFeatures:
    """Batch images as rows of a feature cache."""

    def __init__(self, cache: FeatureCache):
        self.cache = cache

    def __call__(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        return {"encoder_hidden_states": self.cache.rows(indices)}


class ImagePixels:
    """Batch images read from disk and preprocessed by the captioner's image processor."""

    def __init__(self, captioner: Captioner, paths: Sequence[Path]):
        self.captioner, self.paths = captioner, list(paths)

    def __call__(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.captioner.preprocess([read_image(self.paths[i]) for i in indices])}


class CaptionBatches:
    """Step-indexed batches: epoch e is a seeded permutation of the images, each with a caption picked per
    batch (`batch_picks`)."""

    def __init__(self, images: Any, tokens: list[CaptionTokens], batch_size: int, seed: int):
        self.images, self.tokens, self.seed = images, tokens, seed
        self.batch_size = min(batch_size, len(tokens))
        self.per_epoch = max(1, len(tokens) // self.batch_size)

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        epoch, index = divmod(step, self.per_epoch)
        chosen = self.epoch_order(epoch)[index * self.batch_size : (index + 1) * self.batch_size]
        picks = batch_picks(self.seed, epoch, index, len(chosen))
        return {**self.images(chosen), **caption_rows([self.tokens[i] for i in chosen], picks)}

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The images of `epoch` in the order it trains on them."""
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.tokens))


def caption_rows(tokens: Sequence[CaptionTokens], picks: np.ndarray) -> dict[str, torch.Tensor]:
    """The decoder's tensors for one caption of each image: the `picks[j] % captions`-th of image j's."""
    rows = [(t, p % len(t.inputs)) for t, p in zip(tokens, picks, strict=True)]
    return decoder_tensors(
        CaptionTokens(
            torch.stack([t.inputs[p] for t, p in rows]), torch.stack([t.labels[p] for t, p in rows])
        )
    )


def decoder_tensors(tokens: CaptionTokens) -> dict[str, torch.Tensor]:
    """The decoder's inputs for rows of caption tokens, one caption a row, cut after the longest caption's
    end token: the columns after it are padding in every row, which the causal decoder never reads and the
    loss ignores (-100), so the loss is the same while the step is shorter (the shapes world's captions
    average 13 tokens of the 32 kept by default)."""
    kept = tokens.labels != -100
    length = max(1, int(kept.sum(dim=1).max())) if len(kept) else tokens.labels.shape[1]
    return {
        "decoder_input_ids": tokens.inputs[:, :length],
        "decoder_attention_mask": kept[:, :length].long(),  # the caption's tokens, not the padding
        "labels": tokens.labels[:, :length],
    }
