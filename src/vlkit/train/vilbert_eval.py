"""A VL model's scores on a shapes world's validation split: VQA accuracy (overall, by question type, the
held-out colour x shape combinations apart), referring-expression accuracy beside two box baselines that use
no model, and text-to-image retrieval R@K by re-ranking.

The items, their answers and which picks count as right come from the data side
(`vlkit.train.vilbert_batches`: `vqa_eval`, `referring_eval` with `referring_hit`, `retrieval_candidates`
and `retrieval_pairs`); the ranks from `vlkit.metrics.retrieval`. Accuracies are over the items that involve
no held-out combination (`vqa_accuracy`, `refer_accuracy`), the held-out ones reported apart
(`*_heldout_*`), as the zero-shot split is; a group without items is None (null in JSON).

Retrieval protocol: the first caption of each validation image (or every caption, `rerank_all_captions`)
re-ranks `rerank_candidates` images, its own and others drawn at random (seeded), scored by the model's
`retrieval_scores` (a cross-encoder runs once per pair, so the full gallery, 500 images x 2,500 captions,
would cost 1.25M forward passes); the scores go into the (images x captions) similarity matrix, the images a
caption did not re-rank below all its candidates, and `metrics.retrieval` ranks each caption's image among
them, ties broken by image index (never in favour of the true image).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import extract_model_from_parallel

from vlkit.errors import VlkitError
from vlkit.metrics.retrieval import RECALL_KS, summarize_ranks, text_to_image_ranks
from vlkit.runtime.files import write_json_atomic
from vlkit.shapes.questions import QUESTION_TYPES, VqaItem
from vlkit.train.vilbert_batches import ViLBertBatches, model_inputs
from vlkit.train.vilbert_data import ViLBertData
from vlkit.train.vilbert_setup import load_data, load_run, torch_threads
from vlkit.train.vilbert_train_config import VilbertTrainConfig

RERANK_SEED = 0


def accuracy(correct: torch.Tensor) -> float | None:
    """The share of True in `correct` (None when it is empty)."""
    return float(correct.float().mean()) if correct.numel() else None


def vqa_metrics(
    predicted: torch.Tensor, answer: torch.Tensor, question_type: torch.Tensor, heldout: torch.Tensor
) -> dict[str, Any]:
    """Accuracy of `predicted` answer indices (N,) against `answer` (N,): over the items not held out, by
    question type (indices into QUESTION_TYPES), and over the held-out items apart."""
    correct, heldout = predicted == answer, heldout.bool()
    seen = ~heldout
    return {
        "vqa_accuracy": accuracy(correct[seen]),
        "vqa_by_type": {
            name: accuracy(correct[seen & (question_type == i)]) for i, name in enumerate(QUESTION_TYPES)
        },  # fmt: skip
        "vqa_heldout_accuracy": accuracy(correct[heldout]),
        "vqa_heldout_by_type": {
            name: accuracy(correct[heldout & (question_type == i)]) for i, name in enumerate(QUESTION_TYPES)
        },  # fmt: skip
        "vqa_all_accuracy": accuracy(correct),
        "vqa_items": int(seen.sum()),
        "vqa_heldout_items": int(heldout.sum()),
    }


def type_prior_accuracy(train: Sequence[VqaItem], val: Sequence[VqaItem]) -> float | None:
    """The accuracy, on the validation items not held out, of answering each question type's most frequent
    training answer: what the question's type alone earns (the answers are drawn balanced per image, so it
    is near 1/8 for colour, 1/4 for count and 1/2 for yes/no)."""
    counts: dict[str, Counter[str]] = {}
    for item in train:
        counts.setdefault(item.type, Counter())[item.answer] += 1
    guess = {kind: counter.most_common(1)[0][0] for kind, counter in counts.items()}
    seen = [item for item in val if not item.heldout]
    return sum(guess.get(item.type) == item.answer for item in seen) / len(seen) if seen else None


def referring_metrics(picked: torch.Tensor, hit: torch.Tensor, heldout: torch.Tensor) -> dict[str, Any]:
    """Accuracy of `picked` regions (N,) where `hit` (N, R) marks the picks that count as right."""
    correct = hit.gather(1, picked[:, None]).squeeze(1)
    heldout = heldout.bool()
    return {
        "refer_accuracy": accuracy(correct[~heldout]),
        "refer_heldout_accuracy": accuracy(correct[heldout]),
        "refer_items": int((~heldout).sum()),
        "refer_heldout_items": int(heldout.sum()),
    }


def centre_pick(boxes: torch.Tensor, region_mask: torch.Tensor) -> torch.Tensor:
    """(N, R, 5) normalized boxes -> (N,) the real region whose centre is nearest the image's centre."""
    centre = (boxes[..., :2] + boxes[..., 2:4]) / 2  # (N, R, 2)
    distance = ((centre - 0.5) ** 2).sum(-1)  # (N, R)
    return distance.masked_fill(~region_mask.bool(), float("inf")).argmin(1)


