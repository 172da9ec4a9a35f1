"""The best and worst image-caption pairs of an evaluation, side by side, as one PNG.

matplotlib draws (Agg backend, through `plots._to_png`, which keeps the bytes reproducible); this module
lays out one row of the top-scoring pairs and one of the bottom-scoring ones, each image under its score and
above its wrapped caption.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
from PIL import Image

from vlkit.viz.plots import _to_png

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CAPTION_WIDTH = 28  # characters per caption line under a thumbnail


@dataclass(frozen=True)
class ScoredPair:
    """One image, the caption scored against it, its score and a label naming it (the file name)."""

    image: Image.Image
    caption: str
    score: float
    label: str


def best_worst_pairs_figure(
    best: Sequence[ScoredPair], worst: Sequence[ScoredPair], metric: str = "CLIPScore"
) -> bytes:
    """PNG bytes: the `best` pairs in the first row, the `worst` in the second, in the order given."""
    rows = [(f"top {len(best)} by {metric}", best), (f"bottom {len(worst)} by {metric}", worst)]
    rows = [(title, pairs) for title, pairs in rows if pairs]
    columns = max((len(pairs) for _, pairs in rows), default=1)
    fig, axes = plt.subplots(
        len(rows) or 1, columns, figsize=(2.4 * columns, 3.4 * max(len(rows), 1)), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for row, (title, pairs) in enumerate(rows):
        for column, pair in enumerate(pairs):
            ax = axes[row][column]
            ax.imshow(pair.image)
            ax.set_title(f"{metric} {pair.score:.3f}\n{pair.label}", fontsize=8)
            ax.text(
                0.5,
                -0.04,
                textwrap.fill(pair.caption, CAPTION_WIDTH),
                transform=ax.transAxes,
                ha="center",
                va="top",
                fontsize=7,
                wrap=False,
            )
        axes[row][0].text(
            -0.08,
            0.5,
            title,
            transform=axes[row][0].transAxes,
            rotation=90,
            ha="right",
            va="center",
            fontsize=9,
            fontweight="bold",
        )
    fig.tight_layout()
    return _to_png(fig)
