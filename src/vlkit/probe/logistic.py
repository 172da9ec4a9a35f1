"""Multinomial logistic regression on fixed features, fit by full-batch L-BFGS in torch, minimizing the
objective scikit-learn's `LogisticRegression(C=c)` (lbfgs) minimizes, so that `c` means what it means there:

    C * sum_i cross_entropy(W x_i + b, y_i) + ||W||^2 / 2        (the bias b is not penalized)

divided here by C * N, as sklearn divides it too (same minimizer, a gradient whose size does not grow with N,
so `tol` is sklearn's tol). Two classes: sklearn fits one weight vector w (binary logistic regression); the
softmax pair (w/2, -w/2) is the same model and its penalty is ||w||^2 / 4, so a two-class problem is fit with
C/2 and gives sklearn's solution.

Why not sklearn, which the CLIP paper used (its A.3: L-BFGS, at most 1,000 iterations): it would be a new
dependency (scikit-learn and scipy) for about sixty lines, and it fits in float64 numpy on the CPU, while
these features sit in torch, on the GPU where there is one (an ImageNet-size probe: 1.28M x 768 features,
1,000 classes, fifteen fits for the search over C). The fit is the same algorithm on the same objective
(`tests/probe/test_logistic.py` checks it reaches sklearn's coefficients); full-batch and started from zero,
it is deterministic, with no learning rate, epochs or batch order to choose (CLIP_benchmark's AdamW probe has
all three). torch's L-BFGS with the strong-Wolfe line search does the optimization.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LinearProbe:
    """A fitted probe: logits = features @ weight.T + bias."""

    weight: torch.Tensor  # (C, D)
    bias: torch.Tensor  # (C,)
    c: float
    iterations: int
    converged: bool  # the largest gradient entry reached `tol` within `max_iter` iterations

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, C), on the probe's device and dtype."""
        return torch.addmm(self.bias, features.to(self.weight), self.weight.T)


def fit_logistic_regression(
    features: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
    c: float,
    max_iter: int = 1000,
    tol: float = 1e-4,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> LinearProbe:
    """Fit sklearn's L2-penalized multinomial logistic regression with inverse strength `c`.

    Args:
        features: (N, D) training features, used as given (no standardization).
        labels: (N,) class ids in [0, n_classes); a class without examples only gets a low bias.
        n_classes: number of classes C (the rows of the weight).
        c: sklearn's C; larger is weaker regularization.
        max_iter: L-BFGS iterations at most.
        tol: stop when the largest gradient entry of the (divided) objective is at most this.
        device, dtype: where and in what precision to fit (default: the features' device).
    """
    x = features.to(device or features.device, dtype).clone()  # clone: not an inference-mode tensor
    y = labels.to(x.device, torch.long)
    strength = 1.0 / ((c / 2 if n_classes == 2 else c) * len(x))
    weight = torch.zeros(n_classes, x.shape[1], device=x.device, dtype=dtype, requires_grad=True)
    bias = torch.zeros(n_classes, device=x.device, dtype=dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        max_eval=2 * max_iter,
        tolerance_grad=tol,
        tolerance_change=torch.finfo(dtype).eps,
        history_size=10,  # scipy's L-BFGS-B default (maxcor), which sklearn uses
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(torch.addmm(bias, x, weight.T), y)
        loss = loss + 0.5 * strength * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
        objective()  # the gradient at the solution, for the convergence flag
    largest = max(float(weight.grad.abs().max()), float(bias.grad.abs().max()))
    iterations = int(optimizer.state[weight].get("n_iter", 0))
    return LinearProbe(weight.detach(), bias.detach(), c, iterations, largest <= tol)
