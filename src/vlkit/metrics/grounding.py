"""Grounded caption metrics on the shapes world, where every object of every image is known.

- `chair`: CHAIR-i and CHAIR-s (Rohrbach et al., 2018, "Object Hallucination in Image Captioning"): the
  share of object mentions naming no object of the image, and the share of captions with such a mention.
- `attribute_accuracy`: the share of each kind of claim a caption makes that is true of the image:
  colours, shapes, counts, sizes, positions (3x3 grid regions) and spatial relations.

`shapes_grammar.parse_mentions` reads the noun phrases; this module adds the small scanner for the
grammar's relation phrases ("A to the left of B", "from left to right, A, B and C"), which parse_mentions
skips on purpose, and judges every claim against the objects (dicts as in train.json: "shape", "colour",
"size", "bbox" [x, y, w, h]). The CHAIR code of its authors matches COCO synonyms against segmentation
labels; here the vocabulary is closed, so the matching is exact and no library is needed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vlkit.errors import VlkitError
from vlkit.shapes.grammar import (
    POSITION_MARGIN,
    POSITIONS,
    RELATION_PHRASES,
    Mention,
    SceneObject,
    parse_mentions,
    relation_between,
)

ATTRIBUTE_KINDS = ("colour", "shape", "count", "size", "position", "relation")
_LEFT_TO_RIGHT = ("from", "left", "to", "right")
# Longest first, so "to the left of" is read whole rather than as "left of".
_RELATION_OF_PHRASE: list[tuple[tuple[str, ...], str]] = sorted(
    [
        (tuple(phrase.split()), relation)
        for relation, phrases in RELATION_PHRASES.items()
        for phrase in phrases
    ],
    key=lambda item: -len(item[0]),
)


@dataclass(frozen=True)
class CaptionChair:
    """One caption's object mentions and those naming nothing in its image (as "red star", "hexagon")."""

    n_mentions: int
    hallucinated: list[str]


@dataclass(frozen=True)
class ChairResult:
    """CHAIR-i over all mentions (None when no caption mentions an object) and CHAIR-s over captions."""

    chair_i: float | None
    chair_s: float
    n_mentions: int
    n_hallucinated: int
    per_caption: list[CaptionChair]


@dataclass
class Tally:
    """How many claims of one kind were made and how many of them are true."""

    correct: int = 0
    total: int = 0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.total if self.total else None

    def add(self, is_true: bool) -> None:
        self.correct += int(is_true)
        self.total += 1


@dataclass(frozen=True)
class AttributeAccuracy:
    """Share of true claims per kind over all captions (None where no caption makes a claim of that kind)."""

    colour: float | None
    shape: float | None
    count: float | None
    size: float | None
    position: float | None
    relation: float | None
    per_kind_counts: dict[str, Tally]
    per_caption: list[dict[str, Tally]] = field(default_factory=list)


def scene_objects(objects: Sequence[Mapping[str, Any]]) -> list[SceneObject]:
    """train.json / val.json object dicts -> SceneObjects (VlkitError naming the field when one is bad)."""
    scene = []
    for index, obj in enumerate(objects):
        try:
            x, y, w, h = (int(v) for v in obj["bbox"])
            scene.append(SceneObject(str(obj["colour"]), str(obj["shape"]), str(obj["size"]), (x, y, w, h)))
        except (KeyError, TypeError, ValueError) as exc:
            raise VlkitError(
                f"objects[{index}]: expected shape, colour, size and bbox [x, y, w, h] ({exc!r})"
            ) from exc
    return scene


def chair(captions: Sequence[str], objects: Sequence[Sequence[Mapping[str, Any]]]) -> ChairResult:
    """CHAIR-i and CHAIR-s of `captions[k]` against the objects of its image, `objects[k]`.

    A mention is one noun phrase ("two red circles" is one). It is hallucinated when no object has its colour
    and shape; a mention without a colour ("a circle") only when no object has its shape.
    """
    _check_lengths(captions, objects)
    per_caption = []
    for caption, image_objects in zip(captions, objects, strict=True):
        scene = scene_objects(image_objects)
        mentions = parse_mentions(caption)
        hallucinated = [_mention_name(m) for m in mentions if not _matching(m, scene)]
        per_caption.append(CaptionChair(len(mentions), hallucinated))
    n_mentions = sum(c.n_mentions for c in per_caption)
    n_hallucinated = sum(len(c.hallucinated) for c in per_caption)
    return ChairResult(
        chair_i=n_hallucinated / n_mentions if n_mentions else None,
        chair_s=sum(bool(c.hallucinated) for c in per_caption) / len(per_caption),
        n_mentions=n_mentions,
        n_hallucinated=n_hallucinated,
        per_caption=per_caption,
    )


