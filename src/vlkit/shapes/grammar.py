"""The shapes world's vocabulary, the grammar that writes its captions, and the grammar's inverse.

Captions are written from the exact ground truth of an image (`SceneObject`s), so every word is checkable:
`parse_mentions` reads colour, shape, count, size and position mentions back out of any caption written in
this vocabulary (ours or a model's), which is what the grounding metrics (CHAIR, attribute accuracy) use.
The grammar is small and closed, so a hand-written scanner is exact where a general parser (spaCy, NLTK)
would be a heavy dependency that still needs these word lists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# Well separated in RGB, so that +-12 jitter and noise never make two colours meet.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 185, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 220, 50),
    "purple": (150, 60, 205),
    "orange": (245, 140, 30),
    "cyan": (40, 210, 220),
    "pink": (245, 130, 190),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "cross")
SIZES: tuple[str, ...] = ("small", "large")
# Regions of a 3x3 grid over the image, named by where an object's centre falls.
POSITIONS: tuple[str, ...] = (
    "top left", "top", "top right", "left", "middle", "right", "bottom left", "bottom", "bottom right",
)

PLURALS: dict[str, str] = {shape: shape + ("es" if shape.endswith("s") else "s") for shape in SHAPES}
SIZE_WORDS: dict[str, tuple[str, ...]] = {"small": ("small", "little"), "large": ("large", "big")}
NUMBER_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three"}
POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "top left": ("in the top left", "in the top left corner"),
    "top": ("at the top",),
    "top right": ("in the top right", "in the top right corner"),
    "left": ("on the left",),
    "middle": ("in the middle", "in the centre"),
    "right": ("on the right",),
    "bottom left": ("in the bottom left", "in the bottom left corner"),
    "bottom": ("at the bottom",),
    "bottom right": ("in the bottom right", "in the bottom right corner"),
}
# A relation "A <phrase> B" says where A is relative to B.
RELATION_PHRASES: dict[str, tuple[str, ...]] = {
    "left of": ("to the left of", "left of"),
    "right of": ("to the right of", "right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}
FRAMINGS: tuple[str, ...] = (
    "", "a picture of ", "an image showing ", "there is ", "a photo with ", "a photo of ", "an image of ",
    "a drawing of ", "this image shows ", "we can see ",
)
# How often each caption form is drawn (forms that do not fit a scene are left out and the rest renormalized).
CAPTION_FORMS: dict[str, float] = {
    "list": 0.30, "positions": 0.25, "relation": 0.25, "left_to_right": 0.08, "shape_first": 0.12,
}
# A centre this close (as a fraction of the side) to a grid line gets no position: a word could go either way.
POSITION_MARGIN = 0.04


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene as the captions see it: its words and its tight box [x, y, w, h] in pixels."""

    colour: str
    shape: str
    size: str
    bbox: tuple[int, int, int, int]

    @property
    def centre(self) -> tuple[float, float]:
        x, y, w, h = self.bbox
        return x + w / 2, y + h / 2


@dataclass(frozen=True)
class Mention:
    """One noun phrase read from a caption. `colour` is None for a bare shape ("a circle")."""

    colour: str | None
    shape: str
    count: int
    size: str | None = None
    position: str | None = None


def region_of(bbox: Sequence[int], image_size: int) -> str | None:
    """The POSITIONS name of the grid cell holding the box's centre, or None when it is near a grid line."""
    x, y, w, h = bbox
    cells = []
    for centre in (y + h / 2, x + w / 2):
        fraction = centre / image_size
        if any(abs(fraction - line) < POSITION_MARGIN for line in (1 / 3, 2 / 3)):
            return None
        cells.append(min(int(fraction * 3), 2))
    row, col = cells
    return POSITIONS[row * 3 + col]


def relation_between(a: SceneObject, b: SceneObject) -> str:
    """Where `a` is relative to `b`, along the axis on which their centres are further apart."""
    (ax, ay), (bx, by) = a.centre, b.centre
    if abs(bx - ax) >= abs(by - ay):
        return "left of" if ax < bx else "right of"
    return "above" if ay < by else "below"


