"""Score a predictions file with every caption metric vlkit has, and find the best and worst pairs.

The metrics live in `vlkit.metrics` (CIDEr-D, pycocoevalcap's BLEU / METEOR / ROUGE-L, CLIPScore and
RefCLIPScore, CHAIR and attribute accuracy); this module reads the inputs through `vlkit.data`, calls each
metric that was asked for, and writes OUT_DIR/metrics.json, per_image.csv, per_image.json and pairs.png
(atomically). A metric that cannot be computed here is written as `{"value": null, "unavailable": reason}`,
never as 0. `vlkit evaluate` is its command line.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from vlkit.captioning.clipscore import clip_score, ref_clip_score
from vlkit.data.captions import CaptionImage, load_caption_dataset
from vlkit.data.images import check_policy, read_image, scan_images
from vlkit.data.predictions import load_predictions
from vlkit.errors import VlkitError
from vlkit.metrics.cider import cider_d
from vlkit.metrics.coco import coco_metrics
from vlkit.metrics.grounding import ATTRIBUTE_KINDS, attribute_accuracy, chair
from vlkit.metrics.names import CIDER_TOKENIZERS, DEFAULT_PREFIX, METRICS
from vlkit.models.clip import Clip, ClipSpec, load_clip
from vlkit.runtime.distributed import gather_in_order, is_main_process, process_range
from vlkit.runtime.files import write_bytes_atomic, write_json_atomic, write_text_atomic
from vlkit.viz.pairs import ScoredPair, best_worst_pairs_figure

_NEEDS_REFERENCES = {"cider", "ref_clip_score", "bleu", "meteor", "rouge_l"}
_NEEDS_CLIP = {"clip_score", "ref_clip_score"}
_COCO = ("bleu", "meteor", "rouge_l")


@dataclass
class EvaluationRequest:
    """What to evaluate and how; one field per option of `vlkit evaluate`."""

    predictions: Path
    annotations: Path
    images: Path
    out: Path
    model: str | None = None
    # None: every metric, those that cannot run reported unavailable (clip_score without a model too).
    metrics: tuple[str, ...] | None = None
    prefix: str | None = DEFAULT_PREFIX
    tokenizer: str = "ptb"
    top_k: int = 5
    allow_partial: bool = False
    allow_empty: bool = False
    batch_size: int = 64
    device: str = "auto"
    precision: str = "auto"  # of the CLIP metrics' model: bf16 only where the device runs it natively
    on_bad_image: str = "error"
    # `vlkit --allow-pickle`: a --model folder's pickled weights also load (torch.load, weights_only=True).
    allow_pickle: bool = False

    @property
    def requested(self) -> tuple[str, ...]:
        return METRICS if self.metrics is None else self.metrics


def run_evaluation(request: EvaluationRequest, clip: Clip | None = None) -> dict[str, Any]:
    """Compute the requested metrics, write OUT_DIR's files, return the metrics.json document."""
    _check_request(request, have_clip=clip is not None)
    asked = set(request.requested)
    dataset = load_caption_dataset(
        request.annotations, request.images, require_captions=bool(asked & _NEEDS_REFERENCES)
    )
    predicted = load_predictions(request.predictions, dataset, request.allow_partial, request.allow_empty)
    images = [image for image in dataset.images if image.id in predicted]
    candidates = [predicted[image.id] for image in images]
    scores = _Scores(
        rows=[
            {"image_id": image.id, "file_name": image.file_name, "caption": caption}
            for image, caption in zip(images, candidates, strict=True)
        ]
    )
    _reference_metrics(request, images, candidates, scores)
    pairs = _clip_metrics(request, images, candidates, scores, clip)
    _grounding_metrics(request, images, candidates, scores)
    report = {
        "predictions": str(request.predictions),
        "annotations": str(request.annotations),
        "n_images": len(images),
        "n_images_in_annotations": len(dataset),
        "metrics": scores.metrics,
        "details": scores.details,
        "pairs": pairs,
    }
    if is_main_process():  # under `accelerate launch` every process holds the report; one writes it
        _write_outputs(request.out, report, scores.rows)
    return report


@dataclass
class _Scores:
    """What the metrics add up: per-image rows, metrics.json's "metrics" (name -> {"value", ...}), details."""

    rows: list[dict[str, Any]]
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def unavailable(self, names: Sequence[str], reason: str) -> None:
        self.metrics.update({name: {"value": None, "unavailable": reason} for name in names})

    def add(self, name: str, value: float | None, reason_if_none: str = "") -> None:
        self.metrics[name] = (
            {"value": value} if value is not None else {"value": None, "unavailable": reason_if_none}
        )


