"""The co-attention figure: a PNG with a panel per word, the same bytes for the same input, and attention of
the wrong shape refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from vlkit.viz.coattention import coattention_figure


def _figure(words=("red", "star"), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    boxes = np.array([[4, 4, 30, 30], [30, 30, 60, 60], [0, 40, 20, 60]], dtype=np.float32)
    attention = rng.dirichlet(np.ones(3), size=len(words))
    return coattention_figure(
        image, boxes, np.array([True, True, False]), list(words), attention, title="what colour is the star?",
        image_token=[0.1] * len(words), object_boxes=boxes[:1],
    )  # fmt: skip


def test_the_figure_is_a_png_that_grows_with_the_words_and_is_reproducible():
    two, six = _figure(), _figure(words=("is", "there", "a", "red", "star", "?"))
    small, large = Image.open(io.BytesIO(two)), Image.open(io.BytesIO(six))
    assert small.format == "PNG" and large.size[0] > small.size[0]
    assert np.asarray(small.convert("L")).std() > 10  # drawn, not blank
    assert _figure() == two


def test_attention_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="attention"):
        coattention_figure(
            np.zeros((8, 8, 3), np.uint8), np.zeros((2, 4)), np.ones(2, bool), ["a"], np.ones((1, 3))
        )
