"""Zero-shot image-text retrieval: one pass over the images, one over the captions, then every rank.

The images go through `encode_image_files` (a caption folder) or `encode_shard_samples` (caption shards
written by `vlkit data shard`), the zero-shot classifier's own image pass, so retrieval reads, splits and
gathers images exactly as `vlkit zeroshot` does; the captions are encoded once with `Clip.encode_texts`,
split across processes under `accelerate launch` the same way (`encode_texts_in_shares`). The ranks and
recalls are `vlkit.metrics.retrieval`'s (CLIP_benchmark's definitions). It lives beside the classifier, not
in `captioning/`, because it is the other zero-shot task of CLIP_benchmark: embeddings in, ranks out, no
caption model. A sigmoid-scored model (SigLIP) ranks the same way: its probability is monotone in the
cosine, so the cosine is what is ranked for every model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from vlkit.data.captions import CaptionDataset
from vlkit.data.shards import ShardSample
from vlkit.errors import VlkitError
from vlkit.metrics.retrieval import RECALL_KS, RetrievalRanks, retrieval_ranks
from vlkit.models.clip import Clip
from vlkit.runtime.distributed import gather_in_order, process_range
from vlkit.zeroshot.classifier import ImageEmbeddings, encode_image_files, encode_shard_samples

log = logging.getLogger(__name__)


@dataclass
class RetrievalSet:
    """The images and captions ranked: image i is `image_ids[i]` (`file_names[i]`), text t is `texts[t]`,
    a caption of image `text_image_index[t]`; captions in the order of their images, then of the file."""

    image_ids: list[int | str]
    file_names: list[str]
    texts: list[str]
    text_image_index: list[int]


@dataclass
class RetrievalResult:
    """One model on one set: the set as ranked (unreadable images skipped, with their captions), the ranks."""

    retrieval_set: RetrievalSet
    ranks: RetrievalRanks
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image, reason)


def check_every_image_captioned(dataset: CaptionDataset) -> None:
    """Retrieval ranks each image's captions, so an image without one is an error that names it."""
    for index, image in enumerate(dataset.images):
        if not image.captions:
            raise VlkitError(
                f"{dataset.annotations}: images[{index}]: image {image.file_name!r} (id {image.id!r}) has no "
                "caption, and retrieval needs every image's captions"
            )


def encode_texts_in_shares(clip: Clip, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """(N, D) unit text embeddings, each text encoded once: under `accelerate launch` every process encodes
    its contiguous share (`process_range`) and gets all of them back, in input order."""
    share = process_range(len(texts))
    local = clip.encode_texts(list(texts[share.start : share.stop]), batch_size) if len(share) else None
    parts = [part for part in gather_in_order([local]) if part is not None]
    if not parts:
        raise VlkitError("retrieval: no caption to encode")
    return torch.cat(parts)


def retrieve_files(
    clip: Clip, dataset: CaptionDataset, batch_size: int = 64, on_bad_image: str = "error", top: int = 5
) -> RetrievalResult:
    """Rank a caption dataset's images and captions (each image and each caption encoded once)."""
    check_every_image_captioned(dataset)
    images = encode_image_files(clip, dataset.image_paths(), batch_size, on_bad_image)
    kept = [dataset.images[i] for i in images.kept]
    ranked = _retrieval_set([i.id for i in kept], [i.file_name for i in kept], [i.captions for i in kept])
    return _rank(clip, ranked, images, batch_size, top, str(dataset.annotations))


def retrieve_shards(
    clip: Clip, urls: Sequence[str], batch_size: int = 64, on_bad_image: str = "error", top: int = 5
) -> RetrievalResult:
    """Rank the images and captions of caption shards (`vlkit data shard`: an image and its captions)."""
    encoded = encode_shard_samples(clip, urls, _shard_captions, batch_size, on_bad_image)
    ids, names, captions = zip(*encoded.records, strict=True) if encoded.records else ((), (), ())
    ranked = _retrieval_set(list(ids), list(names), list(captions))
    return _rank(clip, ranked, encoded.embeddings, batch_size, top, f"shards {urls[0]}")


def _shard_captions(sample: ShardSample) -> tuple[int | str, str, list[str]]:
    # a sample written from an image without captions holds one empty .txt, which reads back as [""]
    if not any(caption.strip() for caption in sample.captions):
        raise VlkitError(
            f"{sample.where}: image {sample.file_name!r} has no caption, and retrieval needs every image's "
            "captions"
        )
    blank = next((n for n, caption in enumerate(sample.captions, 1) if not caption.strip()), None)
    if blank is not None:
        raise VlkitError(f"{sample.where}: caption {blank} is empty")
    return sample.id, sample.file_name, list(sample.captions)


def _retrieval_set(
    ids: list[int | str], file_names: list[str], captions: Sequence[Sequence[str]]
) -> RetrievalSet:
    texts = [text for image_captions in captions for text in image_captions]
    index = [i for i, image_captions in enumerate(captions) for _ in image_captions]
    return RetrievalSet(ids, file_names, texts, index)


def _rank(
    clip: Clip, ranked: RetrievalSet, images: ImageEmbeddings, batch_size: int, top: int, source: str
) -> RetrievalResult:
    if not ranked.image_ids:
        detail = " (every image was skipped)" if images.skipped else ""
        raise VlkitError(f"{source}: no image to retrieve{detail}")
    texts = encode_texts_in_shares(clip, ranked.texts, batch_size)
    _warn_small_gallery(len(ranked.image_ids), len(ranked.texts))
    ranks = retrieval_ranks(images.features, texts, ranked.text_image_index, RECALL_KS, top)
    return RetrievalResult(ranked, ranks, images.skipped)


def _warn_small_gallery(n_images: int, n_texts: int) -> None:
    for direction, gallery, kind in (
        ("image-to-text", n_texts, "captions"),
        ("text-to-image", n_images, "images"),
    ):
        over = [k for k in RECALL_KS if k >= gallery]
        if over:
            log.warning(
                "%s: the gallery has %d %s, so R@%s is 1.0 (every query is found within the whole gallery)",
                direction,
                gallery,
                kind,
                "/R@".join(map(str, over)),
            )