# ----------------------------------------------------------------------------------------------- writing


def write_captions(
    objects: Sequence[SceneObject], image_size: int, rng: np.random.Generator, n: int
) -> list[str]:
    """`n` captions of the scene, distinct where the grammar allows, each naming every object."""
    return _distinct(lambda: _caption(objects, image_size, rng), n)


def write_alt_texts(colour: str, shape: str, rng: np.random.Generator, n: int) -> list[str]:
    """`n` distinct short captions of one object, naming only its colour and shape, the way alt text on the
    web names a picture's subject ("a red star", "a photo of one star in red"): the CLIP's corpus."""

    def alt_text() -> str:
        body = f"{shape} in {colour}" if rng.random() < 0.3 else f"{colour} {shape}"
        return _pick(FRAMINGS, rng) + ("one " if rng.random() < 0.15 else _article(body) + " ") + body

    return _distinct(alt_text, n)


def _distinct(draw: Callable[[], str], n: int) -> list[str]:
    """`n` captions from `draw`, distinct when 20n draws find that many; otherwise the distinct ones
    repeated (only with n far above 5), rather than fewer than asked."""
    captions: list[str] = []
    for _ in range(20 * n):
        caption = draw()
        if caption not in captions:
            captions.append(caption)
        if len(captions) == n:
            return captions
    return [captions[i % len(captions)] for i in range(n)]


def _caption(objects: Sequence[SceneObject], image_size: int, rng: np.random.Generator) -> str:
    groups = _group(objects)
    order = [groups[i] for i in rng.permutation(len(groups))]
    singles = [g[0] for g in groups if len(g) == 1]
    placed = [g for g in order if len(g) == 1 and region_of(g[0].bbox, image_size) is not None]
    usable = {
        "list": True,
        "positions": bool(placed),
        "relation": len(singles) >= 2,
        "left_to_right": len(groups) >= 2 and len(singles) == len(groups),
        "shape_first": True,
    }
    forms = [form for form in CAPTION_FORMS if usable[form]]
    weights = np.array([CAPTION_FORMS[form] for form in forms])
    form = forms[int(rng.choice(len(forms), p=weights / weights.sum()))]
    if form == "positions":
        phrases = [_noun_phrase(g, rng) + _position_suffix(g, image_size, rng) for g in order]
    elif form == "relation":
        return _relation_caption(order, rng)
    elif form == "left_to_right":
        ordered = sorted(order, key=lambda g: g[0].centre[0])
        return "from left to right, " + _join([_noun_phrase(g, rng) for g in ordered])
    else:
        phrases = [_noun_phrase(g, rng, shape_first=form == "shape_first") for g in order]
    return _framed(_join(phrases), rng)


def _group(objects: Sequence[SceneObject]) -> list[list[SceneObject]]:
    """Objects of the same colour and shape, together (in order of first appearance)."""
    groups: dict[tuple[str, str], list[SceneObject]] = {}
    for obj in objects:
        groups.setdefault((obj.colour, obj.shape), []).append(obj)
    return list(groups.values())


def _relation_caption(order: list[list[SceneObject]], rng: np.random.Generator) -> str:
    singles = [g for g in order if len(g) == 1]
    first, second = singles[0], singles[1]
    relation = relation_between(first[0], second[0])
    relation_phrase = _pick(RELATION_PHRASES[relation], rng)
    clause = f"{_noun_phrase(first, rng)} {relation_phrase} {_noun_phrase(second, rng)}"
    rest = [_noun_phrase(g, rng) for g in order if g is not first and g is not second]
    if not rest:
        return _framed(clause, rng)
    if rng.random() < 0.5:
        return _framed(f"{clause} and {_join(rest)}", rng)
    return _framed(f"{_join(rest)} and {clause}", rng)


