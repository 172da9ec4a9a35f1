"""The linear-probe protocol: which training images the probe learns from, which of them choose its C, and
the one look at the test split.

It follows the CLIP paper (Radford et al. 2021, appendix A.3) and CLIP_benchmark's
`clip_benchmark/metrics/linear_probe.py`:

1. The pool: every training image, or with `few_shot=K` K images per class drawn with the seed (a class with
   images but fewer than K is an error; a class with none, like a shapes world's held-out classes, is left
   out of training and listed).
2. The validation part: `val_fraction` of each class's pool images (at least one, and never all, so a class
   needs two to be split), drawn with the same seed. It is drawn from the pool, so a few-shot probe sees K
   labelled images per class in all, its C included (CLIP_benchmark #125: its refit added a full-size
   validation split to the K shots).
3. The search: C over CLIP's grid, 10^-6..10^6 at 8 steps per decade, by its parametric binary search (the 7
   points 10^-6, 10^-4, ..., 10^6, then the neighbours of the best at half the distance, down to one step);
   each C is fit on the pool less the validation part and scored on the validation part: the best top-1,
   ties to the lower validation cross-entropy, then to the C found first. No validation part (K=1): C is
   `DEFAULT_C`, and the result says so.
4. The refit on the whole pool with that C, and `score_probe` on the test split, once.

`train_probe` takes no test argument: the test split cannot reach the choice of C. Features are used as the
CLIP returns them (L2-normalized, as CLIP_benchmark's); they are not standardized, so C means the same here
as on features from any other vlkit command.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from vlkit.errors import ConfigError
from vlkit.probe.config import DEFAULT_C, ProbeConfig
from vlkit.probe.logistic import LinearProbe, fit_logistic_regression

C_GRID: tuple[float, ...] = tuple(10.0 ** (step / 8) for step in range(-48, 49))  # 1e-6..1e6, 8 per decade
START_EVERY = 16  # the search starts at every 16th grid point: 1e-6, 1e-4, ..., 1e6


@dataclass
class ProbeSplit:
    """Indices into the training split: the `pool` the probe is refit on, and `val`, the part of it held
    out to choose C."""

    pool: list[int]
    val: list[int]
    untrained_classes: list[int]  # classes without a training image


def draw_split(labels: Sequence[int], class_names: Sequence[str], config: ProbeConfig) -> ProbeSplit:
    """The pool (all, or `few_shot` per class) and its stratified validation part, both drawn with `seed`;
    nothing is held out when `config.c` is given. Draws are nested: the K-shot pool is the first K of the
    class's shuffled images, so a 4-shot pool lies inside the 8-shot pool of the same seed."""
    rng = random.Random(config.seed)
    by_class: list[list[int]] = [[] for _ in class_names]
    for index, label in enumerate(labels):
        by_class[label].append(index)
    pool, val = [], []
    for class_id, indices in enumerate(by_class):
        rng.shuffle(indices)
        if config.few_shot is not None and indices:
            if len(indices) < config.few_shot:
                problem = f"class {class_names[class_id]!r} has {len(indices)} training images, fewer than"
                raise ConfigError(ProbeConfig, "few_shot", f"{problem} {config.few_shot}")
            indices = indices[: config.few_shot]
        pool += indices
        if config.c is None and len(indices) >= 2:
            val += indices[: min(len(indices) - 1, max(1, round(len(indices) * config.val_fraction)))]
    untrained = [class_id for class_id, indices in enumerate(by_class) if not indices]
    return ProbeSplit(sorted(pool), sorted(val), untrained)


@dataclass
class CTrial:
    c: float
    val_top1: float
    val_loss: float  # mean cross-entropy on the validation part: breaks ties of top-1


@dataclass
class TrainedProbe:
    probe: LinearProbe
    c_chosen_by: str  # "validation", "default" (no validation part) or "given" (config.c)
    trials: list[CTrial] = field(default_factory=list)  # every C the search fit, by increasing C


def train_probe(
    features: torch.Tensor,
    labels: Sequence[int],
    val: Sequence[bool],
    n_classes: int,
    config: ProbeConfig,
    device: torch.device | str | None = None,
) -> TrainedProbe:
    """Choose C on the rows marked `val` (fit on the others), then refit on every row with it.

    Args:
        features: (N, D) features of the pool's images.
        labels: (N,) their classes.
        val: (N,) whether each row is in the validation part.
        n_classes: classes of the problem (the probe's rows), trained or not.
        config: `c`, `max_iter`, `tol` are read here (the split was drawn by `draw_split`).
        device: where to fit (default: the features').
    """
    features = features.to(device or features.device)  # moved once, not once per fit
    target = torch.tensor(list(labels), dtype=torch.long, device=features.device)
    held = torch.tensor(list(val), dtype=torch.bool, device=features.device)

    def fit(c: float, rows: torch.Tensor) -> LinearProbe:
        return fit_logistic_regression(
            features[rows], target[rows], n_classes, c, config.max_iter, config.tol
        )

    everything = torch.ones_like(held)
    if config.c is not None:
        return TrainedProbe(fit(config.c, everything), "given")
    if not held.any():
        return TrainedProbe(fit(DEFAULT_C, everything), "default")
    trials: dict[int, CTrial] = {}

    def score(index: int) -> tuple[float, float]:
        if index not in trials:
            probe = fit(C_GRID[index], ~held)
            logits = probe.logits(features[held]).float()
            top1 = float((logits.argmax(dim=-1) == target[held]).float().mean())
            loss = float(torch.nn.functional.cross_entropy(logits, target[held]))
            trials[index] = CTrial(C_GRID[index], top1, loss)
        return trials[index].val_top1, -trials[index].val_loss

    peak = max(range(0, len(C_GRID), START_EVERY), key=score)
    span = START_EVERY // 2
    while span:
        neighbours = [peak, max(peak - span, 0), min(peak + span, len(C_GRID) - 1)]
        peak = max(neighbours, key=score)  # max keeps the first of equals: the peak, on a tie
        span //= 2
    ordered = [trials[index] for index in sorted(trials)]
    return TrainedProbe(fit(C_GRID[peak], everything), "validation", ordered)


@dataclass
class ProbeScores:
    top1: float
    top5: float  # top-min(5, C): 1.0 with five classes or fewer, as vlkit zeroshot reports it
    per_class: dict[str, float | None]  # top-1 per class; None for a class without a test image
    predictions: list[int]  # (N,) the top-1 class of each test image


def score_probe(
    probe: LinearProbe, features: torch.Tensor, labels: Sequence[int], class_names: Sequence[str]
) -> ProbeScores:
    """Top-1, top-5 and per-class top-1 of the probe on (N, D) test features."""
    logits = probe.logits(features).float().cpu()
    target = torch.tensor(list(labels), dtype=torch.long)
    top = logits.topk(min(5, logits.shape[-1]), dim=-1).indices  # (N, k)
    hit1 = top[:, 0] == target
    per_class = {
        name: float(hit1[target == class_id].float().mean()) if (target == class_id).any() else None
        for class_id, name in enumerate(class_names)
    }
    top5 = float((top == target[:, None]).any(dim=-1).float().mean())
    return ProbeScores(float(hit1.float().mean()), top5, per_class, top[:, 0].tolist())
