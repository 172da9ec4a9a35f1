"""Similarities to probabilities, the way each kind of model was trained to mean them: tensors in and out.

- `softmax` (CLIP, trained with a contrastive softmax loss): softmax(logit_scale * cos) over the
  candidates. The probabilities of one image's classes sum to 1: they compare the candidates with each
  other, and adding a class changes every other class's probability.
- `sigmoid` (SigLIP and SigLIP 2, trained with a pairwise sigmoid loss): sigmoid(logit_scale * cos +
  logit_bias) for each (image, text) pair on its own: the model's probability that this text fits this
  image. They need not sum to 1 (none or several classes may fit). A softmax over a SigLIP's classes is
  another quantity (a distribution over the given candidates, in which the bias cancels), the one users
  reach for when the sigmoids look low (open_clip #716); #736 is the converse mistake, a sigmoid with a
  bias on a CLIP, which has none. So every output says which scoring it used.

Ranking is the same either way (both are increasing in the cosine), so top-1 and top-5 do not depend on
the scoring. `vlkit.models.clip.class_probabilities` applies these with a loaded model's own constants.
"""

from __future__ import annotations

import torch

SCORINGS = ("softmax", "sigmoid")


def scaled_logits(
    similarities: torch.Tensor, logit_scale: float, logit_bias: float | None = None
) -> torch.Tensor:
    """logit_scale * cos (+ logit_bias), in fp32, of a tensor of cosine similarities of any shape."""
    logits = similarities.float() * logit_scale
    return logits if logit_bias is None else logits + logit_bias


def similarity_probabilities(
    similarities: torch.Tensor, scoring: str, logit_scale: float, logit_bias: float | None = None
) -> torch.Tensor:
    """Probabilities of (..., C) cosine similarities: a softmax over the last dimension (the C candidates)
    for `softmax`, an independent sigmoid of each entry with the bias for `sigmoid` (module docstring)."""
    if scoring == "softmax":
        return scaled_logits(similarities, logit_scale, logit_bias).softmax(dim=-1)
    if scoring == "sigmoid":
        if logit_bias is None:
            raise ValueError("sigmoid scoring needs the model's logit_bias")
        return torch.sigmoid(scaled_logits(similarities, logit_scale, logit_bias))
    raise ValueError(f"unknown scoring {scoring!r} (choose {', '.join(SCORINGS)})")
