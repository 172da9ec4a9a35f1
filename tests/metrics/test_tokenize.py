"""vlkit's pure-Python PTB tokenization against pycocoevalcap's Java one, and its own promises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.metrics.caption_corpus import generated_captions, tricky_captions
from tests.metrics.conftest import require_java
from vlkit.errors import VlkitError
from vlkit.metrics import tokenize
from vlkit.metrics.ptb_java import ptb_tokenize_java
from vlkit.metrics.ptb_lexer import lex
from vlkit.metrics.tokenize import java_lower, ptb_tokenize


def test_tokens_equal_pycocoevalcaps_java_tokenizer_on_the_whole_corpus(
    caption_corpus: list[str], java_tokens: list[str]
) -> None:
    assert len(caption_corpus) >= 2000
    tokenize.clear_cache()
    ours = ptb_tokenize(caption_corpus)
    mismatches = [
        (caption, java, mine)
        for caption, java, mine in zip(caption_corpus, java_tokens, ours, strict=True)
        if java != mine
    ]
    assert not mismatches, f"{len(mismatches)} captions differ, e.g. {mismatches[:3]}"


def test_a_second_call_from_memory_gives_the_same_tokens(
    caption_corpus: list[str], java_tokens: list[str]
) -> None:
    ptb_tokenize(caption_corpus)
    assert ptb_tokenize(caption_corpus) == java_tokens


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("A man (in red) [left] {right}.", "a man -lrb- in red -rrb- -lsb- left -rsb- -lcb- right -rcb-"),
        ("I don't know, they're here: it's 'fine'!", "i do n't know they 're here it 's fine"),
        ("The dog's and the dogs' bones", "the dog 's and the dogs bones"),
        ("\u201cHi\u201d \u2014 \u2018yes\u2019 \u2026 ok...", "hi yes ok"),
        ("cannot gonna", "can not gon na"),
        ("a well-known 3/4 and 1,000.5 or 10%", "a well-known 3/4 and 1,000.5 or 10 %"),
        ("Mr. Smith went to the U.S. today.", "mr. smith went to the u.s. today"),
        ("a dog \U0001f436 here", "a dog here"),
        ("caf\u00e9 \u00dcBER", "caf\u00e9 \u00fcber"),
        ("  two  spaces\tand a tab  ", "two spaces and a tab"),
        ("...", ""),
        ("", ""),
    ],
)
def test_documented_behaviour(caption: str, expected: str) -> None:
    assert ptb_tokenize([caption]) == [expected]


def test_a_newline_inside_a_caption_is_a_space_like_pycocoevalcap_does() -> None:
    assert ptb_tokenize(["a new\nline", "x"]) == ptb_tokenize(["a new line", "x"])


@pytest.mark.parametrize("line_break", ["\r", "\r\n", "\x0b", "\x0c", "\u2028", "\u2029"])
def test_other_line_breaks_are_spaces_where_pycocoevalcap_would_shift_its_lines(line_break: str) -> None:
    assert ptb_tokenize([f"one{line_break}two", "three"]) == ["one two", "three"]


def test_the_next_caption_is_lookahead_as_in_pycocoevalcaps_one_line_per_caption_file() -> None:
    # "b." then a capitalised "The": CoreNLP takes "b" as a sentence end, so the period is cut off.
    assert ptb_tokenize(["plan b.", "The end", "plan b.", "the end"]) == [
        "plan b",
        "the end",
        "plan b.",
        "the end",
    ]


def test_the_last_caption_is_at_the_end_of_the_input() -> None:
    # A smiley needs one more character after it; at the end of pycocoevalcap's file there is none, so the
    # last ":)" is ":" (removed) and ")" ("-rrb-", kept: pycocoevalcap only removes "-RRB-" in capitals).
    assert ptb_tokenize(["ok :)", "ok :)"]) == ["ok :-rrb-", "ok -rrb-"]


def test_java_tokenizer_reports_a_missing_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(VlkitError, match="Java not found"):
        ptb_tokenize_java(["a caption"])


def test_java_tokenizer_matches_on_the_tricky_captions_alone() -> None:
    require_java()
    captions = tricky_captions()
    assert ptb_tokenize(captions) == ptb_tokenize_java(captions)


_FRAGMENTS = st.sampled_from(
    [
        "a",
        "Dog",
        "U.S.",
        "I.",
        "The",
        "no.",
        "5",
        "3/4",
        "(",
        ")",
        '"',
        "'s",
        "n't",
        ".",
        ",",
        "...",
        "-",
        "--",
        "<b>",
        ":)",
        "etc.",
        "\u2019",
        "\u201c",
        "caf\u00e9",
        "\U0001f600",
        "\u00a0",
        "\t",
        "  ",
        "cannot",
        "x-ray",
        "Mr.",
        "$",
        "%",
        "e.g.",
        "@x",
        "#tag",
        "a.b",
        "\u00bd",
        "http://x.com",
        "\u03a3",
    ]
)


def _exact(captions: list[str]) -> list[str]:
    return [tokenize._tokenize_whole(captions, index) for index in range(len(captions))]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_FRAGMENTS, max_size=8).map(lambda parts: " ".join(parts)), min_size=1, max_size=6))
def test_the_chunk_memory_gives_what_lexing_each_line_whole_gives(captions: list[str]) -> None:
    assert ptb_tokenize(captions) == _exact(captions)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_any_text_gives_lower_case_tokens_joined_by_single_spaces(captions: list[str]) -> None:
    for line in ptb_tokenize(captions):
        assert line == line.lower()
        assert "  " not in line
        assert not line.startswith(" ") and not line.endswith(" ")


@settings(max_examples=300, deadline=None)
@given(st.from_regex(tokenize._PLAIN, fullmatch=True), st.sampled_from([" ", "\n"]))
def test_plain_chunk_shortcut_agrees_with_the_lexer(chunk: str, follow: str) -> None:
    shortcut = tokenize._plain_chunk_tokens(chunk)
    if shortcut is not None and not tokenize._CONTEXT_SENSITIVE_END.search(chunk):
        lexed = [java_lower(token) for token in lex(chunk, follow)]
        kept = [token for token in lexed if token not in tokenize.PUNCTUATIONS]
        assert [token for token in shortcut if token not in tokenize.PUNCTUATIONS] == kept


def test_generated_corpus_is_deterministic() -> None:
    assert generated_captions(50, seed=3) == generated_captions(50, seed=3)
    assert generated_captions(50, seed=3) != generated_captions(50, seed=4)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(tokenize._PLAIN, fullmatch=True))
def test_the_memory_of_a_plain_chunk_is_its_shortcut_tokens(chunk: str) -> None:
    tokenize.clear_cache()
    tokens = tokenize._plain_chunk_tokens(chunk)
    if tokens is not None and not tokenize._CONTEXT_SENSITIVE_END.search(chunk):
        expected = " ".join(token for token in tokens if token not in tokenize.PUNCTUATIONS)
        assert tokenize.ptb_tokenize([chunk, "x"])[0] == expected
