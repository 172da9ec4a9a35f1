"""The oracle: pycocoevalcap's own PTBTokenizer, the Java program `vlkit.metrics.tokenize` reproduces.

vlkit never needs it; `--tokenizer ptb-java` and the tests that prove the two equal run it where Java is.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence

from vlkit.errors import VlkitError


def java_available() -> bool:
    return shutil.which("java") is not None


def ptb_tokenize_java(captions: Sequence[str]) -> list[str]:
    """Tokenize with pycocoevalcap's own PTBTokenizer (Java); the reference `ptb_tokenize` reproduces.

    Raises:
        VlkitError: when no `java` is on the PATH.
    """
    if not java_available():
        raise VlkitError(
            "Java not found on the PATH: --tokenizer ptb-java runs pycocoevalcap's Java "
            "PTBTokenizer; install a JRE or use --tokenizer ptb (same tokens, no Java)"
        )
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    if not captions:
        return []
    tokenized = PTBTokenizer().tokenize(
        {index: [{"caption": caption}] for index, caption in enumerate(captions)}
    )
    return [tokenized[index][0] for index in range(len(captions))]