def _check_request(request: EvaluationRequest, have_clip: bool) -> None:
    check_policy(request.on_bad_image)
    if request.tokenizer not in CIDER_TOKENIZERS:
        raise VlkitError(
            f"--tokenizer: unknown {request.tokenizer!r}; choose from {', '.join(CIDER_TOKENIZERS)}"
        )
    if request.top_k < 0 or request.batch_size < 1:
        raise VlkitError("--top-k must be at least 0 and --batch-size at least 1")
    clip_metrics = [name for name in request.metrics or () if name in _NEEDS_CLIP]
    if clip_metrics and request.model is None and not have_clip:
        raise VlkitError(
            f"--model: a CLIP is needed for {', '.join(clip_metrics)} (or leave them out of --metrics)"
        )


def _reference_metrics(
    request: EvaluationRequest, images: list[CaptionImage], candidates: list[str], scores: _Scores
) -> None:
    by_id = dict(zip([image.id for image in images], candidates, strict=True))
    references = {image.id: image.captions for image in images}
    if "cider" in request.requested:
        cider = cider_d(by_id, references, tokenizer=request.tokenizer)
        scores.add("cider", cider.score)
        scores.details["cider_tokenizer"] = request.tokenizer
        for row, image in zip(scores.rows, images, strict=True):
            row["cider"] = cider.per_image[image.id]
    coco = [name for name in _COCO if name in request.requested]
    if coco:
        coco_scores = coco_metrics(by_id, references, coco)
        scores.metrics.update(coco_scores.as_dict())
        scores.details["coco_tokenizer"] = coco_scores.tokenizer


def _clip_metrics(
    request: EvaluationRequest,
    images: list[CaptionImage],
    candidates: list[str],
    scores: _Scores,
    clip: Clip | None,
) -> dict[str, Any]:
    """CLIP-S and RefCLIP-S of the readable images; returns the best / worst pairs by CLIP-S."""
    asked = [name for name in ("clip_score", "ref_clip_score") if name in request.requested]
    if not asked:
        return {"unavailable": "clip_score was not requested"}
    if request.model is None and clip is None:
        scores.unavailable(asked, "no --model given")
        return {"unavailable": "no --model given"}
    scan = scan_images([image.path for image in images], request.on_bad_image)
    kept = [images[index] for index in scan.kept]
    scores.details["clip"] = {
        "model": request.model,
        "prefix": request.prefix,
        "skipped_images": [{"file": str(s.path), "reason": s.reason} for s in scan.skipped],
    }
    if not kept:
        scores.unavailable(asked, "no readable image")
        return {"unavailable": "no readable image"}
    clip = clip or load_clip(
        ClipSpec(
            request.model or "",
            device=request.device,
            precision=request.precision,
            allow_pickle=request.allow_pickle,
        )
    )
    # CLIPScore's formula is CLIP's (w * max(cos, 0), w = 2.5), kept for a SigLIP too: the record says which
    # kind of model's cosine it is, since the two kinds' values are not on one scale.
    scores.details["clip"].update(precision=clip.precision, scoring=clip.scoring)
    pixels = _LazyImages([image.path for image in kept])
    kept_captions = [candidates[index] for index in scan.kept]
    # Under `accelerate launch` each process scores its contiguous share of the images (CLIP-S and
    # RefCLIP-S are per image); the per-image scores are gathered back in order.
    share = process_range(len(kept))
    mine = slice(share.start, share.stop)
    local: dict[str, list[float]] = {name: [] for name in ("clip_score", *asked)}
    if len(share):
        mine_pixels = _LazyImages([image.path for image in kept[mine]])
        if "ref_clip_score" in asked:
            references = [image.captions for image in kept[mine]]
            both = ref_clip_score(
                clip, mine_pixels, kept_captions[mine], references, request.batch_size, request.prefix
            )
            local = {"clip_score": both.per_image_clip, "ref_clip_score": both.per_image_ref}
        else:
            only = clip_score(clip, mine_pixels, kept_captions[mine], request.batch_size, request.prefix)
            local = {"clip_score": only.per_image}
    per_image = {name: [float(v) for v in gather_in_order(list(values))] for name, values in local.items()}
    for name in asked:
        scores.add(name, sum(per_image[name]) / len(per_image[name]))
    # Rows get CLIP-S even when only RefCLIP-S was asked for: the pairs are ranked by it.
    for name, values in per_image.items():
        for position, index in enumerate(scan.kept):
            scores.rows[index][name] = values[position]
    return _pairs([scores.rows[index] for index in scan.kept], pixels, request)


