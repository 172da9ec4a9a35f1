"""vlkit's CIDEr-D against pycocoevalcap's Cider, and the checks on its inputs."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from tests.metrics.caption_corpus import corpus, generated_captions
from tests.metrics.conftest import require_java
from vlkit.errors import VlkitError
from vlkit.metrics.cider import cider_d
from vlkit.metrics.tokenize import ptb_tokenize


def _corpus(n_images: int, seed: int) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Captions from the test corpus, with awkward images mixed in (1 reference, empty or repeated words)."""
    rng = random.Random(seed)
    pool = generated_captions(3000, seed=seed)
    candidates, references = {}, {}
    for image in range(n_images):
        key = f"img{image}"
        references[key] = rng.sample(pool, 1 if image % 17 == 0 else 5)
        candidates[key] = rng.choice(pool)
    candidates["img3"] = ""  # empty candidate
    candidates["img4"] = references["img4"][0]  # identical to a reference
    references["img5"] = ["dog dog dog dog", "a dog", "dog"]
    candidates["img5"] = "dog dog"
    return candidates, references


def _pycocoevalcap(candidates: dict, references: dict) -> tuple[float, dict]:
    """pycocoevalcap's Cider on the same tokenized input (tokenized by vlkit, like pycocoevalcap would): the
    scorers alone; the test on raw text below compares with pycocoevalcap's Java tokenizer too."""
    keys = list(references)
    flat = ptb_tokenize([caption for key in keys for caption in references[key]])
    tokenized_candidates = ptb_tokenize([candidates[key] for key in keys])
    gts, start = {}, 0
    for key in keys:
        gts[key] = flat[start : start + len(references[key])]
        start += len(references[key])
    res = {key: [caption] for key, caption in zip(keys, tokenized_candidates, strict=True)}
    score, scores = Cider().compute_score(gts, res)
    return float(score), dict(zip(keys, map(float, scores), strict=True))


def test_cider_d_equals_pycocoevalcap_per_image_and_for_the_corpus() -> None:
    candidates, references = _corpus(400, seed=1)
    expected_score, expected = _pycocoevalcap(candidates, references)
    result = cider_d(candidates, references)
    assert list(result.per_image) == list(references)
    worst = max(abs(result.per_image[key] - expected[key]) for key in references)
    assert worst <= 1e-9
    assert abs(result.score - expected_score) <= 1e-9
    assert expected_score > 0.1  # the corpus has overlapping captions, so the comparison is not all zeros


def _whole_corpus_as_images() -> tuple[dict[str, str], dict[str, list[str]]]:
    """Every caption of the test corpus is one image's candidate and a reference of the images just before
    it (1 to 5 references each): the tricky captions meet the generated ones as candidates and as
    references, and neighbours share enough words to score."""
    captions = corpus()
    candidates, references = {}, {}
    for index, caption in enumerate(captions):
        key = f"img{index}"
        candidates[key] = caption
        references[key] = [captions[(index + step) % len(captions)] for step in range(1, 2 + index % 5)]
    return candidates, references


def test_cider_d_on_raw_text_equals_pycocoevalcaps_java_tokenizer_and_cider_end_to_end() -> None:
    """What the README claims: `cider_d` on raw captions (its pure-Python PTB tokenizer) gives pycocoevalcap's
    numbers, PTBTokenizer (Java) then Cider, as pycocoevalcap's COCOEvalCap runs them (two tokenizer runs)."""
    require_java()
    candidates, references = _whole_corpus_as_images()
    gts = PTBTokenizer().tokenize(
        {key: [{"caption": caption} for caption in captions] for key, captions in references.items()}
    )
    res = PTBTokenizer().tokenize({key: [{"caption": caption}] for key, caption in candidates.items()})
    expected_score, scores = Cider().compute_score(gts, res)
    expected = dict(zip(gts, map(float, scores), strict=True))
    result = cider_d(candidates, references)
    assert list(result.per_image) == list(references) == list(expected)
    wrong = {
        key: (result.per_image[key], expected[key])
        for key in references
        if not abs(result.per_image[key] - expected[key]) <= 1e-9
    }
    assert not wrong, f"{len(wrong)} image(s) differ, e.g. {dict(list(wrong.items())[:3])}"
    assert abs(result.score - float(expected_score)) <= 1e-9
    assert float(expected_score) > 0.1 and sum(value > 0 for value in expected.values()) > len(expected) / 2


def test_already_tokenized_input_scores_as_given() -> None:
    references = {1: ["a man rides a horse", "a person on a horse"], 2: ["dogs in snow", "two dogs"]}
    candidates = {1: "a man on a horse", 2: "a cat"}
    score, scores = Cider().compute_score(references, {key: [text] for key, text in candidates.items()})
    result = cider_d(candidates, references, tokenizer="none")
    assert result.score == pytest.approx(score, abs=1e-12)
    assert [result.per_image[1], result.per_image[2]] == pytest.approx(list(scores), abs=1e-12)


