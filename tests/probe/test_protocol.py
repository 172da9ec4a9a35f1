from __future__ import annotations

from collections import Counter

import pytest
import torch

from tests.probe.synthetic import class_features
from vlkit.errors import ConfigError
from vlkit.probe.config import DEFAULT_C, ProbeConfig
from vlkit.probe.protocol import C_GRID, START_EVERY, draw_split, score_probe, train_probe

NAMES = ["cat", "dog", "owl"]
LABELS = [0] * 10 + [1] * 7 + [2] * 12


def _counts(indices: list[int]) -> Counter:
    return Counter(LABELS[i] for i in indices)


def test_few_shot_draws_exactly_k_per_class_reproducibly_and_another_seed_draws_others():
    first = draw_split(LABELS, NAMES, ProbeConfig(few_shot=5, seed=1))
    assert _counts(first.pool) == {0: 5, 1: 5, 2: 5}
    assert draw_split(LABELS, NAMES, ProbeConfig(few_shot=5, seed=1)) == first
    other = draw_split(LABELS, NAMES, ProbeConfig(few_shot=5, seed=2))
    assert _counts(other.pool) == {0: 5, 1: 5, 2: 5} and other.pool != first.pool


def test_the_validation_part_is_stratified_and_drawn_from_the_k_shots():
    split = draw_split(LABELS, NAMES, ProbeConfig(few_shot=5, val_fraction=0.4, seed=0))
    assert set(split.val) < set(split.pool)  # never an image outside the K shots (CLIP_benchmark #125)
    assert _counts(split.val) == {0: 2, 1: 2, 2: 2}
    full = draw_split(LABELS, NAMES, ProbeConfig(val_fraction=0.2))
    assert sorted(full.pool) == list(range(len(LABELS)))
    assert _counts(full.val) == {0: 2, 1: 1, 2: 2}  # round(10 * .2), at least one, round(12 * .2)


def test_few_shot_pools_are_nested_across_k_for_one_seed():
    four = draw_split(LABELS, NAMES, ProbeConfig(few_shot=4, seed=3))
    six = draw_split(LABELS, NAMES, ProbeConfig(few_shot=6, seed=3))
    assert set(four.pool) < set(six.pool)


def test_a_class_with_fewer_images_than_k_is_named_with_its_count():
    with pytest.raises(ConfigError, match=r"few_shot: class 'dog' has 7 training images, fewer than 8"):
        draw_split(LABELS, NAMES, ProbeConfig(few_shot=8))


def test_a_class_without_training_images_is_left_out_and_listed():
    split = draw_split([0, 0, 2, 2], NAMES, ProbeConfig(few_shot=2))
    assert split.untrained_classes == [1] and sorted(split.pool) == [0, 1, 2, 3]


def test_one_shot_holds_nothing_out_and_uses_the_default_c():
    features, labels = class_features(1, 3, seed=0)
    split = draw_split(labels.tolist(), NAMES, ProbeConfig(few_shot=1))
    assert split.val == []
    trained = train_probe(features, labels.tolist(), [False] * 3, 3, ProbeConfig(few_shot=1))
    assert (trained.c_chosen_by, trained.probe.c, trained.trials) == ("default", DEFAULT_C, [])


def test_a_given_c_is_used_as_is_and_nothing_is_held_out():
    config = ProbeConfig(c=0.3)
    assert draw_split(LABELS, NAMES, config).val == []
    features, labels = class_features(5, 3, seed=0)
    trained = train_probe(features, labels.tolist(), [False] * 15, 3, config)
    assert (trained.c_chosen_by, trained.probe.c) == ("given", 0.3)


def test_the_search_starts_on_clips_seven_points_and_keeps_the_best_validation_c():
    features, labels = class_features(12, 4, noise=1.5, seed=6)
    split = draw_split(labels.tolist(), ["a", "b", "c", "d"], ProbeConfig(val_fraction=0.25, seed=0))
    val = [i in set(split.val) for i in range(len(labels))]
    trained = train_probe(features, labels.tolist(), val, 4, ProbeConfig())
    tried = [trial.c for trial in trained.trials]
    assert set(C_GRID[::START_EVERY]) <= set(tried) and tried == sorted(tried)
    assert len(tried) <= 7 + 2 * 4  # a binary search, not the 97-point grid
    best = max(trained.trials, key=lambda t: (t.val_top1, -t.val_loss))
    assert trained.probe.c == best.c and trained.c_chosen_by == "validation"
    assert trained.probe.c in C_GRID and 1e-6 <= min(tried) and max(tried) <= 1e6


def test_the_refit_uses_every_pool_row_with_the_chosen_c():
    features, labels = class_features(10, 3, seed=7)
    val = [i % 5 == 0 for i in range(30)]
    trained = train_probe(features, labels.tolist(), val, 3, ProbeConfig())
    again = train_probe(features, labels.tolist(), [False] * 30, 3, ProbeConfig(c=trained.probe.c))
    assert torch.equal(trained.probe.weight, again.probe.weight)


def test_scores_count_top1_top5_and_each_class():
    features, labels = class_features(10, 3, noise=0.3, seed=8)
    trained = train_probe(features, labels.tolist(), [False] * 30, 3, ProbeConfig(c=100.0))
    wrong = [(label + 1) % 3 for label in labels.tolist()]
    right, flipped = (score_probe(trained.probe, features, y, NAMES) for y in (labels.tolist(), wrong))
    assert right.top1 == 1.0 and flipped.top1 == 0.0 and right.top5 == flipped.top5 == 1.0
    assert right.per_class == {"cat": 1.0, "dog": 1.0, "owl": 1.0}
    partial = score_probe(trained.probe, features[:10], labels[:10].tolist(), NAMES)
    assert partial.per_class == {"cat": 1.0, "dog": None, "owl": None}
