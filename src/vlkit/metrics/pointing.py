"""Grounding, measured: does the attention map of a word that names an object point at that object?

On the shapes world every colour and shape word of a caption names objects whose pixel masks are known, so
for each generated word naming an object that is in the image:
- pointing game (Zhang et al., 2016, "Top-down neural attention by excitation backprop"): a hit when the
  map's maximum falls inside the mask of an object the word names;
- mass in mask: the share of the map inside those masks.
Two baselines need no model: the centre point (a hit when the image centre is inside the masks) and a point
drawn uniformly at random (its expected hit rate is the masks' share of the image, computed exactly).
A word naming nothing in the image (a hallucination, which CHAIR counts) has no mask and is not scored.

Generated tokens are grouped into words first (a token that starts with a space starts a word); a word's map
is the mean of its tokens' maps. A colour word names what its noun phrase names: the next shape word ("a red
circle") or, after "in", the shape before it ("a circle in red").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vlkit.shapes.grammar import COLOURS, PLURALS, SHAPES, SIZE_WORDS

_SHAPE_OF_WORD = {**{s: s for s in SHAPES}, **{p: s for s, p in PLURALS.items()}}
# Words that may stand between a colour and its shape ("a small red circle", "two large red stars").
_PHRASE_WORDS = {w for words in SIZE_WORDS.values() for w in words} | {
    "a", "an", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
}  # fmt: skip


@dataclass
class Word:
    text: str
    token_indices: list[int]


@dataclass
class GroundedWord:
    """A generated word that names objects of the image: its tokens and the indices of those objects."""

    text: str
    token_indices: list[int]
    object_indices: list[int]


def words_of(tokens: Sequence[str]) -> list[Word]:
    """Group decoded tokens into words: a token starting with whitespace (or the first) starts a new word."""
    words: list[Word] = []
    for i, token in enumerate(tokens):
        if not words or token[:1].isspace():
            words.append(Word(token.strip(), [i]))
        else:
            words[-1].text += token.strip()
            words[-1].token_indices.append(i)
    return words


def _plain(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalpha())


def grounded_words(tokens: Sequence[str], objects: Sequence[Mapping[str, Any]]) -> list[GroundedWord]:
    """The colour and shape words of a generated caption with the objects (annotation order) each names."""
    words = words_of(tokens)
    plain = [_plain(w.text) for w in words]
    # The noun phrase of each shape word: (shape, colour or None, indices of its colour words)
    phrase_of: dict[int, tuple[str, str | None, list[int]]] = {}
    for i, text in enumerate(plain):
        if text not in _SHAPE_OF_WORD:
            continue
        colour_words: list[int] = []
        j = i - 1
        while j >= 0 and plain[j] in _PHRASE_WORDS | COLOURS.keys():  # back through this noun phrase
            if plain[j] in COLOURS:
                colour_words = [j]
                break
            j -= 1
        if i + 2 < len(plain) and plain[i + 1] == "in" and plain[i + 2] in COLOURS:
            colour_words = [i + 2]  # "a circle in red"
        colour = plain[colour_words[0]] if colour_words else None
        phrase_of[i] = (_SHAPE_OF_WORD[text], colour, colour_words)
    grounded: list[GroundedWord] = []
    for i, (shape, colour, colour_words) in phrase_of.items():
        named = [
            k
            for k, obj in enumerate(objects)
            if obj["shape"] == shape and (colour is None or obj["colour"] == colour)
        ]
        if not named:
            continue
        for j in sorted([i, *colour_words]):
            grounded.append(GroundedWord(words[j].text, words[j].token_indices, named))
    grounded.sort(key=lambda g: g.token_indices[0])
    return grounded


def object_mask(labels: np.ndarray, object_indices: Sequence[int]) -> np.ndarray:
    """The union of the objects' pixels in a label mask (object index + 1 per pixel, 0 background)."""
    return np.isin(labels, np.asarray(object_indices) + 1)


@dataclass
class PointingTally:
    hits: int = 0
    mass: float = 0.0
    n_words: int = 0

    def add(self, word_map: np.ndarray, mask: np.ndarray) -> None:
        """`word_map` (H, W) sums to 1; `mask` (H, W) bool, the pixels of the named objects."""
        peak = np.unravel_index(int(np.argmax(word_map)), word_map.shape)
        self.hits += int(mask[peak])
        self.mass += float(word_map[mask].sum())
        self.n_words += 1

    def result(self) -> dict[str, float | int | None]:
        if not self.n_words:
            return {"pointing_game": None, "mass_in_mask": None, "n_words": 0}
        return {
            "pointing_game": self.hits / self.n_words,
            "mass_in_mask": self.mass / self.n_words,
            "n_words": self.n_words,
        }


@dataclass
class BaselineTally:
    centre_hits: int = 0
    random_expected: float = 0.0
    n_words: int = 0

    def add(self, mask: np.ndarray) -> None:
        height, width = mask.shape
        self.centre_hits += int(mask[height // 2, width // 2])
        self.random_expected += float(mask.mean())
        self.n_words += 1

    def result(self) -> dict[str, float | None]:
        if not self.n_words:
            return {"center": None, "random": None}
        return {"center": self.centre_hits / self.n_words, "random": self.random_expected / self.n_words}
