"""The study's retrieval baseline: the CLIP whose patch tokens are ViLBERT's region features
(`VilbertTrainConfig.encoder`, `vlkit:shapes-clip` on the shapes world), ranking the validation captions'
images by its cosine.

It re-ranks exactly what the VL models re-rank (`vilbert_eval.retrieval_scores`): every caption's
`rerank_candidates` images, its own and others drawn with the same seed, scored into the same
(images x captions) matrix and ranked by the same `rerank_recalls`; its text-to-image R@1 over the whole
validation gallery comes beside it. The embeddings are the zero-shot pipeline's own passes
(`encode_image_files`, `Clip.encode_texts`).
"""

from __future__ import annotations

from typing import Any

from vlkit.metrics.retrieval import summarize_ranks, text_to_image_ranks


def clip_rerank(config: Any, val: Any, image_paths: list[Any]) -> dict[str, Any]:
    """CLIP's retrieval R@K on `val` (`ViLBertBatches` of the validation split, whose images are
    `image_paths`, in row order) under the study's re-ranking protocol, and over the full gallery."""
    from vlkit.models.clip import ClipSpec, load_clip
    from vlkit.train.vilbert_eval import RERANK_SEED, rerank_recalls
    from vlkit.zeroshot.classifier import encode_image_files

    clip = load_clip(ClipSpec(config.encoder, precision="fp32"))
    queries = val.retrieval_set()
    images = encode_image_files(clip, list(image_paths)).features  # (N_img, D)
    texts = clip.encode_texts(queries.texts)  # (N_txt, D)
    similarity = images @ texts.T  # (N_img, N_txt)
    chosen = val.retrieval_candidates(config.rerank_candidates, RERANK_SEED)  # (N_txt, K)
    scores = similarity.T.gather(1, chosen)  # (N_txt, K)
    out = rerank_recalls(scores, chosen, queries.text_image_index, len(images), queries.text_heldout)
    full = summarize_ranks(text_to_image_ranks(similarity, queries.text_image_index)).recall
    return {
        **out,
        "retrieval_full_r1": full[1],
        "model": config.encoder,
        "protocol": f"text-to-image re-ranking of {chosen.shape[1]} images per caption (seed {RERANK_SEED}); "
        f"full: all {len(images)} images",
    }
