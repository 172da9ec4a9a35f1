"""Retrieval ranks and recalls against hand-worked cases and against a plain re-implementation of the
definitions (tests/metrics/retrieval_reference.py), ties included."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.metrics.retrieval_reference import reference_retrieval
from vlkit.errors import VlkitError
from vlkit.metrics.retrieval import retrieval_ranks, similarity_ranks, summarize_ranks

# 3 images; texts 0-1 are captions of image 0, text 2 of image 1, texts 3-4 of image 2
TEXT_IMAGE = [0, 0, 1, 2, 2]
SIMILARITY = [
    [0.1, 0.9, 0.9, 0.2, 0.0],  # text 1 ties text 2 and is listed first: rank 1
    [0.5, 0.5, 0.3, 0.5, 0.1],  # its only caption has 3 texts above it: rank 4
    [0.2, 0.2, 0.2, 0.2, 0.2],  # all tied: its first caption, text 3, is 4th in listing order
]


def _as_dict(ranks) -> dict:
    def figures(summary):
        return {**{f"R@{k}": v for k, v in summary.recall.items()}, "median_rank": summary.median_rank,
                "mean_rank": summary.mean_rank}  # fmt: skip

    return {
        "image_ranks": ranks.image_ranks.tolist(),
        "text_ranks": ranks.text_ranks.tolist(),
        "image_to_text": figures(ranks.image_to_text),
        "text_to_image": figures(ranks.text_to_image),
        "top_texts": ranks.top_texts.tolist(),
    }


def _assert_same(got: dict, expected: dict) -> None:
    """Equal ranks, top texts, recalls and medians; mean ranks equal up to the order of summation (the
    reference adds 1 to the mean of the 0-based ranks, as open_clip does)."""
    for direction in ("image_to_text", "text_to_image"):
        assert got[direction].pop("mean_rank") == pytest.approx(
            expected[direction].pop("mean_rank"), rel=1e-12
        )
    assert got == expected


def test_hand_worked_ranks_ties_broken_by_listing_order():
    ranks = similarity_ranks(torch.tensor(SIMILARITY), TEXT_IMAGE)
    assert ranks.image_ranks.tolist() == [1, 4, 4]
    # text 3's column is (0.2, 0.5, 0.2): image 1 scores higher, image 0 ties and is listed before image 2
    assert ranks.text_ranks.tolist() == [3, 1, 2, 3, 1]
    assert ranks.image_to_text.recall == {1: 1 / 3, 5: 1.0, 10: 1.0}
    assert (ranks.image_to_text.median_rank, ranks.image_to_text.mean_rank) == (4.0, 3.0)
    # R@5 and R@10 over a gallery of 3 images: every text's image is within the whole gallery
    assert ranks.text_to_image.recall == {1: 2 / 5, 5: 1.0, 10: 1.0}
    assert (ranks.text_to_image.median_rank, ranks.text_to_image.mean_rank) == (2.0, 2.0)
    assert ranks.top_texts[0].tolist() == [1, 2, 3, 0, 4]
    assert ranks.top_texts[2].tolist() == [0, 1, 2, 3, 4]


def test_median_rank_is_open_clips_rounded_down_median():
    # open_clip: floor(numpy median of the 0-based ranks) + 1; an even count takes the mean of the middle two
    assert summarize_ranks(torch.tensor([1, 2, 3, 4])).median_rank == 2.0  # 0-based median 1.5
    assert summarize_ranks(torch.tensor([1, 2, 4, 5])).median_rank == 3.0
    assert summarize_ranks(torch.tensor([7])).median_rank == 7.0
    assert summarize_ranks(torch.tensor([2, 9, 1])).mean_rank == 4.0


def test_the_reference_agrees_on_the_hand_worked_case():
    _assert_same(
        _as_dict(similarity_ranks(torch.tensor(SIMILARITY), TEXT_IMAGE)),
        reference_retrieval(SIMILARITY, TEXT_IMAGE),
    )


@st.composite
def _retrieval_sets(draw):
    counts = draw(st.lists(st.integers(1, 4), min_size=1, max_size=9))
    index = [i for i, n in enumerate(counts) for _ in range(n)]
    dim = draw(st.integers(1, 4))
    # small integers: every dot product is exact in fp32 (chunked or whole, any BLAS), and ties are common
    values = st.integers(-2, 2)
    images = draw(
        st.lists(st.lists(values, min_size=dim, max_size=dim), min_size=len(counts), max_size=len(counts))
    )
    texts = draw(
        st.lists(st.lists(values, min_size=dim, max_size=dim), min_size=len(index), max_size=len(index))
    )
    return torch.tensor(images, dtype=torch.float32), torch.tensor(texts, dtype=torch.float32), index


@given(_retrieval_sets(), st.integers(1, 5))
def test_ranks_from_embeddings_equal_the_plain_reimplementation(data, chunk):
    images, texts, index = data
    expected = reference_retrieval((images @ texts.T).tolist(), index)
    _assert_same(_as_dict(retrieval_ranks(images, texts, index, chunk=chunk)), expected)


def test_ranks_of_a_float_similarity_matrix_equal_the_reimplementation():
    generator = torch.Generator().manual_seed(0)
    index = [i for i in range(40) for _ in range(1 + i % 5)]
    similarity = torch.rand(40, len(index), generator=generator)
    similarity[3, :] = similarity[3, 0]  # one image whose every text ties
    similarity[:, 7] = 0.5  # one text every image ties on
    ranks = similarity_ranks(similarity, index)
    _assert_same(_as_dict(ranks), reference_retrieval(similarity.tolist(), index))
    assert 0 < ranks.image_to_text.recall[1] < ranks.image_to_text.recall[10] < 1


def test_ranks_refuse_an_uncaptioned_image_a_bad_index_and_nan():
    embeddings = torch.eye(3)
    with pytest.raises(VlkitError, match="image 1 has no text"):
        retrieval_ranks(embeddings, embeddings, [0, 2, 2])
    with pytest.raises(VlkitError, match="outside 0..2"):
        retrieval_ranks(embeddings, embeddings, [0, 1, 3])
    with pytest.raises(VlkitError, match=r"shape \(2,\), expected \(3,\)"):
        retrieval_ranks(embeddings, embeddings, [0, 1])
    with pytest.raises(VlkitError, match="NaN or infinity"):
        retrieval_ranks(embeddings, torch.full((3, 3), float("nan")), [0, 1, 2])
    with pytest.raises(VlkitError, match="got 0 images"):
        retrieval_ranks(torch.empty(0, 3), embeddings, [0, 1, 2])
