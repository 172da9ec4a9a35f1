"""Caption tokenization exactly as pycocoevalcap does it, without Java.

pycocoevalcap (the reference for every published CIDEr, BLEU, METEOR and ROUGE-L on COCO) joins the
captions one per line, runs Stanford CoreNLP 3.4.1's `PTBTokenizer -preserveLines -lowerCase` in a Java
subprocess, and drops the tokens in its `PUNCTUATIONS` list. `ptb_tokenize` gives the same strings in pure
Python: the lexer itself is rebuilt in `vlkit.metrics.ptb_lexer`; this module reproduces the pipeline
around it and makes it fast. `ptb_tokenize_java` calls pycocoevalcap's own tokenizer, for comparison.

What the pipeline does, and so what `ptb_tokenize` does:
- tokens are lower-cased and joined by single spaces; "(" becomes "-lrb-" (its PUNCTUATIONS list holds
  "-LRB-" in upper case, so the lower-cased brackets are *not* removed), quotes become `` and '' (removed);
- characters outside the Basic Multilingual Plane (emoji) and others Java cannot tokenize are deleted;
- a caption is tokenized with the next ones after it, as in pycocoevalcap's one-line-per-caption file, so
  "a." at the end of one caption becomes "a" "." when the next starts with "The" (and the last caption
  sits at the end of the file, where trailing contexts cannot match).

Known difference, by design: pycocoevalcap replaces "\\n" in a caption by a space, but the other line
breaks (\\r, \\v, \\f, U+2028, U+2029) end the line for Java, which then returns one line too many and every
later caption is scored with its neighbour's tokens. `ptb_tokenize` treats all of them as a space, which is
what pycocoevalcap means to do. Other approximations are listed in `vlkit.metrics.ptb_lexer`.

Speed: almost every caption is a run of space-separated chunks that the lexer tokenizes independently, so
each distinct chunk is lexed once and remembered (`_CHUNKS`); a caption with anything that can make a token
or a rule's lookahead cross a space (other white space, "<", digits on both sides of a space, spaced dots,
an abbreviation at a chunk's end) is lexed whole, with the captions that follow it as lookahead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from vlkit.errors import VlkitError
from vlkit.metrics.ptb_lexer import java_lower, lex

# pycocoevalcap/tokenizer/ptbtokenizer.py: PUNCTUATIONS
PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-",
                          "--", "...", ";"])
# What lets a token, or a rule's trailing context, reach over a space into the next chunk: other white space
# and line breaks ("\x85" is not one: CoreNLP lexes it as an ellipsis), SGML, numbers on both sides of a
# space ("5 3/4", phone numbers), spaced dots (". . ."), and "U.S" in the special acronyms ("non-U.S.").
_ODD_CHARACTERS = re.compile("[\r\n\x0b\x0c\u2028\u2029\t\xa0\u2000-\u200a\u3000<]")
_NUMBERS_ACROSS_SPACE = re.compile("[0-9)] \\(?[0-9]")
_LINE_BREAKS = re.compile("[\r\n\x0b\x0c\u2028\u2029]")
# A chunk ending like this is lexed differently when the next chunk starts with a capital, "<" or a digit:
# an acronym before "The" loses its period ("I." -> "I" "."), "No." keeps its period before a number.
_CONTEXT_SENSITIVE_END = re.compile(
    "(?:^|[^A-Za-z])[A-Za-z](?:\\.[A-Za-z])*\\.$|(?:^|[^A-Za-z0-9])(?i:ca|figs?|prop|nos?|art|bldg|pp|op)\\.$"
)
_LOOKAHEAD_CAPTIONS = 3  # how many following captions a trailing context may reach (it can span lines)
_MAX_CACHED_CHUNKS = 1_000_000
# Chunk -> its tokens, lower-cased, PUNCTUATIONS removed, joined by spaces; for a chunk followed by a space,
# by the end of its line, and by the end of the input. Only chunks whose tokens do not depend on what
# comes after that first character are kept (see `_lex_chunk`).
_INSIDE: dict[str, str] = {}
_LINE_END: dict[str, str] = {}
_INPUT_END: dict[str, str] = {}


def ptb_tokenize(captions: Sequence[str]) -> list[str]:
    """Tokenize captions as pycocoevalcap's PTBTokenizer does, one output string per caption.

    Args:
        captions: the captions, in the order pycocoevalcap would write them (it matters only through the
            lookahead from one caption into the next, see the module docstring).

    Returns:
        For each caption, its lower-cased tokens joined by single spaces, punctuation tokens removed.
    """
    lines = list(captions)
    last = len(lines) - 1
    tokenized = []
    for index, text in enumerate(lines):
        line_end = _LINE_END if index < last else _INPUT_END
        if (_ODD_CHARACTERS.search(text) is None and _NUMBERS_ACROSS_SPACE.search(text) is None
                and ". ." not in text and ".s" not in text and ".S" not in text):
            chunks = text.split(" ")
            try:  # the common case: every chunk seen before
                tokenized.append(" ".join(filter(None, [*map(_INSIDE.__getitem__, chunks[:-1]),
                                                         line_end[chunks[-1]]])))
                continue
            except KeyError:
                if _learn_chunks(chunks, index < last):
                    tokenized.append(" ".join(filter(None, [*map(_INSIDE.__getitem__, chunks[:-1]),
                                                             line_end[chunks[-1]]])))
                    continue
        tokenized.append(_tokenize_whole(lines, index))
    return tokenized


def _learn_chunks(chunks: list[str], more_lines: bool) -> bool:
    """Lex and remember the chunks of a line; False when one of them must be lexed with its line."""
    if len(_INSIDE) + len(_LINE_END) >= _MAX_CACHED_CHUNKS:
        for table in (_INSIDE, _LINE_END, _INPUT_END):
            table.clear()
    line_end = "\n" if more_lines else ""
    for position, chunk in enumerate(chunks):
        follow = " " if position < len(chunks) - 1 else line_end
        table = _INSIDE if follow == " " else (_LINE_END if follow else _INPUT_END)
        if chunk in table:
            continue
        raw = [java_lower(token) for token in lex(chunk, follow)]
        if raw and raw[-1][-1].isspace():
            return False  # pycocoevalcap's rstrip() would eat into the last token: only a whole line will do
        if _CONTEXT_SENSITIVE_END.search(chunk) is not None:
            return False
        table[chunk] = " ".join(token for token in raw if token not in PUNCTUATIONS)
    return True


def _tokenize_whole(lines: list[str], index: int) -> str:
    """The exact path: lex the line with the captions after it as lookahead, then pycocoevalcap's filter."""
    text = _LINE_BREAKS.sub(" ", lines[index])
    following = [_LINE_BREAKS.sub(" ", line) for line in lines[index + 1 : index + 1 + _LOOKAHEAD_CAPTIONS]]
    lookahead = "\n".join(["", *following]) + ("\n" if index + 1 + _LOOKAHEAD_CAPTIONS < len(lines) else "")
    return _pipeline(java_lower(token) for token in lex(text, lookahead))


def _pipeline(tokens) -> str:
    """What pycocoevalcap does with one line of the tokenizer's output."""
    line = " ".join(tokens)
    return " ".join(word for word in line.rstrip().split(" ") if word not in PUNCTUATIONS)


def java_available() -> bool:
    return shutil.which("java") is not None


def ptb_tokenize_java(captions: Sequence[str]) -> list[str]:
    """Tokenize with pycocoevalcap's own PTBTokenizer (Java); the reference `ptb_tokenize` reproduces.

    Raises:
        VlkitError: when no `java` is on the PATH.
    """
    if not java_available():
        raise VlkitError("Java not found on the PATH: --tokenizer ptb-java runs pycocoevalcap's Java "
                         "PTBTokenizer; install a JRE or use --tokenizer ptb (same tokens, no Java)")
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    if not captions:
        return []
    tokenized = PTBTokenizer().tokenize({index: [{"caption": caption}] for index, caption in enumerate(captions)})
    return [tokenized[index][0] for index in range(len(captions))]
