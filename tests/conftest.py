"""Fixtures shared by every test: one tiny shapes world per test run, and no progress bars."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

os.environ["VLKIT_PROGRESS"] = "0"  # before vlkit.runtime.progress reads it

from vlkit.runtime import progress  # noqa: E402
from vlkit.shapes.world import ShapesConfig, generate_world  # noqa: E402

progress.set_enabled(False)  # in case vlkit.runtime.progress was imported before this file
# The tests' models are tiny: one thread runs them faster than two fighting over 2 cores (seen: 8 ms against
# 0.45 s a step when another process held the other core).
torch.set_num_threads(1)

# The property tests draw the same examples on every run, so a red CI reproduces on any machine (a random draw
# once failed CI on an example no local run had met). `HYPOTHESIS_PROFILE=explore` draws new ones.
settings.register_profile("vlkit", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "vlkit"))

TINY_WORLD = ShapesConfig(
    seed=0, n_train=60, n_val=20, per_class_train=2, per_class_val=2, n_alt_text=40, n_alt_text_val=8,
    workers=1,
)


@pytest.fixture(scope="session")
def shapes_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny shapes world (60 train, 20 val, 2 classification images per class), generated once."""
    out = tmp_path_factory.mktemp("shapes") / "world"
    generate_world(TINY_WORLD, out)
    return out