def attribute_accuracy(
    captions: Sequence[str], objects: Sequence[Sequence[Mapping[str, Any]]], image_size: int
) -> AttributeAccuracy:
    """The share of true colour, shape, count, size, position and relation claims of the captions.

    How each claim of a mention is judged (a mention matches objects of its colour and shape, or of its
    shape alone when it names no colour):
      shape: some object has that shape.
      colour: some object of the mentioned shape has that colour; when no object has that shape, some
        object of any shape has it (so "a blue circle" for a red circle is a wrong colour, and for a blue
        square a wrong shape with a right colour).
      count: exactly that many objects match ("a red circle" claims one; a bare plural claims two).
      size: some matching object has that size.
      position: some matching object's centre lies in that region of the 3x3 grid, or within
        `POSITION_MARGIN` of it (the grammar never names a region for a centre that close to a line).
      relation: "A <left of|right of|above|below> B" is true when matching objects a and b have
        `relation_between(a, b)` equal to it; "from left to right, A, B, C" is one "left of" claim per
        neighbouring pair, judged on the centres' x as the grammar orders them.
    """
    _check_lengths(captions, objects)
    totals = {kind: Tally() for kind in ATTRIBUTE_KINDS}
    per_caption = []
    for caption, image_objects in zip(captions, objects, strict=True):
        tallies = caption_attribute_tallies(caption, scene_objects(image_objects), image_size)
        for kind, tally in tallies.items():
            totals[kind].correct += tally.correct
            totals[kind].total += tally.total
        per_caption.append(tallies)
    return AttributeAccuracy(
        **{kind: totals[kind].accuracy for kind in ATTRIBUTE_KINDS},
        per_kind_counts=totals,
        per_caption=per_caption,
    )


def caption_attribute_tallies(
    caption: str, scene: Sequence[SceneObject], image_size: int
) -> dict[str, Tally]:
    """The claims of one caption about one scene, counted per kind (see `attribute_accuracy`)."""
    tallies = {kind: Tally() for kind in ATTRIBUTE_KINDS}
    for mention in parse_mentions(caption):
        of_shape = [obj for obj in scene if obj.shape == mention.shape]
        matching = _matching(mention, scene)
        tallies["shape"].add(bool(of_shape))
        if mention.colour is not None:
            tallies["colour"].add(any(obj.colour == mention.colour for obj in (of_shape or scene)))
        tallies["count"].add(len(matching) == mention.count)
        if mention.size is not None:
            tallies["size"].add(any(obj.size == mention.size for obj in matching))
        if mention.position is not None:
            tallies["position"].add(
                any(mention.position in regions_near(obj, image_size) for obj in matching)
            )
    for claim in parse_relations(caption):
        tallies["relation"].add(_relation_holds(claim, scene))
    return tallies


@dataclass(frozen=True)
class RelationClaim:
    """ "`subject` is `relation` of `reference`": relation is "left of", "right of", "above" or "below".

    `by_x_order` marks a claim of a "from left to right" list, which the grammar orders by centre x alone.
    """

    subject: Mention
    relation: str
    reference: Mention
    by_x_order: bool = False


def parse_relations(caption: str) -> list[RelationClaim]:
    """The spatial relations a caption states, in order (its mentions come from `parse_mentions`)."""
    tokens = re.findall(r"[a-z]+", caption.lower())
    if tuple(tokens[:4]) == _LEFT_TO_RIGHT:
        mentions = parse_mentions(" ".join(tokens[4:]))
        return [
            RelationClaim(a, "left of", b, by_x_order=True)
            for a, b in zip(mentions, mentions[1:], strict=False)
        ]
    claims = []
    i = 0
    while i < len(tokens):
        found = _relation_at(tokens, i)
        if found is None:
            i += 1
            continue
        relation, length = found
        before = parse_mentions(" ".join(tokens[:i]))
        after = parse_mentions(" ".join(tokens[i + length :]))
        if before and after:
            claims.append(RelationClaim(before[-1], relation, after[0]))
        i += length
    return claims


def regions_near(obj: SceneObject, image_size: int) -> set[str]:
    """The grid regions holding the object's centre, or within `POSITION_MARGIN` of it on each axis."""
    x, y = obj.centre
    rows = _cells_near(y / image_size)
    cols = _cells_near(x / image_size)
    return {POSITIONS[row * 3 + col] for row in rows for col in cols}


def _cells_near(fraction: float) -> set[int]:
    return {min(max(int((fraction + delta) * 3), 0), 2) for delta in (-POSITION_MARGIN, 0.0, POSITION_MARGIN)}


def _relation_at(tokens: list[str], start: int) -> tuple[str, int] | None:
    for phrase, relation in _RELATION_OF_PHRASE:
        if tuple(tokens[start : start + len(phrase)]) == phrase:
            return relation, len(phrase)
    return None


def _relation_holds(claim: RelationClaim, scene: Sequence[SceneObject]) -> bool:
    subjects, references = _matching(claim.subject, scene), _matching(claim.reference, scene)
    for a in subjects:
        for b in references:
            if a is b:
                continue
            # The grammar sorts by centre x, so objects level in x may be listed either way round.
            if claim.by_x_order and a.centre[0] <= b.centre[0]:
                return True
            if not claim.by_x_order and relation_between(a, b) == claim.relation:
                return True
    return False


def _matching(mention: Mention, scene: Sequence[SceneObject]) -> list[SceneObject]:
    return [obj for obj in scene if obj.shape == mention.shape and mention.colour in (None, obj.colour)]


def _mention_name(mention: Mention) -> str:
    return mention.shape if mention.colour is None else f"{mention.colour} {mention.shape}"


def _check_lengths(captions: Sequence[str], objects: Sequence[Sequence[Mapping[str, Any]]]) -> None:
    if not captions:
        raise VlkitError("no captions to judge")
    if len(captions) != len(objects):
        raise VlkitError(f"{len(captions)} captions but objects for {len(objects)} images")
