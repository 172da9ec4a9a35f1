"""The linear-probe protocol's settings as plain data (torch-free: `vlkit probe` builds its options from the
fields)."""

from __future__ import annotations

from dataclasses import dataclass

from vlkit.runtime.options import option, positive, require

DEFAULT_C = 1.0  # scikit-learn's LogisticRegression default: used where no validation split can be held out


@dataclass
class ProbeConfig:
    """How a linear probe is fit and its C chosen (the protocol is in `vlkit.probe.protocol`).

    `c` is scikit-learn's C, the inverse L2 strength of `C * sum(cross-entropy) + ||W||^2 / 2`. Given, it is
    used as is and nothing is held out; otherwise it is chosen on `val_fraction` of each class's training
    images, or is `DEFAULT_C` where no class has two images to split (`--few-shot 1`)."""

    val_fraction: float = option(
        0.2,
        "--val-fraction",
        "Share of each class's training images held out to choose C (stratified, seeded); the probe is "
        "then refit on all of them.",
    )
    few_shot: int | None = option(
        None,
        "--few-shot",
        "Fit on K training images per class, drawn with --seed (the validation part is drawn from these K).",
    )
    seed: int = option(0, "--seed", "Seed of the few-shot draw and of the validation split.")
    c: float | None = option(
        None,
        "--c",
        "Use this C (sklearn's inverse L2 strength) instead of choosing it on the validation split.",
    )
    max_iter: int = option(1000, "--max-iter", "L-BFGS iterations per fit at most (the CLIP paper's 1000).")
    tol: float = option(1e-4, "--tol", "Stop a fit when no gradient entry exceeds this (sklearn's tol).")

    def __post_init__(self) -> None:
        require(
            self,
            "val_fraction",
            0 < self.val_fraction < 1,
            f"must be between 0 and 1, got {self.val_fraction} (to fix C instead, pass --c)",
        )
        positive(self, "few_shot", "c", allow_none=True)
        positive(self, "max_iter", "tol")
