"""Every caption metric of captions held in memory: `evaluate_captions(predictions, references, images)`.

The Python counterpart of `vlkit evaluate` (`vlkit.pipelines.evaluate`, which reads the files, checks them
and writes the report): CIDEr-D (`vlkit.metrics.cider`), BLEU / METEOR / ROUGE-L (pycocoevalcap, through
`vlkit.metrics.coco`) and CLIPScore / RefCLIPScore with a CLIP (`vlkit.captioning.clipscore`). A metric that
cannot be computed is None with its reason, never 0. CHAIR and attribute accuracy need the shapes world's
object annotations and come from `vlkit evaluate` on such a file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from vlkit.captioning.clipscore import clip_score, ref_clip_score
from vlkit.data.images import read_image
from vlkit.errors import VlkitError
from vlkit.metrics.cider import cider_d
from vlkit.metrics.coco import coco_metrics
from vlkit.metrics.names import DEFAULT_PREFIX
from vlkit.models.clip import Clip

DEFAULT_METRICS = ("cider", "bleu", "meteor", "rouge_l", "clip_score", "ref_clip_score")


@dataclass
class CaptionScores:
    """Corpus scores by name (None where a metric could not run: `unavailable` says why) and each image's."""

    metrics: dict[str, float | None] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    per_image: dict[Any, dict[str, float]] = field(default_factory=dict)

    def _add(self, name: str, value: float | None, reason: str | None = None) -> None:
        self.metrics[name] = value
        if value is None:
            self.unavailable[name] = reason or "not computed"


def evaluate_captions(
    predictions: Mapping[Any, str],
    references: Mapping[Any, Sequence[str]] | None = None,
    images: Mapping[Any, str | os.PathLike[str] | Image.Image] | None = None,
    clip: Clip | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    prefix: str | None = DEFAULT_PREFIX,
    batch_size: int = 64,
) -> CaptionScores:
    """Score one predicted caption per image.

    Args:
        predictions: image key -> the caption to score.
        references: image key -> its reference captions (CIDEr-D, BLEU, METEOR, ROUGE-L, RefCLIPScore).
        images: image key -> an image file or a PIL image (CLIPScore, RefCLIPScore).
        clip: the CLIP of CLIPScore (the paper uses ViT-B/32: `load_clip("openai/clip-vit-base-patch32")`).
        metrics: which to compute, from `DEFAULT_METRICS`.
        prefix: CLIPScore's text prefix; None encodes the plain caption.
        batch_size: images or texts per CLIP forward pass.
    """
    unknown = sorted(set(metrics) - set(DEFAULT_METRICS))
    if unknown:
        raise VlkitError(f"metrics: unknown {unknown[0]!r} (choose from {', '.join(DEFAULT_METRICS)})")
    keys = list(predictions)
    scores = CaptionScores(per_image={key: {} for key in keys})
    refs = None
    if references is not None:
        missing = [key for key in keys if key not in references]
        if missing:
            raise VlkitError(f"references: no reference captions for image {missing[0]!r}")
        refs = {key: list(references[key]) for key in keys}
    _reference_metrics(scores, predictions, refs, metrics)
    _clip_metrics(scores, predictions, refs, images, clip, metrics, prefix, batch_size)
    return scores


def _reference_metrics(
    scores: CaptionScores,
    predictions: Mapping[Any, str],
    references: dict[Any, list[str]] | None,
    metrics: Sequence[str],
) -> None:
    coco = [name for name in ("bleu", "meteor", "rouge_l") if name in metrics]
    if references is None:
        for name in [m for m in metrics if m in ("cider", *coco)]:
            scores._add(name, None, "no references given")
        return
    if "cider" in metrics:
        cider = cider_d(predictions, references)
        scores._add("cider", cider.score)
        for key, value in cider.per_image.items():
            scores.per_image[key]["cider"] = value
    if coco:
        for name, result in coco_metrics(predictions, references, coco).results.items():
            scores._add(name, result.value, result.unavailable)


def _clip_metrics(
    scores: CaptionScores,
    predictions: Mapping[Any, str],
    references: dict | None,
    images: Mapping[Any, Any] | None,
    clip: Clip | None,
    metrics: Sequence[str],
    prefix: str | None,
    batch_size: int,
) -> None:
    asked = [name for name in ("clip_score", "ref_clip_score") if name in metrics]
    reason = None if clip is not None else "no clip given"
    reason = reason or (None if images is not None else "no images given")
    if "ref_clip_score" in asked and references is None:
        scores._add("ref_clip_score", None, "no references given")
        asked.remove("ref_clip_score")
    if not asked or reason:
        for name in asked:
            scores._add(name, None, reason)
        return
    keys = list(predictions)
    pixels = [
        image if isinstance(image, Image.Image) else read_image(image)
        for image in (images[key] for key in keys)
    ]
    captions = [predictions[key] for key in keys]
    if "ref_clip_score" in asked:
        both = ref_clip_score(clip, pixels, captions, [references[k] for k in keys], batch_size, prefix)
        values = {"clip_score": both.per_image_clip, "ref_clip_score": both.per_image_ref}
    else:
        values = {"clip_score": clip_score(clip, pixels, captions, batch_size, prefix).per_image}
    for name in asked:
        scores._add(name, sum(values[name]) / len(values[name]))
        for key, value in zip(keys, values[name], strict=True):
            scores.per_image[key][name] = value
