"""Captioning baselines that a trained captioner has to beat.

`retrieval_captions` is the nearest-neighbour baseline of Devlin et al. (2015, "Exploring nearest neighbor
approaches for image captioning") in its simplest form: each query image gets a caption of the training
image nearest to it by CLIP image embedding (cosine). A captioner that does not beat it has learned nothing a
lookup table does not know. None of the field's libraries ships this baseline, hence the few lines here; the
embeddings come from the same `Clip` interface (and so the same model) as CLIPScore.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from vlkit.data.captions import CaptionDataset
from vlkit.errors import VlkitError
from vlkit.models.clip import Clip
from vlkit.zeroshot.classifier import encode_image_files


def retrieval_captions(
    clip: Clip, train: CaptionDataset, queries: Sequence[Path], batch_size: int = 64, chunk: int = 4096
) -> dict[str, str]:
    """{query file stem: the first caption of its nearest training image} (DLCV predictions layout).

    The first caption is the choice: the shapes world's captions are drawn independently by its grammar, so
    none is more typical than another, and on COCO the first is as good a pick as any without a reranker.
    """
    usable = [i for i, image in enumerate(train.images) if image.captions]
    if not usable:
        raise VlkitError(f"{train.annotations}: no training image has a caption to retrieve")
    bank = encode_image_files(clip, [train.images[i].path for i in usable], batch_size)
    query = encode_image_files(clip, list(queries), batch_size)
    nearest = (
        torch.cat(
            [
                (query.features[s : s + chunk] @ bank.features.T).argmax(dim=1)
                for s in range(0, len(query.kept), chunk)
            ]
        )
        if query.kept
        else torch.empty(0, dtype=torch.long)
    )
    return {
        Path(queries[q]).stem: train.images[usable[bank.kept[int(j)]]].captions[0]
        for q, j in zip(query.kept, nearest, strict=True)
    }