def test_java_tokenizer_option_gives_the_same_score() -> None:
    require_java()
    candidates, references = _corpus(60, seed=2)
    assert cider_d(candidates, references, "ptb-java").score == pytest.approx(
        cider_d(candidates, references, "ptb").score, abs=1e-12
    )


def test_score_is_the_mean_of_the_images() -> None:
    candidates, references = _corpus(50, seed=3)
    result = cider_d(candidates, references)
    assert result.score == pytest.approx(np.mean(list(result.per_image.values())), abs=1e-12)


@pytest.mark.parametrize(
    ("candidates", "references", "message"),
    [
        ({1: "a"}, {1: ["a"], 2: ["b"], 3: ["c"]}, r"2 image\(s\) without a candidate \(e\.g\. 2, 3\)"),
        ({1: "a", 9: "b"}, {1: ["a"]}, r"1 candidate\(s\) without references \(e\.g\. 9\)"),
        ({1: "a"}, {1: []}, r"references\[1\]: no reference captions"),
        ({1: "a"}, {1: "a reference"}, r"references\[1\]: expected a list of captions, got str"),
        ({1: 5}, {1: ["a"]}, r"candidates\[1\]: expected a string"),
        ({}, {}, "no images to score"),
    ],
)
def test_bad_inputs_name_what_is_wrong(candidates: dict, references: dict, message: str) -> None:
    with pytest.raises(VlkitError, match=message):
        cider_d(candidates, references)


def test_missing_keys_are_listed_a_few_at_a_time() -> None:
    with pytest.raises(VlkitError, match=r"5 image\(s\) without a candidate \(e\.g\. 1, 2, 3, \.\.\.\)"):
        cider_d({0: "a"}, {key: ["a"] for key in range(6)})


def test_unknown_tokenizer_is_rejected() -> None:
    with pytest.raises(VlkitError, match="tokenizer 'spacy'"):
        cider_d({1: "a"}, {1: ["a"]}, tokenizer="spacy")


_WORDS = st.sampled_from("a the dog cat man on in red big runs sits . , ! ( ) 's".split())
_CAPTION = st.lists(_WORDS, max_size=12).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_CAPTION, st.lists(_CAPTION, min_size=1, max_size=5)), min_size=1, max_size=8))
def test_scores_are_finite_and_never_negative(images: list[tuple[str, list[str]]]) -> None:
    result = cider_d({i: c for i, (c, _) in enumerate(images)}, {i: r for i, (_, r) in enumerate(images)})
    assert math.isfinite(result.score) and result.score >= 0
    assert all(math.isfinite(value) and value >= 0 for value in result.per_image.values())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(_WORDS, min_size=4, max_size=10).map(" ".join), min_size=2, max_size=6))
def test_a_candidate_equal_to_its_references_beats_an_unrelated_one(others: list[str]) -> None:
    caption = "a brown horse grazing in a green field"
    references = {0: [caption] * 3, **{i: [text] for i, text in enumerate(others, start=1)}}
    same = cider_d({0: caption, **{i: others[i - 1] for i in range(1, len(others) + 1)}}, references)
    unrelated = cider_d(
        {0: "zebra xylophone quartz", **{i: others[i - 1] for i in range(1, len(others) + 1)}}, references
    )
    assert same.per_image[0] > unrelated.per_image[0]


def test_a_caption_holding_the_internal_separator_word_still_scores_right() -> None:
    references = {1: ["a \uffff\ufffe b", "a b"], 2: ["\uffff\ufffe", "c d"]}
    candidates = {1: "a \uffff\ufffe", 2: "c d \uffff\ufffe"}
    score, scores = Cider().compute_score(references, {key: [text] for key, text in candidates.items()})
    result = cider_d(candidates, references, tokenizer="none")
    assert [result.per_image[1], result.per_image[2]] == pytest.approx(list(scores), abs=1e-12)


def test_keys_too_wide_to_pack_are_sorted_the_slow_way() -> None:
    from vlkit.metrics.cider import _sort_by_gram

    keys = np.array([3, 1 << 61, 1, 3, 1 << 61], dtype=np.int64)
    positions = np.array([0, 1, 2, 3, 4], dtype=np.int64)
    sorted_keys, sorted_positions = _sort_by_gram(keys, positions)
    assert sorted_keys.tolist() == [1, 3, 3, 1 << 61, 1 << 61]
    assert sorted_positions.tolist() == [2, 0, 3, 1, 4]
