"""Linear-probe fit time: vlkit's torch L-BFGS against scikit-learn's LogisticRegression (lbfgs), the fit the
CLIP paper ran, on the same features at the same C.

The features are synthetic and seeded: unit vectors around one random mean per class, as many dimensions
as CLIP ViT-B/32's embeddings, so nothing is downloaded. Both sides minimize the same objective from zero
with the same tolerance and iteration cap (sklearn keeps float32 features in float32, as vlkit fits them);
the row gives seconds per fit and, in its notes, both test top-1 figures (the noise puts them near 70%).
"""

from __future__ import annotations

import torch

from bench.common import BenchRow, best_of
from vlkit.probe.logistic import fit_logistic_regression

COMMAND = "python -m bench probe"


def synthetic_problem(
    n_train: int, n_test: int, dim: int, n_classes: int, noise: float = 6.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train features, train labels, test features, test labels), L2-normalized like a CLIP's."""
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(n_classes, dim, generator=generator)
    labels = torch.randint(0, n_classes, (n_train + n_test,), generator=generator)
    noisy = means[labels] + noise * torch.randn(len(labels), dim, generator=generator)
    features = torch.nn.functional.normalize(noisy, dim=-1)
    return features[:n_train], labels[:n_train], features[n_train:], labels[n_train:]


def run(quick: bool) -> list[BenchRow]:
    from sklearn.linear_model import LogisticRegression

    n_train, n_test, dim, n_classes = (2000, 1000, 128, 20) if quick else (10_000, 5_000, 512, 100)
    c, max_iter, tol = 10.0, 1000, 1e-4
    train_x, train_y, test_x, test_y = synthetic_problem(n_train, n_test, dim, n_classes)

    def ours():
        return fit_logistic_regression(train_x, train_y, n_classes, c, max_iter, tol)

    def theirs():
        return LogisticRegression(C=c, max_iter=max_iter, tol=tol).fit(train_x.numpy(), train_y.numpy())

    repeats = 1 if quick else 3
    vlkit_s, probe = best_of(ours, repeats, warmup=not quick)
    peer_s, model = best_of(theirs, repeats, warmup=False)
    vlkit_top1 = float((probe.logits(test_x).argmax(-1) == test_y).float().mean())
    peer_top1 = float((torch.from_numpy(model.predict(test_x.numpy())) == test_y).float().mean())
    shape = f"{n_train} x {dim} features, {n_classes} classes"
    return [
        BenchRow(
            "probe",
            f"linear-probe fit at C={c:g}, {shape}: seconds, vlkit torch L-BFGS fp32 vs sklearn lbfgs",
            vlkit_s,
            peer_s,
            "s",
            False,
            "report",
            True,
            COMMAND,
            f"test top-1 on {n_test}: vlkit {vlkit_top1:.2%}, sklearn {peer_top1:.2%}; iterations vlkit "
            f"{probe.iterations}, sklearn {int(model.n_iter_[0])}; tol {tol:g}, max_iter {max_iter}; "
            f"torch threads {torch.get_num_threads()}",
        )
    ]
