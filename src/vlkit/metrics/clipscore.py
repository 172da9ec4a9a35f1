"""CLIPScore and RefCLIPScore's formulas (Hessel et al., 2021) on embeddings: tensors in, scores out.

The formulas follow the authors' reference implementation (github.com/jmhessel/clipscore, `clipscore.py`):

- CLIP-S(c, v) = w * max(cos(E_image(v), E_text(prefix + c)), 0), with w = 2.5; the corpus score is the
  mean over images.
- RefCLIP-S(c, R, v) = harmonic mean of CLIP-S(c, v) and max over r in R of cos(E_text(prefix + c),
  E_text(prefix + r)). As in the reference code, w applies to the image side only (the text side is a
  plain cosine), and the prefix "A photo depicts " is put before the candidate *and* every reference.
  The text side is clipped at 0 as the paper writes it; the reference code leaves that out, which only
  differs when every reference has a negative cosine with the candidate (where its harmonic mean is
  meaningless). A harmonic mean of two zeros is 0.
- The reference code appends a space to a prefix that lacks one ("A photo depicts" -> "A photo depicts ");
  so does `add_prefix`. `prefix=None` encodes the plain caption, as course scripts (DLCV HW3) do.

`vlkit.captioning.clipscore` encodes images and captions with a CLIP and applies these.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vlkit.metrics.names import DEFAULT_PREFIX

CLIP_SCORE_WEIGHT = 2.5  # w of the paper: stretches ViT-B/32's typical cosines (~0.3) towards 0..1

__all__ = [
    "CLIP_SCORE_WEIGHT",
    "DEFAULT_PREFIX",
    "add_prefix",
    "best_reference_similarity",
    "harmonic_mean",
    "image_text_scores",
]


def add_prefix(captions: Sequence[str], prefix: str | None) -> list[str]:
    """The texts the text encoder sees: `prefix + caption` (a space added to the prefix if it lacks one)."""
    if prefix is None:
        return list(captions)
    if prefix and not prefix.endswith(" "):
        prefix += " "
    return [prefix + caption for caption in captions]


def image_text_scores(
    image_embeddings: torch.Tensor, caption_embeddings: torch.Tensor, weight: float = CLIP_SCORE_WEIGHT
) -> torch.Tensor:
    """w * max(cos, 0) of matching rows of two (N, D) unit-vector tensors -> (N,)."""
    cosine = (image_embeddings * caption_embeddings).sum(dim=-1)
    return weight * cosine.clamp(min=0)


def best_reference_similarity(
    caption_embeddings: torch.Tensor, reference_embeddings: torch.Tensor, reference_counts: Sequence[int]
) -> torch.Tensor:
    """max(max over its references of cos(caption, reference), 0) per caption -> (N,).

    `reference_embeddings` holds the references of caption 0, then of caption 1, ...: `reference_counts[i]`
    rows for caption i.
    """
    counts = torch.as_tensor(list(reference_counts), dtype=torch.long)
    owner = torch.repeat_interleave(torch.arange(len(counts)), counts)  # (R,) caption of each reference
    cosine = (reference_embeddings * caption_embeddings[owner]).sum(dim=-1)  # (R,)
    best = torch.full((len(counts),), -torch.inf).scatter_reduce(0, owner, cosine, reduce="amax")
    return best.clamp(min=0)


def harmonic_mean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """2ab / (a + b) elementwise for non-negative a, b; 0 where both are 0."""
    total = a + b
    return torch.where(
        total > 0, 2 * a * b / total.clamp(min=torch.finfo(total.dtype).tiny), torch.zeros_like(a)
    )