def _pairs(rows: Sequence[dict[str, Any]], pixels: _LazyImages, request: EvaluationRequest) -> dict[str, Any]:
    """The top-k and bottom-k rows by CLIP-S (worst first), drawn to OUT_DIR/pairs.png."""
    order = sorted(range(len(rows)), key=lambda i: rows[i]["clip_score"], reverse=True)
    k = min(request.top_k, len(rows))
    top, bottom = order[:k], order[::-1][:k]
    if k:

        def pair(i: int) -> ScoredPair:
            return ScoredPair(pixels[i], rows[i]["caption"], rows[i]["clip_score"], rows[i]["file_name"])

        if is_main_process():
            figure = best_worst_pairs_figure([pair(i) for i in top], [pair(i) for i in bottom])
            write_bytes_atomic(request.out / "pairs.png", figure)
    listed = ("image_id", "file_name", "caption", "clip_score")
    return {
        "metric": "clip_score",
        "top": [{key: rows[i][key] for key in listed} for i in top],
        "bottom": [{key: rows[i][key] for key in listed} for i in bottom],
    }


def _grounding_metrics(
    request: EvaluationRequest, images: list[CaptionImage], candidates: list[str], scores: _Scores
) -> None:
    asked = [name for name in ("chair", "attributes") if name in request.requested]
    attribute_names = [f"attribute_{kind}" for kind in ATTRIBUTE_KINDS]
    objects = [image.extra.get("objects") for image in images]
    if asked and not all(isinstance(found, list) for found in objects):
        reason = f"the images of {request.annotations} carry no 'objects' (only shapes-world annotations do)"
        chair_names = ["chair_i", "chair_s"] if "chair" in asked else []
        scores.unavailable(chair_names + (attribute_names if "attributes" in asked else []), reason)
        return
    if "chair" in asked:
        result = chair(candidates, objects)
        scores.add("chair_i", result.chair_i, "no caption mentions an object")
        scores.add("chair_s", result.chair_s)
        scores.details["chair"] = {"n_mentions": result.n_mentions, "n_hallucinated": result.n_hallucinated}
        for row, caption_chair in zip(scores.rows, result.per_caption, strict=True):
            row["mentions"] = caption_chair.n_mentions
            row["hallucinated"] = "; ".join(caption_chair.hallucinated)
    if "attributes" not in asked:
        return
    sizes = {(image.extra.get("width"), image.extra.get("height")) for image in images}
    width, height = next(iter(sizes))
    if len(sizes) != 1 or width != height or not isinstance(width, int):
        scores.unavailable(
            attribute_names,
            "positions need square images of one size ('width' and 'height' "
            f"of every image of {request.annotations})",
        )
        return
    accuracy = attribute_accuracy(candidates, objects, width)
    for kind in ATTRIBUTE_KINDS:
        scores.add(f"attribute_{kind}", getattr(accuracy, kind), f"no caption makes a {kind} claim")
    scores.details["attributes"] = {
        kind: {"correct": tally.correct, "total": tally.total}
        for kind, tally in accuracy.per_kind_counts.items()
    }
    for row, tallies in zip(scores.rows, accuracy.per_caption, strict=True):
        row.update({f"{kind}_accuracy": tallies[kind].accuracy for kind in ATTRIBUTE_KINDS})


class _LazyImages(Sequence[Image.Image]):
    """Images read when indexed, so that a large set is never all in memory (CLIPScore slices batches)."""

    def __init__(self, paths: Sequence[str | os.PathLike[str]]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [read_image(path) for path in self.paths[index]]
        return read_image(self.paths[index])


def _write_outputs(out: Path, report: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    write_json_atomic(out / "metrics.json", report)
    if not report["pairs"].get("top"):
        (out / "pairs.png").unlink(missing_ok=True)  # a figure left by an earlier run would not match
    write_json_atomic(out / "per_image.json", [{key: row.get(key) for key in columns} for row in rows])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: "" if value is None else value for key, value in row.items()} for row in rows)
    write_text_atomic(out / "per_image.csv", buffer.getvalue())
