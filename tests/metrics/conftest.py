"""The Java side of the comparisons: pycocoevalcap's own tokenizer, started once per test session.

Tests that need Java skip without it on a developer machine, but fail under CI=true, where a missing Java
would otherwise hide every comparison with the reference.
"""

from __future__ import annotations

import os

import pytest

from tests.metrics.caption_corpus import corpus
from vlkit.metrics.ptb_java import java_available, ptb_tokenize_java


def require_java() -> None:
    if java_available():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("Java is required under CI=true: the comparisons with pycocoevalcap need it")
    pytest.skip("Java not found on the PATH: pycocoevalcap's tokenizer cannot run here")


@pytest.fixture(scope="session")
def caption_corpus() -> list[str]:
    return corpus()


@pytest.fixture(scope="session")
def java_tokens(caption_corpus: list[str]) -> list[str]:
    """pycocoevalcap's PTBTokenizer output for the whole corpus, in one Java run (it is slow to start)."""
    require_java()
    return ptb_tokenize_java(caption_corpus)
