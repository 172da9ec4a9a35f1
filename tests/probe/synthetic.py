"""Seeded synthetic features for the probe tests: unit vectors scattered around one mean per class."""

from __future__ import annotations

import torch


def class_features(
    n_per_class: int, n_classes: int, dim: int = 8, noise: float = 1.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, dim) L2-normalized features, as a CLIP returns them, and their (N,) labels, class by class."""
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(n_classes, dim, generator=generator)
    labels = torch.arange(n_classes).repeat_interleave(n_per_class)
    noisy = means[labels] + noise * torch.randn(len(labels), dim, generator=generator)
    return torch.nn.functional.normalize(noisy, dim=-1), labels
