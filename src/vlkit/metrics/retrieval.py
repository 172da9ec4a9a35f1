"""Image-text retrieval metrics on a similarity matrix: recall at k, median and mean rank, each item's rank.

The definitions are CLIP_benchmark's (`clip_benchmark/metrics/zeroshot_retrieval.py`, commit 48de38c):
an image is a query over every caption of the set and *hits* at k when any of its captions is among its k
best; a caption is a query over every image and hits at k when its own image is among its k best;
R@k is the fraction of queries that hit. The ranks follow open_clip's training-time retrieval metrics
(`open_clip_train/metrics.py`, `get_clip_metrics`): rank 1 is the best; the mean rank is the mean of the
1-based ranks and the median rank is `floor(median(0-based ranks)) + 1`, numpy's median (the mean of the
two middle ranks for an even count), i.e. the median of the 1-based ranks rounded down. With one caption
per image the two libraries agree; with several, an image's rank is the best rank among its captions,
which is exactly CLIP_benchmark's "any of its captions in its top k": R@k = the fraction of ranks <= k.

Ties are broken by index, as open_clip does: among candidates with the same score the one listed first
comes first, so a query's rank is 1 + (candidates scoring higher) + (candidates scoring the same and listed
before it). That is the position in a stable descending sort, the same on every run and every machine;
CLIP_benchmark's `torch.topk` leaves the order of ties to the kernel. A k at or above the gallery size
gives R@k = 1.0 (every rank is at most the gallery size), where CLIP_benchmark's topk would raise.

Neither library exposes these as functions on a similarity matrix (CLIP_benchmark's run inside its
encoding loop, open_clip's assume one caption per image), hence the few lines here. Large sets are ranked
in row chunks, so the (chunk, gallery) comparisons stay small; each is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from vlkit.errors import VlkitError

RECALL_KS = (1, 5, 10)


@dataclass
class RankSummary:
    """One direction's figures: R@k for each k (fractions), median and mean of the 1-based ranks."""

    recall: dict[int, float]
    median_rank: float
    mean_rank: float


@dataclass
class RetrievalRanks:
    """Every query's 1-based rank in both directions, their summaries, and each image's best texts."""

    image_ranks: torch.Tensor  # (N_img,) best rank among the image's captions, over all captions
    text_ranks: torch.Tensor  # (N_txt,) rank of the caption's image, over all images
    image_to_text: RankSummary
    text_to_image: RankSummary
    top_texts: torch.Tensor  # (N_img, min(top, N_txt)) text indices, best first, in the order ranks count


def image_to_text_ranks(similarity: torch.Tensor, text_image_index: torch.Tensor) -> torch.Tensor:
    """(N_img, N_txt) similarities, the image of each text (N_txt,) -> (N_img,) 1-based ranks: the position
    of each image's first caption in its stable descending order of captions."""
    n_images, n_texts = similarity.shape
    candidates = torch.arange(n_texts)
    mine = text_image_index[None, :] == torch.arange(n_images)[:, None]  # (N_img, N_txt)
    best = similarity.masked_fill(~mine, float("-inf")).amax(dim=1, keepdim=True)  # (N_img, 1)
    # the first listed of the image's captions that reach its best score
    first = torch.where(mine & (similarity == best), candidates, n_texts).amin(dim=1, keepdim=True)
    ahead = (similarity > best) | ((similarity == best) & (candidates < first))
    return 1 + ahead.sum(dim=1)


def text_to_image_ranks(similarity: torch.Tensor, text_image_index: torch.Tensor) -> torch.Tensor:
    """(N_img, N_txt) similarities -> (N_txt,) 1-based rank of each text's image among all images."""
    by_text = similarity.T  # (N_txt, N_img)
    target = by_text.gather(1, text_image_index[:, None])  # (N_txt, 1)
    candidates = torch.arange(by_text.shape[1])
    ahead = (by_text > target) | ((by_text == target) & (candidates < text_image_index[:, None]))
    return 1 + ahead.sum(dim=1)


def best_candidates(similarity: torch.Tensor, top: int) -> torch.Tensor:
    """(Q, N) scores -> (Q, min(top, N)) indices of each row's best, ties in listing order (a stable sort:
    `torch.topk` leaves the order of ties to the kernel)."""
    return torch.sort(similarity, dim=1, descending=True, stable=True).indices[:, :top]


