"""Zero-shot classification with prompt-template analysis, from ONE pass over the images.

Each image is encoded once; every template alone and the template ensemble are then scored from the same
image embeddings with one matrix product per template. The ensemble follows the CLIP paper: normalize each
template's class embedding, average over templates, renormalize (`ensemble_embeddings`). Text embeddings are
cached per (model, class names, templates). The CLIP itself comes from `vlkit.models.clip`; this module holds
only the scoring, which no library offers per template (CLIP_benchmark reruns the whole dataset per template).

Predictions rank classes by cosine, which does not depend on the model's scoring; the ensemble's class
probabilities are the model's own (`vlkit.models.clip.class_probabilities`: a softmax over the classes for
CLIP, an independent sigmoid per class with the logit bias for SigLIP).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import torch

from vlkit.data.images import read_images
from vlkit.data.shards import ShardSample, map_shards, shard_label
from vlkit.errors import VlkitError
from vlkit.models.clip import Clip, class_probabilities
from vlkit.models.hub import resolve_model_name
from vlkit.runtime.distributed import gather_in_order, process_range
from vlkit.runtime.progress import track
from vlkit.zeroshot.templates import PLACEHOLDER, TEMPLATE_SETS

log = logging.getLogger(__name__)
R = TypeVar("R")


def resolve_templates(name_or_file: str) -> list[str]:
    """A named set (`seed`, `imagenet80`) or a UTF-8 text file with one template per line."""
    if name_or_file in TEMPLATE_SETS:
        return list(TEMPLATE_SETS[name_or_file])
    path = Path(name_or_file)
    if not path.is_file():
        names = ", ".join(TEMPLATE_SETS)
        raise VlkitError(f"--templates: {name_or_file!r} is neither a named set ({names}) nor a file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise VlkitError(f"{path}: not valid UTF-8 (byte {exc.start})") from exc
    templates = [line.strip() for line in lines if line.strip()]
    if not templates:
        raise VlkitError(f"{path}: no templates (expected one per line, with {PLACEHOLDER})")
    return validate_templates(templates, source=str(path))


def validate_templates(templates: Sequence[str], source: str = "templates") -> list[str]:
    for number, template in enumerate(templates, 1):
        if PLACEHOLDER not in template:
            raise VlkitError(f"{source}: template {number} {template!r} has no {PLACEHOLDER}")
    return list(templates)


def fill_template(template: str, class_name: str) -> str:
    # Plain replacement, not str.format: class names and templates may hold other braces.
    return template.replace(PLACEHOLDER, class_name)


def ensemble_embeddings(per_template: torch.Tensor) -> torch.Tensor:
    """(T, C, D) unit vectors -> (C, D): mean of the normalized template embeddings, renormalized."""
    return torch.nn.functional.normalize(per_template.mean(dim=0), dim=-1)


class TextEmbeddingCache:
    """Text embeddings keyed by (model, class names, templates): in memory, and on disk given a folder.
    `max_entries` bounds the memory (the oldest entry goes first), for a server that takes labels from
    anyone (`vlkit app`); None keeps every entry, as a command that runs once needs."""

    def __init__(self, folder: Path | None = None, max_entries: int | None = None):
        self.folder, self.memory, self.max_entries = folder, {}, max_entries

    @staticmethod
    def key(model_id: str, class_names: Sequence[str], templates: Sequence[str]) -> str:
        payload = json.dumps([model_id, list(class_names), list(templates)]).encode()
        return hashlib.sha256(payload).hexdigest()[:32]

    def get(self, key: str) -> torch.Tensor | None:
        if key in self.memory:
            return self.memory[key]
        if self.folder is not None and (self.folder / f"{key}.safetensors").is_file():
            from safetensors.torch import load_file

            self.memory[key] = load_file(str(self.folder / f"{key}.safetensors"))["embeddings"]
            return self.memory[key]
        return None

    def put(self, key: str, value: torch.Tensor) -> None:
        self.memory[key] = value
        while self.max_entries is not None and len(self.memory) > self.max_entries:
            self.memory.pop(next(iter(self.memory)))
        if self.folder is not None:
            from safetensors.torch import save

            from vlkit.runtime.files import write_bytes_atomic

            write_bytes_atomic(self.folder / f"{key}.safetensors", save({"embeddings": value.contiguous()}))


_DEFAULT_CACHE = TextEmbeddingCache()


def model_identity(clip: Clip) -> str:
    """A cache key part that changes when a local model's weights change (hub ids are immutable enough)."""
    path = Path(resolve_model_name(clip.name))
    weights = path / "model.safetensors"
    if weights.is_file():
        stat = weights.stat()
        return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{clip.dtype}"
    return f"{clip.name}:{clip.dtype}"


def encode_templates(
    clip: Clip, class_names: Sequence[str], templates: Sequence[str], cache: TextEmbeddingCache | None = None
) -> torch.Tensor:
    """(T, C, D) unit text embeddings of every template filled with every class name."""
    if not class_names:
        raise VlkitError("class names: the list is empty")
    cache = cache or _DEFAULT_CACHE
    key = cache.key(model_identity(clip), class_names, templates)
    cached = cache.get(key)
    if cached is not None:
        return cached
    prompts = [fill_template(t, c) for t in templates for c in class_names]
    embeddings = clip.encode_texts(prompts).view(len(templates), len(class_names), -1)
    cache.put(key, embeddings)
    return embeddings


