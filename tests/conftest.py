"""Fixtures shared by every test: one tiny shapes world per test run, GPT-2's real tokenizer (from the ranks
`make fixtures` fetches), no progress bars, and the CLI's global state (progress bars, the root logger) as
each test found it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

os.environ["VLKIT_PROGRESS"] = "0"  # before vlkit.runtime.progress reads it
# `--precision auto` is fp32 on the CPU in every test, whatever the machine: the same figures on a CPU with
# native bf16 and one without (tests of `auto` itself set this themselves).
os.environ["VLKIT_CPU_BF16"] = "0"

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


def _own_handlers(logger: logging.Logger) -> list[logging.Handler]:
    """The logger's handlers less pytest's own, which pytest attaches and removes around each test phase."""
    return [h for h in logger.handlers if not type(h).__module__.startswith("_pytest.")]


@pytest.fixture(autouse=True)
def cli_global_state():
    """Leaves the CLI's global state as the test found it: an in-process `main()` without `--quiet` turns the
    progress bars on (`progress.set_enabled`) and replaces the root logger's handlers and level
    (`logging.basicConfig(force=True)`), which would otherwise hold for every later test."""
    root = logging.getLogger()
    enabled, level, handlers = progress.is_enabled(), root.level, _own_handlers(root)
    yield
    progress.set_enabled(enabled)
    root.setLevel(level)
    for handler in _own_handlers(root):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)


@pytest.fixture(scope="session")
def shapes_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny shapes world (60 train, 20 val, 2 classification images per class), generated once."""
    out = tmp_path_factory.mktemp("shapes") / "world"
    generate_world(TINY_WORLD, out)
    return out


@pytest.fixture(scope="session")
def clip_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real CLIP tokenizer (49,408 tokens), built offline from open_clip's packaged merges, once."""
    from tests.models.clip_tokenizer import save_clip_tokenizer

    return save_clip_tokenizer(tmp_path_factory.mktemp("clip-tokenizer"))


@pytest.fixture(scope="session")
def real_gpt2():
    """GPT-2's real tokenizer and its encoder.json + vocab.bpe (`tests/fixtures/gpt2.py`), built once from the
    ranks `make fixtures` fetches; without them the test skips (fails under VLKIT_REQUIRE_FIXTURES=1)."""
    from tests.fixtures.gpt2 import load_real_gpt2  # transformers loads only for the tests that need it

    return load_real_gpt2()