def _noun_phrase(group: list[SceneObject], rng: np.random.Generator, shape_first: bool = False) -> str:
    """'a big red circle', 'two blue squares', or shape first: 'a circle in red'."""
    count, colour, shape = len(group), group[0].colour, group[0].shape
    sizes = {obj.size for obj in group}
    size_word = _pick(SIZE_WORDS[sizes.pop()], rng) if len(sizes) == 1 and rng.random() < 0.4 else ""
    noun = shape if count == 1 else PLURALS[shape]
    words = [size_word, noun, "in", colour] if shape_first else [size_word, colour, noun]
    body = " ".join(word for word in words if word)
    if count > 1:
        return f"{NUMBER_WORDS[count]} {body}"
    if rng.random() < 0.15:
        return f"one {body}"
    return f"{_article(body)} {body}"


def _position_suffix(group: list[SceneObject], image_size: int, rng: np.random.Generator) -> str:
    region = region_of(group[0].bbox, image_size) if len(group) == 1 else None
    return "" if region is None else " " + _pick(POSITION_PHRASES[region], rng)


def _framed(body: str, rng: np.random.Generator) -> str:
    framing = _pick(FRAMINGS, rng)
    if framing == "there is " and re.match(r"(two|three) ", body):
        framing = "there are "
    return framing + body


def _join(phrases: list[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _pick(options: Sequence[str], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


# ----------------------------------------------------------------------------------------------- reading

_COUNT_WORDS: dict[str, int] = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10,
}
_SHAPE_WORDS: dict[str, tuple[str, bool]] = {
    **{shape: (shape, False) for shape in SHAPES},
    **{plural: (shape, True) for shape, plural in PLURALS.items()},
}
_SIZE_OF_WORD: dict[str, str] = {word: size for size, words in SIZE_WORDS.items() for word in words}
# Longest first, so "in the top left corner" wins over "in the top left", and "in the top left" over nothing.
_POSITION_OF_PHRASE: list[tuple[tuple[str, ...], str]] = sorted(
    [(tuple(phrase.split()), region) for region, phrases in POSITION_PHRASES.items() for phrase in phrases]
    + [(("in", "the", "center"), "middle")],
    key=lambda item: -len(item[0]),
)


def parse_mentions(caption: str) -> list[Mention]:
    """The noun phrases of a caption in this vocabulary, in order.

    A phrase is [count word] [size word] [colour] shape [in colour] [position phrase]; a plural with no
    number counts as 2, a singular with none as 1. Words outside the vocabulary end a phrase, so framing
    ("a picture of"), relations ("to the left of") and "and" never leak into the mentions.
    """
    tokens = re.findall(r"[a-z]+", caption.lower())
    mentions: list[Mention] = []
    count: int | None = None
    size: str | None = None
    colour: str | None = None
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token in _COUNT_WORDS:
            count, size, colour = _COUNT_WORDS[token], None, None
        elif token in _SIZE_OF_WORD:
            size = _SIZE_OF_WORD[token]
        elif token in COLOURS:
            colour = token
        elif token in _SHAPE_WORDS:
            shape, plural = _SHAPE_WORDS[token]
            if colour is None and i + 1 < len(tokens) and tokens[i] == "in" and tokens[i + 1] in COLOURS:
                colour = tokens[i + 1]
                i += 2
            position, used = _read_position(tokens, i)
            i += used
            if count is None:
                count = 2 if plural else 1
            mentions.append(Mention(colour=colour, shape=shape, count=count, size=size, position=position))
            count, size, colour = None, None, None
        else:
            count, size, colour = None, None, None
    return mentions


def _read_position(tokens: list[str], start: int) -> tuple[str | None, int]:
    """The region named by a position phrase starting at `start`, and how many tokens it used."""
    for phrase, region in _POSITION_OF_PHRASE:
        if tuple(tokens[start : start + len(phrase)]) == phrase:
            return region, len(phrase)
    return None, 0
