"""Charts a person opens as PNG files: the per-template accuracy bars and the confusion matrix.

matplotlib draws (Agg backend, no display needed); this module only lays the figures out.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter, PercentFormatter  # noqa: E402


def _to_png(fig) -> bytes:
    buffer = io.BytesIO()
    # Fixed metadata keeps the bytes identical across runs (matplotlib writes its version and no date).
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def template_bar_chart(
    templates: Sequence[str],
    top1: Sequence[float],
    ensemble_top1: float | dict[str, float],
    title: str = "zero-shot top-1",
    pinned: int = 0,
) -> bytes:
    """Horizontal bars, one per template, with the ensemble(s) as reference lines; PNG bytes.

    The first `pinned` templates stay first, in their order and another colour (the course's three seed
    templates above the 80 CLIP ones); the rest are ranked best first. The axis spans the figures' range,
    not 0 to 1, since templates differ by a few points (the axis label says where it starts)."""
    references = ensemble_top1 if isinstance(ensemble_top1, dict) else {"ensemble": ensemble_top1}
    ranked = sorted(range(pinned, len(templates)), key=lambda i: top1[i], reverse=True)
    order = list(range(pinned)) + ranked
    height = max(2.5, 0.22 * len(templates) + 1.2)
    fig, ax = plt.subplots(figsize=(8, height))
    labels = [templates[i] if len(templates[i]) <= 60 else templates[i][:57] + "..." for i in order]
    colours = ["#DD8452" if i < pinned else "#4C72B0" for i in order]
    ax.barh(range(len(order)), [top1[i] for i in order], color=colours)
    for (name, value), style in zip(references.items(), ("--", ":", "-."), strict=False):
        ax.axvline(value, color="#C44E52", linestyle=style, label=f"{name} {value:.1%}")
    ax.set_yticks(range(len(order)), labels, fontsize=7 if len(order) > 20 else 9)
    ax.invert_yaxis()
    low, high = axis_range([*top1, *references.values()])
    ax.set_xlim(low, high)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0 if high - low > 0.05 else 1))
    ax.set_xlabel(f"top-1 accuracy (axis from {low:.1%} to {high:.1%}, not from 0)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return _to_png(fig)


def axis_range(values: Sequence[float]) -> tuple[float, float]:
    """An accuracy axis around `values`: their range plus a margin of a tenth of it (one point at least),
    kept within [0, 1]."""
    low, high = min(values), max(values)
    margin = max(0.01, 0.1 * (high - low))
    return max(0.0, low - margin), min(1.0, high + margin)


def confusion_matrix_chart(matrix: Sequence[Sequence[int]], class_names: Sequence[str], title: str) -> bytes:
    """A heat map of counts, true class by row; row-normalized colours so rare classes stay visible."""
    size = len(class_names)
    side = min(14, max(4, 0.22 * size + 2))
    fig, ax = plt.subplots(figsize=(side, side))
    rows = [[value / max(1, sum(row)) for value in row] for row in matrix]
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    fontsize = 6 if size > 24 else 8
    ax.set_xticks(range(size), class_names, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(size), class_names, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _to_png(fig)


def sweep_chart(rows: Sequence[dict], retrieval: dict | None = None) -> bytes:
    """The tuning methods side by side: CIDEr-D, CLIPScore and CHAIR-i (the retrieval baseline as a line on
    each) and trainable parameters (log scale), one bar per method; PNG bytes."""
    names = [row["tuning"] for row in rows]
    panels = (
        ("CIDEr-D (higher is better)", "cider", False),
        ("CLIPScore (higher is better)", "clip_score", False),
        ("CHAIR-i (lower is better)", "chair_i", False),
        ("trainable parameters", "trainable_params", True),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 0.45 * len(rows) + 1.6), sharey=True)
    for ax, (title, key, log_scale) in zip(axes, panels, strict=True):
        values = [row.get(key) or 0.0 for row in rows]
        # A log axis only where the counts span decades (full fine-tuning beside PEFT), else no tick shows.
        log_scale = log_scale and max(values) > 20 * max(min(values), 1)
        ax.barh(range(len(names)), [max(v, 1) if log_scale else v for v in values], color="#4C72B0")
        ax.set_title(title, fontsize=10)
        if log_scale:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels (3x10^5, 4x10^5...) overlap
        elif retrieval is not None and retrieval.get(key) is not None:
            ax.axvline(retrieval[key], color="#C44E52", linestyle="--", label="retrieval baseline")
            ax.legend(loc="lower right", fontsize=7)
        if key == "chair_i":
            ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(names)), names)
    axes[0].invert_yaxis()
    return _to_png(fig)


def attention_figure(
    image: np.ndarray, words: Sequence[str], maps: Sequence[np.ndarray], title: str = "", per_row: int = 8
) -> bytes:
    """The image first, then one panel per generated word with its attention map laid over the image,
    each titled with its word (the course report's layout); rows of `per_row` panels. PNG bytes."""
    n_panels = 1 + len(words)
    columns = min(per_row, n_panels)
    rows = -(-n_panels // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.7 * columns, 1.9 * rows + (0.3 if title else 0)))
    axes = np.atleast_1d(axes).ravel()
    for ax in axes:
        ax.axis("off")
    axes[0].imshow(image)
    axes[0].set_title("image", fontsize=8)
    for ax, word, word_map in zip(axes[1:], words, maps, strict=False):
        ax.imshow(image)
        ax.imshow(word_map, cmap="jet", alpha=0.5, extent=(0, image.shape[1], image.shape[0], 0))
        ax.set_title(word if len(word) <= 14 else word[:13] + "…", fontsize=8)
    if title:
        fig.suptitle(title if len(title) <= 110 else title[:107] + "...", fontsize=9)
    fig.tight_layout()
    return _to_png(fig)


def frames_words_figure(
    frames: Sequence[np.ndarray], words: Sequence[str], weights: np.ndarray, title: str = ""
) -> bytes:
    """A video's frames x words attention: one row per frame (its thumbnail at the left), one column per
    generated word, each cell the share of that word's attention on that frame's tokens. PNG bytes."""
    n_frames, n_words = weights.shape
    fig = plt.figure(figsize=(1.2 + 0.45 * max(n_words, 4), 0.5 + 0.42 * n_frames))
    grid = fig.add_gridspec(n_frames, 2, width_ratios=[1, max(n_words, 1) * 0.9], wspace=0.05, hspace=0.05)
    for row, frame in enumerate(frames[:n_frames]):
        ax = fig.add_subplot(grid[row, 0])
        ax.imshow(frame)
        ax.axis("off")
    ax = fig.add_subplot(grid[:, 1])
    image = ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=max(float(weights.max()), 1e-6))
    ax.set_xticks(
        range(n_words), [w if len(w) <= 10 else w[:9] + "…" for w in words], rotation=60, fontsize=7
    )
    ax.set_yticks(range(n_frames), [f"frame {i}" for i in range(n_frames)], fontsize=7)
    ax.yaxis.tick_right()
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.12)
    if title:
        fig.suptitle(title if len(title) <= 90 else title[:87] + "...", fontsize=8)
    return _to_png(fig)
