"""The Java side of the comparisons: pycocoevalcap's own tokenizer, started once per test session.

Every test that needs Java goes through `require_java()`: it skips without Java on a developer machine, but
fails under VLKIT_REQUIRE_JAVA=1 (`make test` installs Debian's JRE and sets it, and CI runs `make test`),
where a missing Java would otherwise hide every comparison with pycocoevalcap.
"""

from __future__ import annotations

import os

import pytest

from tests.metrics.caption_corpus import corpus
from vlkit.metrics.ptb_java import java_available, ptb_tokenize_java


def require_java() -> None:
    if java_available():
        return
    if os.environ.get("VLKIT_REQUIRE_JAVA") == "1":
        pytest.fail(
            "Java is not on the PATH but VLKIT_REQUIRE_JAVA=1 (make test installs Debian's JRE): "
            "the comparisons with pycocoevalcap need it"
        )
    pytest.skip("Java not found on the PATH; `make test` installs it and then requires these tests")


@pytest.fixture(scope="session")
def caption_corpus() -> list[str]:
    return corpus()


@pytest.fixture(scope="session")
def java_tokens(caption_corpus: list[str]) -> list[str]:
    """pycocoevalcap's PTBTokenizer output for the whole corpus, in one Java run (it is slow to start)."""
    require_java()
    return ptb_tokenize_java(caption_corpus)
