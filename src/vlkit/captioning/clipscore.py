"""CLIPScore and RefCLIPScore of captions, computed with any vlkit `Clip` (the formulas:
`vlkit.metrics.clipscore`).

The `Clip` adapter does the model work (preprocessing, encoding, unit-normalizing); this module batches the
inputs, applies the formulas and keeps per-image scores.

With a SigLIP the formula stays CLIP's, w * max(cos, 0) on SigLIP's cosine: CLIPScore is defined on the
cosine, not on a probability, and SigLIP's sigmoid(logit_scale * cos + logit_bias) is another quantity
(its large negative bias, -10 at initialization, keeps most pairs near 0). The two kinds' cosines are not
on one scale (w = 2.5 was fitted to ViT-B/32's), so a SigLIP's CLIP-S ranks captions but does not compare
with a CLIP's; `vlkit evaluate` records the model's `scoring` beside the score, so a reader knows which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from vlkit.errors import VlkitError
from vlkit.metrics.clipscore import (
    CLIP_SCORE_WEIGHT,
    DEFAULT_PREFIX,
    add_prefix,
    best_reference_similarity,
    harmonic_mean,
    image_text_scores,
)
from vlkit.models.clip import Clip
from vlkit.runtime.progress import track


@dataclass(frozen=True)
class ClipScoreResult:
    """Mean CLIP-S over the images and each image's CLIP-S, in input order."""

    score: float
    per_image: list[float]


@dataclass(frozen=True)
class RefClipScoreResult:
    """Mean CLIP-S and RefCLIP-S, and each image's, in input order."""

    clip_score: float
    ref_clip_score: float
    per_image_clip: list[float]
    per_image_ref: list[float]


def clip_score(
    clip: Clip,
    images: Sequence[Image.Image],
    captions: Sequence[str],
    batch_size: int = 64,
    prefix: str | None = DEFAULT_PREFIX,
    weight: float = CLIP_SCORE_WEIGHT,
) -> ClipScoreResult:
    """CLIP-S of one caption per image.

    Args:
        clip: the CLIP whose embeddings are compared (the paper uses ViT-B/32).
        images: RGB images; `captions[i]` describes `images[i]`.
        captions: one caption per image.
        batch_size: images (and texts) per forward pass; the scores do not depend on it.
        prefix: put before each caption; None for the plain caption.
        weight: w of the paper.
    """
    _check_inputs(images, captions)
    image_embeddings = encode_images_batched(clip, images, batch_size)
    caption_embeddings = _encode_texts(clip, add_prefix(captions, prefix), batch_size)
    per_image = image_text_scores(image_embeddings, caption_embeddings, weight)
    return ClipScoreResult(float(per_image.mean()), per_image.tolist())


def ref_clip_score(
    clip: Clip,
    images: Sequence[Image.Image],
    captions: Sequence[str],
    references: Sequence[Sequence[str]],
    batch_size: int = 64,
    prefix: str | None = DEFAULT_PREFIX,
    weight: float = CLIP_SCORE_WEIGHT,
) -> RefClipScoreResult:
    """CLIP-S and RefCLIP-S of one caption per image, given each image's reference captions.

    Args are those of `clip_score`, plus `references[i]`: the reference captions of image i (at least one),
    encoded with the same prefix as the candidates.
    """
    _check_inputs(images, captions)
    if len(references) != len(captions):
        raise VlkitError(f"ref_clip_score: {len(captions)} captions but {len(references)} reference lists")
    for index, refs in enumerate(references):
        if isinstance(refs, str) or not refs:
            raise VlkitError(f"ref_clip_score: references[{index}] must be a non-empty list of captions")
    image_embeddings = encode_images_batched(clip, images, batch_size)
    caption_embeddings = _encode_texts(clip, add_prefix(captions, prefix), batch_size)
    flat_references = [ref for refs in references for ref in refs]
    reference_embeddings = _encode_texts(clip, add_prefix(flat_references, prefix), batch_size)
    per_image_clip = image_text_scores(image_embeddings, caption_embeddings, weight)
    text_side = best_reference_similarity(
        caption_embeddings, reference_embeddings, [len(refs) for refs in references]
    )
    per_image_ref = harmonic_mean(per_image_clip, text_side)
    return RefClipScoreResult(
        float(per_image_clip.mean()),
        float(per_image_ref.mean()),
        per_image_clip.tolist(),
        per_image_ref.tolist(),
    )


@torch.inference_mode()
def encode_images_batched(clip: Clip, images: Sequence[Image.Image], batch_size: int = 64) -> torch.Tensor:
    """(N, D) unit vectors of `images`, preprocessed and encoded `batch_size` at a time."""
    _check_batch_size(batch_size)
    starts = range(0, len(images), batch_size)
    chunks = [
        clip.encode_images(clip.preprocess(images[start : start + batch_size])).cpu()
        for start in track(starts, "CLIPScore: images", total=len(starts))
    ]
    return torch.cat(chunks)


def _encode_texts(clip: Clip, texts: Sequence[str], batch_size: int) -> torch.Tensor:
    _check_batch_size(batch_size)
    return clip.encode_texts(list(texts), batch_size, "CLIPScore: texts").cpu()


def _check_inputs(images: Sequence[Image.Image], captions: Sequence[str]) -> None:
    if not captions:
        raise VlkitError("CLIPScore: no captions to score")
    if len(images) != len(captions):
        raise VlkitError(f"CLIPScore: {len(images)} images but {len(captions)} captions")
    for index, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise VlkitError(f"CLIPScore: captions[{index}] is a {type(caption).__name__}, not a string")


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise VlkitError(f"batch_size must be at least 1, got {batch_size}")