@dataclass
class ImageEmbeddings:
    features: torch.Tensor  # (N, D) unit vectors of the images that could be read
    kept: list[int]  # indices into the input paths
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def encode_image_files(
    clip: Clip, paths: Sequence[Path], batch_size: int = 64, on_bad_image: str = "error"
) -> ImageEmbeddings:
    """Read, preprocess and encode every image once. Under `accelerate launch` each process encodes its
    contiguous share and every process gets all the embeddings back, in input order."""
    features, kept, skipped = [], [], []
    share = process_range(len(paths))
    starts = range(share.start, share.stop, batch_size)
    for start in track(starts, "encode images", total=len(starts)):
        batch = read_images(paths[start : min(start + batch_size, share.stop)], on_bad_image=on_bad_image)
        skipped.extend((str(s.path), s.reason) for s in batch.skipped)
        if batch.images:
            features.append(clip.encode_images(clip.preprocess(batch.images)).cpu())
            kept.extend(start + i for i in batch.kept)
    features = [f for f in gather_in_order(features) if len(f)]
    kept, skipped = gather_in_order(kept), gather_in_order(skipped)
    dim = features[0].shape[1] if features else 0
    return ImageEmbeddings(torch.cat(features) if features else torch.empty(0, dim), kept, skipped)


@dataclass
class TemplateScore:
    template: str
    top1: float
    top5: float
    seen_top1: float | None
    unseen_top1: float | None


@dataclass
class PromptAnalysis:
    """Every template alone and the ensemble, scored on the same image embeddings."""

    templates: list[TemplateScore]
    ensemble: TemplateScore
    class_names: list[str]
    labels: list[int]  # (N,) true label of each scored image
    predictions: torch.Tensor  # (T + 1, N) top-1 class of each template, the ensemble last
    unseen_class_ids: list[int]
    image_indices: list[int] = field(default_factory=list)  # index into the input paths of each scored image
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of unreadable images
    ensemble_similarities: torch.Tensor | None = None  # (N, C) cosine of each image with each class
    # (N, C) the ensemble's class probabilities as the model scores them (`scoring`); set given a Clip
    probabilities: torch.Tensor | None = None
    scoring: str | None = None

    def top_classes(self, k: int = 5) -> list[list[tuple[str, float]]]:
        """Each image's k most probable classes under the ensemble, (name, probability), best first."""
        if self.probabilities is None:
            raise ValueError("no probabilities: score with a Clip (analyse_embeddings / analyse_prompts)")
        values, indices = self.probabilities.topk(min(k, self.probabilities.shape[-1]), dim=-1)
        return [
            [(self.class_names[int(i)], float(v)) for v, i in zip(row_values, row_indices, strict=True)]
            for row_values, row_indices in zip(values, indices, strict=True)
        ]

    @property
    def best_template_index(self) -> int:
        return max(range(len(self.templates)), key=lambda i: self.templates[i].top1)

    def per_class_accuracy(self, row: int) -> dict[str, float | None]:
        """Accuracy per class of prediction row `row` (-1: the ensemble); None for a class with no image."""
        labels = torch.tensor(self.labels)
        correct = self.predictions[row] == labels
        out = {}
        for class_id, name in enumerate(self.class_names):
            mask = labels == class_id
            out[name] = float(correct[mask].float().mean()) if mask.any() else None
        return out

    def confusion(self, row: int = -1) -> list[list[int]]:
        """(C, C) counts, true class by row, predicted class by column."""
        size = len(self.class_names)
        flat = torch.tensor(self.labels) * size + self.predictions[row]
        return torch.bincount(flat, minlength=size * size).view(size, size).tolist()


def _accuracy(correct: torch.Tensor, mask: torch.Tensor | None = None) -> float | None:
    if mask is not None:
        if not mask.any():
            return None
        correct = correct[mask]
    return float(correct.float().mean()) if len(correct) else None


def score_templates(
    image_features: torch.Tensor,
    text_embeddings: torch.Tensor,
    labels: Sequence[int],
    templates: Sequence[str],
    class_names: Sequence[str],
    unseen_class_ids: Sequence[int] = (),
) -> PromptAnalysis:
    """Score each template and the ensemble: (N, D) images x (T, C, D) texts -> accuracies and predictions."""
    weights = torch.cat([text_embeddings, ensemble_embeddings(text_embeddings)[None]])  # (T+1, C, D)
    logits = torch.einsum("nd,tcd->tnc", image_features.float(), weights.float())  # (T+1, N, C)
    k = min(5, logits.shape[-1])
    top = logits.topk(k, dim=-1).indices  # (T+1, N, k)
    target = torch.tensor(list(labels))
    unseen = torch.isin(target, torch.tensor(list(unseen_class_ids), dtype=torch.long))
    scores = []
    for row in range(weights.shape[0]):
        hit1 = top[row, :, 0] == target
        hit5 = (top[row] == target[:, None]).any(dim=-1)
        name = templates[row] if row < len(templates) else "ensemble"
        seen_top1 = _accuracy(hit1, ~unseen) if len(unseen_class_ids) else None
        scores.append(
            TemplateScore(
                name,
                _accuracy(hit1) or 0.0,
                _accuracy(hit5) or 0.0,
                seen_top1,
                _accuracy(hit1, unseen) if len(unseen_class_ids) else None,
            )
        )
    return PromptAnalysis(
        scores[:-1],
        scores[-1],
        list(class_names),
        list(labels),
        top[:, :, 0],
        list(unseen_class_ids),
        ensemble_similarities=logits[-1],
    )