def largest_pick(boxes: torch.Tensor, region_mask: torch.Tensor) -> torch.Tensor:
    """(N, R, 5) normalized boxes (the fifth value is the area) -> (N,) the largest real region."""
    return boxes[..., 4].masked_fill(~region_mask.bool(), float("-inf")).argmax(1)


def referring_baselines(
    boxes: torch.Tensor, region_mask: torch.Tensor, hit: torch.Tensor, heldout: torch.Tensor
) -> dict[str, float | None]:
    """The accuracy of picking the centre box, the largest box, or a real region at random (the expected
    accuracy), on the items not held out: what a referring model must beat without reading the text."""
    seen = ~heldout.bool()
    real = region_mask.bool()
    chance = (hit & real).sum(1).float() / real.sum(1).clamp(min=1)
    return {
        "centre": referring_metrics(centre_pick(boxes, region_mask), hit, heldout)["refer_accuracy"],
        "largest": referring_metrics(largest_pick(boxes, region_mask), hit, heldout)["refer_accuracy"],
        "chance": float(chance[seen].mean()) if seen.any() else None,
    }


def rerank_recalls(
    scores: torch.Tensor,
    candidates: torch.Tensor,
    text_image_index: torch.Tensor,
    n_images: int,
    text_heldout: torch.Tensor | None = None,
) -> dict[str, Any]:
    """R@K of text-to-image re-ranking: `scores` (N_txt, K) of each caption with its `candidates` (N_txt,
    K) image rows (its own among them). The rest of the (images x captions) matrix is set below every
    score, so a caption's rank is its image's among its candidates, ties broken by image index."""
    if not bool((candidates == text_image_index[:, None]).any(1).all()):
        raise VlkitError("retrieval: a caption's own image is not among its candidates")
    floor = float(scores.min()) - 1.0
    similarity = torch.full((n_images, len(text_image_index)), floor)
    similarity.scatter_(0, candidates.T, scores.float().T)  # column t: caption t's candidates
    ranks = text_to_image_ranks(similarity, text_image_index)
    out: dict[str, Any] = {f"retrieval_r{k}": summarize_ranks(ranks).recall[k] for k in RECALL_KS}
    if text_heldout is not None and bool(text_heldout.any()):
        held = summarize_ranks(ranks[text_heldout.bool()]).recall
        out.update({f"retrieval_heldout_r{k}": held[k] for k in RECALL_KS})
    return out


