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

Known differences. By design: pycocoevalcap replaces "\\n" in a caption by a space, but the other line
breaks (\\r, \\v, \\f, U+2028, U+2029) end the line for Java, which then returns one line too many and every
later caption gets its neighbour's tokens; `ptb_tokenize` treats them all as a space, as pycocoevalcap
means to. Approximations: Java lower-cases a capital sigma by the words its BreakIterator finds, which
`java_lower` follows in a simplified form (Greek words glued to punctuation may differ); a trailing
context reaches at most 3 captions ahead (it would need empty captions in between to reach further); the
lexer's own are listed in `vlkit.metrics.ptb_lexer`.

Speed: almost every caption is a run of space-separated chunks that the lexer tokenizes independently, so
each distinct chunk is tokenized once and remembered (`_CHUNKS`), most of them by a shortcut for plain
words (`_plain_chunk_tokens`); a caption with anything that can make a token or a rule's lookahead cross a
space (other white space, "<", digits on both sides of a space, spaced dots, an acronym at a chunk's end)
is lexed whole, with the captions that follow it as lookahead. `ptb_word_ids` gives the same tokens as
integer ids straight from that memory, for CIDEr, without building the strings.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any

import numpy as np

from vlkit.metrics.ptb_lexer import ABBREV1, ABBREV4, lex

# pycocoevalcap/tokenizer/ptbtokenizer.py: PUNCTUATIONS
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
_LINE_BREAKS = re.compile("[\r\n\x0b\x0c\u2028\u2029]")  # "\x85" is not one: CoreNLP lexes it as "..."
# What lets a token, or a rule's trailing context, reach over a space into the next chunk: other white space
# and line breaks, SGML, spaced dots (". . ."), "U.S" in the special acronyms ("non-U.S."), and numbers on
# both sides of a space ("5 3/4", phone numbers; `_NUMBER_ACROSS_SPACE`).
_ODD_ASCII = "\r\x0b\x0c\t<"
_ODD_CHARACTERS = re.compile("[\r\x0b\x0c\u2028\u2029\t\xa0\u2000-\u200a\u3000<]")
_ODD_STRINGS = (". .", ".s", ".S")
_NUMBER_ACROSS_SPACE = re.compile("[0-9)] \\(?[0-9]")
_BEFORE_SPACE = re.compile("[0-9)] ")
# A chunk ending like this is lexed differently when the next chunk starts with a capital, "<" or a digit:
# an acronym before "The" loses its period ("I." -> "I" "."), "No." keeps its period before a number.
_CONTEXT_SENSITIVE_END = re.compile(
    "(?:^|[^A-Za-z])[A-Za-z](?:\\.[A-Za-z])*\\.$|(?:^|[^A-Za-z0-9])(?i:ca|figs?|prop|nos?|art|bldg|pp|op)\\.$"
)
_LOOKAHEAD_CAPTIONS = 3  # how many following captions a trailing context may reach (it can span lines)
_MAX_CACHED_CHUNKS = 1_000_000
_LINE_END = "\n"
_WHOLE_LINE = "\x00"  # the output of a chunk that must be lexed with its line (no token holds a NUL)
_LINE_END_CODE, _WHOLE_LINE_CODE, _FIRST_SEQUENCE_CODE = -1, -2, -3


class _ChunkMemory(dict):
    """Chunk -> what it tokenizes to; a chunk seen for the first time is tokenized on the spot.

    Two views of the same memory: `_CHUNKS` holds the tokens as pycocoevalcap writes them (lower-cased,
    PUNCTUATIONS removed, joined by spaces; the same whether a space or the end of a line follows the
    chunk, since the lexer's trailing contexts only differ there for `_CONTEXT_SENSITIVE_END`), and
    `_CHUNK_CODES` the ids of the words CIDEr sees (`str.split()` of those tokens): the word's id when
    there is exactly one, else a negative code (a line end, a line to lex whole, or -3 - the index of its
    id sequence in `_SEQUENCES`).
    """

    def __missing__(self, chunk: str) -> Any:
        _learn_chunk(chunk)
        return self[chunk]


_CHUNKS: _ChunkMemory = _ChunkMemory()
_CHUNK_CODES: _ChunkMemory = _ChunkMemory()
_SEQUENCES: list[tuple[int, ...]] = []
_WORD_IDS: dict[str, int] = {}  # one vocabulary that grows across calls, so remembered ids stay valid


def ptb_tokenize(captions: Sequence[str]) -> list[str]:
    """Tokenize captions as pycocoevalcap's PTBTokenizer does, one output string per caption.

    Args:
        captions: the captions, in the order pycocoevalcap would write them (it matters only through the
            lookahead from one caption into the next, see the module docstring).

    Returns:
        For each caption, its lower-cased tokens joined by single spaces, punctuation tokens removed.
    """
    lines = list(captions)
    if not lines:
        return []
    _make_room(lines)
    chunks, whole = _chunk_lines(lines[:-1])
    text = " ".join(filter(None, map(_CHUNKS.__getitem__, chunks)))
    tokenized = text.replace(" \n", "\n").replace("\n ", "\n").split(_LINE_END) if chunks else []
    whole.update(index for index, line in enumerate(tokenized) if _WHOLE_LINE in line)
    for index in whole:
        tokenized[index] = _tokenize_whole(lines, index)
    tokenized.append(_tokenize_whole(lines, len(lines) - 1))  # the end of the input: contexts cannot match
    return tokenized


def ptb_word_ids(captions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The words of `ptb_tokenize(captions)` (as `str.split()` cuts them) as ids, without the strings.

    Returns:
        (ids of all captions' words in a row, number of words of each caption). Ids index a vocabulary
        that grows across calls (its size is `vocabulary_size()`), and stay valid until `clear_cache()`.
    """
    lines = list(captions)
    if not lines:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    _make_room(lines)
    chunks, whole = _chunk_lines(lines[:-1])
    stream = _expand_codes(
        np.fromiter(map(_CHUNK_CODES.__getitem__, chunks), dtype=np.int64, count=len(chunks))
    )
    ends = np.append(np.flatnonzero(stream == _LINE_END_CODE), len(stream))[: len(lines) - 1]
    starts = np.append(0, ends[:-1] + 1) if len(ends) else ends
    whole.update(np.searchsorted(ends, np.flatnonzero(stream == _WHOLE_LINE_CODE)).tolist())
    whole.add(len(lines) - 1)
    exact = {index: _word_ids_of(_tokenize_whole(lines, index).split()) for index in sorted(whole)}
    # Each line's ids: its stretch of the stream, or its exact ids appended after the stream.
    source_start = np.append(starts, np.zeros(1, dtype=np.int64)).astype(np.int64)
    lengths = np.append(ends - starts, 0).astype(np.int64)
    extra_start = len(stream)
    for index, ids in exact.items():
        source_start[index], lengths[index] = extra_start, len(ids)
        extra_start += len(ids)
    source = np.concatenate([stream, np.fromiter(chain.from_iterable(exact.values()), dtype=np.int64)])
    offsets = np.cumsum(lengths) - lengths
    gather = np.repeat(source_start - offsets, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)
    return source[gather], lengths


def vocabulary_size() -> int:
    """How many distinct words `ptb_word_ids` has numbered (ids are below this)."""
    return len(_WORD_IDS)


def clear_cache() -> None:
    """Forget the chunks tokenized so far (benchmarks clear it to time a first call; tests to start clean)."""
    for table in (_CHUNKS, _CHUNK_CODES, _SEQUENCES, _WORD_IDS):
        table.clear()


def _make_room(lines: list[str]) -> None:
    """Start the memory afresh when it grows past its bound (only between calls: ids must stay stable)."""
    if len(_CHUNKS) > _MAX_CACHED_CHUNKS:
        clear_cache()
    if not _CHUNKS:
        _CHUNKS[_LINE_END], _CHUNK_CODES[_LINE_END] = _LINE_END, _LINE_END_CODE


def _chunk_lines(lines: list[str]) -> tuple[list[str], set[int]]:
    """The chunks of `lines` with a line-end chunk between lines (each chunk tokenized and remembered), and
    the lines that must be lexed whole instead."""
    if not lines:
        return [], set()
    text = f" {_LINE_END} ".join(lines)
    whole: set[int] = set()
    if text.count(_LINE_END) != len(lines) - 1:  # a caption holds a line break: it is a space to us
        whole.update(index for index, line in enumerate(lines) if _LINE_END in line)
        text = f" {_LINE_END} ".join(_LINE_BREAKS.sub(" ", line) for line in lines)
    offsets = _cross_chunk_offsets(text)
    if offsets:  # a match spanning two lines marks both, harmless: the exact path is always right
        starts = np.cumsum([0, *(len(line) + 3 for line in lines)])
        whole.update((np.searchsorted(starts, offsets, side="right") - 1).tolist())
    return text.split(" "), whole


def _cross_chunk_offsets(text: str) -> list[int]:
    """Where `text` has something that crosses chunks (see _ODD_CHARACTERS and friends)."""
    offsets: list[int] = []
    if not text.isascii() or any(map(text.__contains__, _ODD_ASCII)):
        offsets.extend(match.start() for match in _ODD_CHARACTERS.finditer(text))
    for needle in _ODD_STRINGS:
        offsets.extend(_find_all(text, needle))
    if text.isascii():  # numbers are rare in captions: find "<digit or )> " with numpy, check each
        codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        before_space = (((codes[:-1] - 48) < 10) | (codes[:-1] == 41)) & (codes[1:] == 32)
        candidates = np.flatnonzero(before_space).tolist()
    else:
        candidates = [match.start() for match in _BEFORE_SPACE.finditer(text)]
    offsets.extend(offset for offset in candidates if _NUMBER_ACROSS_SPACE.match(text, offset) is not None)
    return offsets


def _find_all(text: str, needle: str) -> Iterable[int]:
    offset = text.find(needle)
    while offset >= 0:
        yield offset
        offset = text.find(needle, offset + 1)


def _expand_codes(codes: np.ndarray) -> np.ndarray:
    """Chunk codes -> word ids, each id sequence in place of its code (line-end and whole-line codes stay)."""
    sequence = np.flatnonzero(codes <= _FIRST_SEQUENCE_CODE)
    if not len(sequence):
        return codes
    words = [_SEQUENCES[_FIRST_SEQUENCE_CODE - code] for code in codes[sequence].tolist()]
    sizes = np.ones(len(codes), dtype=np.int64)
    sizes[sequence] = [len(ids) for ids in words]
    stream = np.repeat(codes, sizes)
    starts = np.cumsum(sizes) - sizes
    stream[np.repeat(starts[sequence], sizes[sequence]) + _ranks(sizes[sequence])] = np.fromiter(
        chain.from_iterable(words), dtype=np.int64, count=int(sizes[sequence].sum())
    )
    return stream


def _ranks(sizes: np.ndarray) -> np.ndarray:
    """0, 1, .., size-1 for each size, all in a row."""
    return np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def _word_ids_of(words: Iterable[str]) -> tuple[int, ...]:
    return tuple(_WORD_IDS.setdefault(word, len(_WORD_IDS)) for word in words)


def _learn_chunk(chunk: str) -> None:
    """Tokenize a new chunk into both views of the memory (see _ChunkMemory)."""
    word, mark = (chunk[:-1], chunk[-1]) if chunk[-1:] in _MARKS else (chunk, "")
    if mark == "." and _CONTEXT_SENSITIVE_END.search(chunk) is not None:
        output = _WHOLE_LINE  # what follows decides
    elif not chunk.isascii():
        output = _tokenize_chunk(chunk)
    elif word.isalpha() and not (mark == "." and _ABBREVIATION.fullmatch(chunk)):
        output = word.lower()  # a plain word (and a punctuation mark): the most common chunk by far
        split = _ASSIMILATIONS.get(output)
        if split:
            output = f"{output[:-split]} {output[-split:]}"
    elif word[-2:] == "'s" and word[:-2].isalpha():
        output = f"{word[:-2].lower()} 's"  # a possessive (as _plain_chunk_tokens, checked by the tests)
    elif "-" in word and word[0] != "-" != word[-1] and "--" not in word and word.replace("-", "").isalpha():
        output = word.lower()  # a hyphenated word, one token
    else:
        output = _tokenize_chunk(chunk)
    dict.__setitem__(_CHUNKS, chunk, output)
    if output == _WHOLE_LINE:
        code = _WHOLE_LINE_CODE
    elif output and " " not in output and output.isascii():
        code = _WORD_IDS.setdefault(output, len(_WORD_IDS))
    else:
        ids = _word_ids_of(output.split())
        if len(ids) == 1:
            code = ids[0]
        else:
            code = _FIRST_SEQUENCE_CODE - len(_SEQUENCES)
            _SEQUENCES.append(ids)
    dict.__setitem__(_CHUNK_CODES, chunk, code)


def _tokenize_chunk(chunk: str) -> str:
    tokens = _plain_chunk_tokens(chunk)
    if tokens is None:
        tokens = [java_lower(token) for token in lex(chunk, " ")]
        if tokens and tokens[-1][-1].isspace():
            return _WHOLE_LINE  # pycocoevalcap's rstrip() would eat into the last token
    return " ".join([token for token in tokens if token not in PUNCTUATIONS])


# Most chunks are a word (maybe hyphenated) or a number, maybe in quotes or after or before a parenthesis,
# maybe with "'s" and one punctuation mark after it: their tokens are known without running the lexer
# (the tests check this shortcut against `lex` on every shape).
_PLAIN = re.compile('(["(]?)([A-Za-z]+(?:-[A-Za-z]+)*|[0-9]+)(\'s)?([")]?)([.,;:!?]?)')
_ABBREVIATION = re.compile(f"{ABBREV1}|" + "|".join(f"(?:{alternative})\\." for alternative in ABBREV4))
_MARKS = frozenset(".,;:!?")
_ASSIMILATIONS = {
    "cannot": 3,
    "gonna": 2,
    "gotta": 2,
    "lemme": 2,
    "gimme": 2,
    "wanna": 2,
}  # letters given back
_OPENING = {"": [], '"': ["``"], "(": ["-lrb-"]}
_CLOSING = {"": [], '"': ["''"], ")": ["-rrb-"]}


def _plain_chunk_tokens(chunk: str) -> list[str] | None:
    """The lower-cased tokens of a plain chunk (see _PLAIN), or None when the lexer must decide."""
    match = _PLAIN.fullmatch(chunk)
    if match is None:
        return None
    opening, word, possessive, closing, mark = match.groups()
    if (opening == "(" and closing == ")") or (possessive and word.isdigit()):
        return None  # "(xx)" is a smiley to CoreNLP; "90's" has rules of its own
    lowered = word.lower()
    if mark == "." and not (possessive or closing) and _ABBREVIATION.fullmatch(word + mark) is not None:
        return [*_OPENING[opening], lowered + mark]  # "Mr." "etc." keep their period
    split = 0 if possessive else _ASSIMILATIONS.get(lowered, 0)
    tokens = [lowered[:-split], lowered[-split:]] if split else [lowered]
    return [
        *_OPENING[opening],
        *tokens,
        *(["'s"] if possessive else []),
        *_CLOSING[closing],
        *([mark] if mark else []),
    ]


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


# ---- Java's String.toLowerCase (PTBTokenizer -lowerCase) ----


def _is_cased(char: str) -> bool:
    return char.lower() != char or char.upper() != char


_NOT_WORD_LETTERS = re.compile("[\u3005\u4e00-\u9fa5\uf900-\ufa2d\u3041-\u309e\u30a1-\u30fe]")  # kanji, kana


_WORD_MARKS = frozenset(["Mn", "Mc", "Me", "Cf"])  # marks and format characters never break a word


def _in_word(token: str, index: int) -> bool:
    """Whether the JDK's word BreakIterator keeps token[index] in the word around it (its rules, simplified).

    Letters (but not kanji or kana), digits, marks and format characters make words; a dash, soft hyphen,
    apostrophe, straight double quote, period or underscore joins two letters, a comma or period two
    digits (marks and format characters before it belong to the character they follow).
    """
    char = token[index]
    if _NOT_WORD_LETTERS.match(char):
        return False
    if char.isalnum() or unicodedata.category(char) in _WORD_MARKS:
        return True
    before = next((c for c in reversed(token[:index]) if unicodedata.category(c) not in _WORD_MARKS), "")
    after = token[index + 1 : index + 2]
    if char in "'\".\u00ad\u2027_" or unicodedata.category(char) == "Pd":
        return before.isalpha() and after.isalpha()
    return char in ",." and before.isdigit() and after.isdigit()


def java_lower(token: str) -> str:
    """`String.toLowerCase()` as Java does it: the same as Python's except for a capital sigma.

    Java makes it final (U+03C2) when a cased letter precedes it in its word and none follows; Python looks
    at the neighbouring characters only. Java's words come from its BreakIterator (`_in_word`).
    """
    if "\u03a3" not in token:
        return token.lower()
    lowered = []
    for index, char in enumerate(token):
        if char != "\u03a3":
            lowered.append(char.lower())
            continue
        start, end = index, index + 1
        while start > 0 and _in_word(token, start - 1):
            start -= 1
        while end < len(token) and _in_word(token, end):
            end += 1
        final = any(map(_is_cased, token[start:index])) and not any(map(_is_cased, token[index + 1 : end]))
        lowered.append("\u03c2" if final else "\u03c3")
    return "".join(lowered)