def summarize_ranks(ranks: torch.Tensor, ks: Sequence[int] = RECALL_KS) -> RankSummary:
    """R@k = fraction of ranks <= k; the mean of the 1-based ranks and their median rounded down (numpy's
    median: the mean of the two middle ones for an even count), as open_clip reports them."""
    ordered = ranks.double().sort().values
    middle = (ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) / 2
    return RankSummary(
        recall={k: float((ordered <= k).double().mean()) for k in ks},
        median_rank=float(torch.floor(middle)),
        mean_rank=float(ordered.mean()),
    )


def retrieval_ranks(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    text_image_index: Sequence[int] | torch.Tensor,
    ks: Sequence[int] = RECALL_KS,
    top: int = 5,
    chunk: int = 256,
) -> RetrievalRanks:
    """Rank both directions from (N_img, D) and (N_txt, D) embeddings (unit vectors: the score is their dot
    product, in fp32), `text_image_index[t]` being the row of text t's image; keep each image's `top` texts.

    The similarity of `chunk` rows at a time is formed twice (image rows, then text rows), so memory stays
    at chunk x gallery whatever the set's size; the ranks are those of `similarity_ranks` on
    `image_features @ text_features.T`, up to the matmul's rounding."""
    index = _check(
        image_features.shape[0], text_features.shape[0], text_image_index, image_features, text_features
    )
    images, texts = image_features.float(), text_features.float()
    image_ranks, best = [], []
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk] @ texts.T  # (c, N_txt)
        image_ranks.append(image_to_text_ranks(block, index - start))
        best.append(best_candidates(block, top))
    text_ranks = []
    for start in range(0, len(texts), chunk):
        block = images @ texts[start : start + chunk].T  # (N_img, c)
        text_ranks.append(text_to_image_ranks(block, index[start : start + chunk]))
    return _summarize(torch.cat(image_ranks), torch.cat(text_ranks), ks, torch.cat(best))


def similarity_ranks(
    similarity: torch.Tensor,
    text_image_index: Sequence[int] | torch.Tensor,
    ks: Sequence[int] = RECALL_KS,
    top: int = 5,
) -> RetrievalRanks:
    """Rank both directions from an (N_img, N_txt) similarity matrix (any score: higher is better)."""
    index = _check(similarity.shape[0], similarity.shape[1], text_image_index, similarity)
    return _summarize(
        image_to_text_ranks(similarity, index),
        text_to_image_ranks(similarity, index),
        ks,
        best_candidates(similarity, top),
    )


def _summarize(
    image_ranks: torch.Tensor, text_ranks: torch.Tensor, ks: Sequence[int], top_texts: torch.Tensor
) -> RetrievalRanks:
    return RetrievalRanks(
        image_ranks, text_ranks, summarize_ranks(image_ranks, ks), summarize_ranks(text_ranks, ks), top_texts
    )


def _check(
    n_images: int, n_texts: int, text_image_index: Sequence[int] | torch.Tensor, *scores: torch.Tensor
) -> torch.Tensor:
    """The text -> image index as a tensor, checked: every text names an image, every image has a text, and
    the scores are finite (a NaN compares false with everything and would rank its query first). The
    callers that read files name the file at fault before this runs; these are the last line."""
    index = torch.as_tensor(text_image_index, dtype=torch.long)
    if n_images == 0 or n_texts == 0:
        raise VlkitError(f"retrieval needs images and texts, got {n_images} images and {n_texts} texts")
    if index.shape != (n_texts,):
        raise VlkitError(f"text_image_index: shape {tuple(index.shape)}, expected ({n_texts},)")
    if index.min() < 0 or index.max() >= n_images:
        raise VlkitError(f"text_image_index: names an image outside 0..{n_images - 1}")
    captioned = torch.bincount(index, minlength=n_images)
    if (captioned == 0).any():
        raise VlkitError(f"text_image_index: image {int((captioned == 0).nonzero()[0])} has no text")
    for tensor in scores:
        if not torch.isfinite(tensor).all():
            raise VlkitError("retrieval: the embeddings or similarities hold NaN or infinity")
    return index
