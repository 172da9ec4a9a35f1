"""Retrieval's definitions written again, plainly and apart from `vlkit.metrics.retrieval`, to check it.

Python lists and loops: each query's candidates in a stable descending sort by score (Python's `sorted` keeps
the listing order of ties, the tie rule vlkit documents). Recall follows CLIP_benchmark's wording: an image
hits at k when the set of its k best texts holds one of its captions, a text when its image is among its k
best images. Median and mean rank follow open_clip's `get_clip_metrics`: 0-based ranks, `floor(median) + 1`
and `mean + 1`.
"""

from __future__ import annotations

import math
import statistics


def descending(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda j: -scores[j])


def reference_retrieval(similarity: list[list[float]], text_image: list[int], ks=(1, 5, 10), top=5) -> dict:
    n_images, n_texts = len(similarity), len(text_image)
    captions = [{t for t in range(n_texts) if text_image[t] == i} for i in range(n_images)]
    image_orders = [descending(similarity[i]) for i in range(n_images)]
    text_orders = [descending([similarity[i][t] for i in range(n_images)]) for t in range(n_texts)]
    image_rank0 = [min(order.index(t) for t in captions[i]) for i, order in enumerate(image_orders)]
    text_rank0 = [order.index(text_image[t]) for t, order in enumerate(text_orders)]

    def figures(rank0: list[int], hits: dict[int, list[bool]]) -> dict:
        out = {f"R@{k}": sum(hits[k]) / len(hits[k]) for k in ks}
        out["median_rank"] = float(math.floor(statistics.median(rank0)) + 1)
        out["mean_rank"] = sum(rank0) / len(rank0) + 1
        return out

    image_hits = {k: [bool(set(order[:k]) & captions[i]) for i, order in enumerate(image_orders)] for k in ks}
    text_hits = {k: [text_image[t] in order[:k] for t, order in enumerate(text_orders)] for k in ks}
    return {
        "image_ranks": [r + 1 for r in image_rank0],
        "text_ranks": [r + 1 for r in text_rank0],
        "image_to_text": figures(image_rank0, image_hits),
        "text_to_image": figures(text_rank0, text_hits),
        "top_texts": [order[:top] for order in image_orders],
    }