@torch.inference_mode()
def _forward_all(model: Any, batches: Iterable[dict[str, torch.Tensor]], head: str, limit: int | None = None
                 ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:  # fmt: skip
    """Each evaluation batch (on the CPU) with the head's output for it, until `limit` items."""
    inner = extract_model_from_parallel(model)
    device = next(inner.parameters()).device
    done = 0
    for batch in batches:
        if limit is not None and done >= limit:
            return
        out = model(**{k: v.to(device) for k, v in model_inputs(batch).items()})
        yield batch, getattr(inner, head)(out).float().cpu()
        done += len(batch["input_ids"])


def vqa_predictions(model: Any, val: ViLBertBatches, batch_size: int, limit: int | None = None
                    ) -> dict[str, torch.Tensor]:  # fmt: skip
    """The predicted answer (argmax of `answer_logits`) of each validation question, with its answer, type
    and held-out flag, in item order (the first `limit` items, or all)."""
    parts: dict[str, list[torch.Tensor]] = {"predicted": [], "answer": [], "question_type": [], "heldout": []}
    for batch, logits in _forward_all(model, val.vqa_eval(batch_size), "answer_logits", limit):
        parts["predicted"].append(logits.argmax(1))
        for key in ("answer", "question_type", "heldout"):
            parts[key].append(batch[key])
    out = {key: torch.cat(values) for key, values in parts.items()}
    return {key: value[:limit] for key, value in out.items()} if limit is not None else out


def referring_scores(model: Any, val: ViLBertBatches, batch_size: int) -> dict[str, Any]:
    """The model's referring accuracy and the box baselines' on every validation expression."""
    picked, hit, heldout, boxes, masks = [], [], [], [], []
    for batch, logits in _forward_all(model, val.referring_eval(batch_size), "referring_logits"):
        real = batch["region_mask"].bool()
        picked.append(logits.masked_fill(~real, float("-inf")).argmax(1))  # padded regions never picked
        hit.append(batch["referring_hit"])
        heldout.append(batch["heldout"])
        boxes.append(batch["region_boxes"])
        masks.append(batch["region_mask"])
    hits, held = torch.cat(hit), torch.cat(heldout)
    out = referring_metrics(torch.cat(picked), hits, held)
    out["refer_baselines"] = referring_baselines(torch.cat(boxes), torch.cat(masks), hits, held)
    return out


def first_captions(text_image_index: torch.Tensor) -> torch.Tensor:
    """The index of each image's first caption, in image order (the captions are listed image by image)."""
    first = torch.ones_like(text_image_index, dtype=torch.bool)
    first[1:] = text_image_index[1:] != text_image_index[:-1]
    return first.nonzero().squeeze(1)


def retrieval_scores(
    model: Any, val: ViLBertBatches, candidates: int, batch_size: int, all_captions: bool = False
) -> dict[str, Any]:
    """Text-to-image R@1/5/10 of the validation captions (each image's first, or all of them), each
    re-ranking `candidates` images."""
    queries = val.retrieval_set()
    chosen = val.retrieval_candidates(candidates, RERANK_SEED)
    texts = torch.arange(len(queries.texts)) if all_captions else first_captions(queries.text_image_index)
    pairs = val.retrieval_pairs(chosen[texts], batch_size, texts)
    scores = torch.cat([s for _, s in _forward_all(model, pairs, "retrieval_scores")])
    out = rerank_recalls(
        scores.view(len(texts), -1),
        chosen[texts],
        queries.text_image_index[texts],
        len(val.captions),
        queries.text_heldout[texts],
    )
    which = "every caption" if all_captions else "the first caption of each image"
    protocol = (
        f"text-to-image re-ranking: {which} ranks {chosen.shape[1]} images, its own and others drawn at "
        f"random (seed {RERANK_SEED})"
    )
    return {**out, "retrieval_protocol": protocol, "retrieval_queries": len(texts)}


def evaluate(
    model_or_dir: Any,
    world_dir: str | os.PathLike[str] | None = None,
    out_json: str | os.PathLike[str] | None = None,
    *,
    config: VilbertTrainConfig | None = None,
    data: ViLBertData | None = None,
) -> dict[str, Any]:
    """Score a VL model on a world's validation split; returns (and writes to `out_json`) the figures.

    Args:
        model_or_dir: a model folder (`vlkit vilbert finetune` wrote it: its tokenizer and run config are
            read from it) or a VL model object.
        world_dir: the shapes world (not needed when `data` is given).
        out_json: where to write the figures (atomically), if given.
        config: the run's settings (regions, encoder, batches, task seed, candidates); default: the
            folder's, or `VilbertTrainConfig()` for a model object.
        data: the world's batches already loaded (a study shares them between runs).

    Returns keys vqa_accuracy, vqa_by_type, vqa_heldout_accuracy, vqa_baselines {type_prior},
    refer_accuracy, refer_heldout_accuracy, refer_baselines {centre, largest, chance}, retrieval_r1/r5/r10
    (and their held-out counterparts), retrieval_protocol, params, eval_seconds.
    """
    start = time.perf_counter()
    tokenizer = None
    if isinstance(model_or_dir, (str, os.PathLike)):
        model, tokenizer, saved = load_run(model_or_dir)
        config = config or saved
    else:
        model = model_or_dir
    config = config or VilbertTrainConfig()
    if data is None:
        data = load_data(config, world_dir, tokenizer)
    if data.val is None:
        raise VlkitError("evaluate: the data has no validation split")
    was_training = model.training
    model.eval()
    size = config.eval_batch_size
    with torch_threads(config.threads):
        vqa = vqa_predictions(model, data.val, size)
        results = vqa_metrics(vqa["predicted"], vqa["answer"], vqa["question_type"], vqa["heldout"])
        results["vqa_baselines"] = {
            "type_prior": type_prior_accuracy(data.train.vqa_items, data.val.vqa_items)
        }
        results.update(referring_scores(model, data.val, size))
        results.update(
            retrieval_scores(model, data.val, config.rerank_candidates, size, config.rerank_all_captions)
        )
    model.train(was_training)
    counter = getattr(model, "count_parameters", None)
    results["params"] = counter() if counter else sum(p.numel() for p in model.parameters())
    results["eval_seconds"] = round(time.perf_counter() - start, 3)
    if out_json is not None:
        write_json_atomic(Path(out_json), results)
    return results