def analyse_prompts(
    clip: Clip,
    paths: Sequence[Path],
    labels: Sequence[int],
    class_names: Sequence[str],
    templates: Sequence[str],
    unseen_class_ids: Sequence[int] = (),
    batch_size: int = 64,
    on_bad_image: str = "error",
    cache: TextEmbeddingCache | None = None,
) -> PromptAnalysis:
    """Encode the images once, encode every (template, class) prompt, score everything."""
    check_labels(labels, class_names)
    validate_templates(templates)
    images = encode_image_files(clip, paths, batch_size, on_bad_image)
    return analyse_embeddings(clip, images, labels, class_names, templates, unseen_class_ids, cache)


def analyse_embeddings(
    clip: Clip,
    images: ImageEmbeddings,
    labels: Sequence[int],
    class_names: Sequence[str],
    templates: Sequence[str],
    unseen_class_ids: Sequence[int] = (),
    cache: TextEmbeddingCache | None = None,
) -> PromptAnalysis:
    """Score images encoded once (`labels[i]` is the label of input i; `images.kept` the inputs read)."""
    if not images.kept:
        raise VlkitError("no image could be read (every image was skipped)")
    texts = encode_templates(clip, class_names, templates, cache)
    kept_labels = [labels[i] for i in images.kept]
    analysis = score_templates(images.features, texts, kept_labels, templates, class_names, unseen_class_ids)
    analysis.image_indices, analysis.skipped = images.kept, images.skipped
    analysis.probabilities = class_probabilities(analysis.ensemble_similarities, clip)
    analysis.scoring = clip.scoring
    return analysis


def check_labels(labels: Sequence[int], class_names: Sequence[str]) -> None:
    for label in set(labels):
        if not 0 <= label < len(class_names):
            raise VlkitError(f"class names: label {label} has no class name ({len(class_names)} names given)")


@dataclass
class ShardImages:
    """Classification shards encoded once: sample `names[i]` (shard URL#file name) has label `labels[i]`."""

    embeddings: ImageEmbeddings
    labels: list[int]
    names: list[str]


def encode_shard_images(
    clip: Clip, urls: Sequence[str], batch_size: int = 64, on_bad_image: str = "error"
) -> ShardImages:
    """Stream classification shards and encode every image once (`encode_shard_samples`)."""
    encoded = encode_shard_samples(clip, urls, shard_label, batch_size, on_bad_image)
    return ShardImages(encoded.embeddings, encoded.records, encoded.names)


@dataclass
class ShardEncoding(Generic[R]):
    """Shards encoded once: `records[i]` is what `describe` kept of encoded sample `names[i]` (URL#file)."""

    embeddings: ImageEmbeddings
    records: list[R]
    names: list[str]


def encode_shard_samples(
    clip: Clip,
    urls: Sequence[str],
    describe: Callable[[ShardSample], R],
    batch_size: int = 64,
    on_bad_image: str = "error",
) -> ShardEncoding[R]:
    """Stream shards and encode every image once, keeping `describe(sample)` of each image encoded (its
    label, its captions: read before the image is decoded, so a sample that lacks it fails even when its
    image is skipped). Under `accelerate launch` process p streams shards p, p+N, ... and every process
    gets everything back in shard order."""

    def encode_shard(url: str, samples: Iterator[ShardSample]) -> tuple[list, list, list, list]:
        features, records, names, skipped, batch = [], [], [], [], []

        def flush() -> None:
            features.append(clip.encode_images(clip.preprocess(batch)).cpu())
            batch.clear()

        for sample in samples:
            name, record = f"{url}#{sample.file_name}", describe(sample)
            try:
                image = sample.image
            except VlkitError as exc:
                if on_bad_image != "skip":
                    raise
                skipped.append((name, str(exc)))
                continue
            batch.append(image)
            records.append(record)
            names.append(name)
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
        return features, records, names, skipped

    features, records, names, skipped = [], [], [], []
    for shard_features, shard_records, shard_names, shard_skipped in map_shards(
        urls, encode_shard, "encode shards"
    ):
        features += shard_features
        records += shard_records
        names += shard_names
        skipped += shard_skipped
    dim = features[0].shape[1] if features else 0
    embeddings = ImageEmbeddings(
        torch.cat(features) if features else torch.empty(0, dim), list(range(len(names))), skipped
    )
    return ShardEncoding(embeddings, records, names)
