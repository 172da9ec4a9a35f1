"""The ViLBERT evaluation's figures against hand computations on small cases: VQA accuracy by type and
held out, referring accuracy and its box baselines, and re-ranking R@K (ties never favour the true image)."""

from __future__ import annotations

import pytest
import torch

from vlkit.errors import VlkitError
from vlkit.shapes.questions import QUESTION_TYPES, VqaItem
from vlkit.train.vilbert_eval import (
    first_captions,
    referring_baselines,
    referring_metrics,
    rerank_recalls,
    type_prior_accuracy,
    vqa_metrics,
)
from vlkit.train.vilbert_trainer import candidates_loss, masked_word_loss, referring_loss


def test_vqa_accuracy_from_known_logits_by_type_and_held_out_apart():
    logits = torch.tensor(
        [[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]
    )
    answer = torch.tensor([0, 2, 2, 0, 0])  # right, wrong, right, right (held out), wrong (held out)
    kinds = torch.tensor([QUESTION_TYPES.index(t) for t in ("colour", "colour", "count", "exists", "exists")])
    heldout = torch.tensor([False, False, False, True, True])
    got = vqa_metrics(logits.argmax(1), answer, kinds, heldout)
    assert got["vqa_accuracy"] == pytest.approx(2 / 3)
    assert got["vqa_by_type"] == {"colour": 0.5, "count": 1.0, "exists": None, "relation": None}
    assert got["vqa_heldout_accuracy"] == 0.5 and got["vqa_heldout_by_type"]["exists"] == 0.5
    assert got["vqa_all_accuracy"] == pytest.approx(3 / 5)
    assert (got["vqa_items"], got["vqa_heldout_items"]) == (3, 2)


def _box(x1, y1, x2, y2):
    return [x1, y1, x2, y2, (x2 - x1) * (y2 - y1)]


def test_referring_accuracy_and_the_centre_and_largest_box_baselines():
    boxes = torch.tensor([
        [_box(0.4, 0.4, 0.6, 0.6), _box(0.0, 0.0, 0.9, 0.9), _box(0.0, 0.0, 0.1, 0.1)],  # centre 0, largest 1
        [_box(0.0, 0.0, 0.2, 0.2), _box(0.45, 0.45, 0.55, 0.55), _box(0.0, 0.0, 1.0, 1.0)],  # 2 padded
    ])  # fmt: skip
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    hit = torch.tensor([[True, False, False], [True, False, False]])
    heldout = torch.tensor([False, False])
    assert referring_metrics(torch.tensor([0, 1]), hit, heldout)["refer_accuracy"] == 0.5
    baselines = referring_baselines(boxes, mask, hit, heldout)
    # centre: region 0 (right), then region 1 (wrong); largest: region 1 (wrong), then region 0 (the
    # padded region 2 is larger but never picked: right); chance: 1/3 and 1/2 real regions right
    assert baselines == pytest.approx({"centre": 0.5, "largest": 0.5, "chance": (1 / 3 + 1 / 2) / 2})


def test_rerank_recall_from_hand_ranked_candidates():
    # 3 images; captions 0, 1 of image 0, caption 2 of image 1, caption 3 of image 2; 2 candidates each
    text_image = torch.tensor([0, 0, 1, 2])
    candidates = torch.tensor([[0, 1], [0, 2], [1, 0], [2, 1]])
    scores = torch.tensor([[5.0, 1.0], [1.0, 2.0], [3.0, 3.0], [0.5, 0.0]])
    got = rerank_recalls(scores, candidates, text_image, 3, torch.tensor([False, False, True, False]))
    # ranks: 1, 2, 2 (a tie with image 0, listed first), 1
    assert got["retrieval_r1"] == 0.5 and got["retrieval_r5"] == 1.0
    assert got["retrieval_heldout_r1"] == 0.0


def test_each_image_s_first_caption_is_its_query():
    assert first_captions(torch.tensor([0, 0, 1, 1, 1, 2])).tolist() == [0, 2, 5]


def test_a_constant_scorer_gets_no_free_recall():
    text_image = torch.arange(6)
    candidates = torch.stack([(text_image + k) % 6 for k in range(3)], dim=1)  # own image first
    got = rerank_recalls(torch.zeros(6, 3), candidates, text_image, 6)
    assert got["retrieval_r1"] < 1.0
    with pytest.raises(VlkitError, match="own image"):
        rerank_recalls(torch.zeros(6, 3), candidates[:, 1:].repeat(1, 2)[:, :3], text_image, 6)


def test_the_task_losses_against_hand_values():
    logits = torch.zeros(1, 3, 4)
    labels = torch.tensor([[-100, 2, -100]])
    assert float(masked_word_loss(logits, labels)) == pytest.approx(torch.log(torch.tensor(4.0)).item())
    assert float(masked_word_loss(logits, torch.full((1, 3), -100))) == 0.0  # no target: 0, not NaN
    scores = torch.tensor([[0.0, 0.0, 100.0]])
    assert float(referring_loss(scores, torch.tensor([0]), torch.tensor([[1, 1, 0]]))) == pytest.approx(
        torch.log(torch.tensor(2.0)).item()
    )  # the padded region's score counts for nothing
    assert float(candidates_loss(torch.tensor([0.0, 0.0, 0.0, 0.0]), 2)) == pytest.approx(
        torch.log(torch.tensor(2.0)).item()
    )


def test_the_type_prior_answers_each_type_s_most_frequent_training_answer():
    def item(kind: str, answer: str, heldout: bool = False) -> VqaItem:
        return VqaItem(0, "q", answer, kind, (), heldout)

    train = [item("count", "2"), item("count", "2"), item("count", "1"), item("exists", "yes")]
    val = [item("count", "2"), item("count", "1"), item("exists", "no"), item("exists", "yes")]
    # count -> "2": right, wrong; exists -> "yes": wrong, right; a held-out item is not counted
    assert type_prior_accuracy(train, [*val, item("count", "2", heldout=True)]) == 0.5
