"""Questions with exact answers and referring expressions, written from a scene's objects (its scene graph).

ViLBERT's fine-tuning tasks on the shapes world: VQA (the colour of an object, the count of a shape or a
colour, whether a colour x shape exists, whether one object is left of / right of / above / below another)
and referring expressions ("the small blue star": which region is it). Every answer is read off the objects
the image was drawn from, so it is exact, and a question whose truth is close (two centres nearly level) is
not asked. An item that names or involves a held-out colour x shape combination is flagged `heldout`:
`scene_tasks` drops those from a training split and keeps them, flagged, in a validation split, which
reports them apart (the zero-shot split's question: does the model compose what it never saw together?).

Sampling is seeded per image, from (seed, image id) alone, so an image's items do not change when others are
added. Within a type an answer is drawn first, uniformly among those not drawn yet, and then a question with
that answer, so a model cannot score by the answer's prior (an image's two existence questions are one yes
and one no). Pairs of lookalikes ("two red circles") are told apart by where one is relative to the other
("the left circle"), never in a relation question, which that would answer. The templates are plain data
below; a closed grammar needs no NLP library (the captions' `grammar` module is built the same way).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from vlkit.shapes.grammar import COLOURS, PLURALS, SHAPES, SceneObject

QUESTION_TYPES: tuple[str, ...] = ("colour", "count", "exists", "relation")
MAX_COUNT = 3  # a scene holds 1-3 objects
# The fixed answer vocabulary: a VQA head of len(ANSWERS) classes, answer i = ANSWERS[i].
ANSWERS: tuple[str, ...] = ("no", "yes", *(str(n) for n in range(MAX_COUNT + 1)), *COLOURS)
ANSWER_INDEX: dict[str, int] = {answer: i for i, answer in enumerate(ANSWERS)}
# A relation is asked only when the two centres differ by more than this (a fraction of the image side)
# along its axis, and its converse question is answered "no" only as clearly: nothing is left to judgement.
RELATION_MARGIN = 0.1
RELATIONS: dict[str, tuple[str, int, int]] = {  # name -> (phrase, axis 0 x / 1 y, sign: a before b)
    "left of": ("to the left of", 0, -1),
    "right of": ("to the right of", 0, 1),
    "above": ("above", 1, -1),
    "below": ("below", 1, 1),
}
# A pair of otherwise identical objects is told apart by where one is relative to the other.
PAIR_WORDS: dict[tuple[int, int], str] = {(0, -1): "left", (0, 1): "right", (1, -1): "upper", (1, 1): "lower"}
QUESTIONS_PER_TYPE = 2


@dataclass(frozen=True)
class VqaItem:
    """One question about one image, its exact answer (one of `ANSWERS`) and the objects it is about."""

    image_id: int | str
    question: str
    answer: str
    type: str  # one of QUESTION_TYPES
    mentions: tuple[int, ...]  # indices into the image's objects: the ones asked about or counted
    heldout: bool  # names or involves a held-out colour x shape combination


@dataclass(frozen=True)
class ReferringItem:
    """A phrase that picks out exactly one object of its image."""

    image_id: int | str
    text: str
    target: int  # index into the image's objects
    heldout: bool


@dataclass(frozen=True)
class Scene:
    """An image's objects as the generator drew them, and its side in pixels (the world's are square)."""

    image_id: int | str
    objects: tuple[SceneObject, ...]
    image_size: int


@dataclass
class SceneTasks:
    """The VQA and referring items of a set of scenes, image by image in scene order."""

    vqa: list[VqaItem]
    referring: list[ReferringItem]


def scene_rng(seed: int, image_id: int | str) -> np.random.Generator:
    """The generator of one image's items: a function of the seed and the image id only."""
    digest = hashlib.sha256(f"{seed}/{image_id!r}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def scene_tasks(
    scenes: Iterable[Scene],
    seed: int,
    heldout: Collection[tuple[str, str]] = (),
    keep_heldout: bool = True,
    questions_per_type: int = QUESTIONS_PER_TYPE,
) -> SceneTasks:
    """Every scene's VQA items (up to `questions_per_type` of each type) and referring expressions (one per
    object that some phrase picks out alone). `keep_heldout=False` (a training split) drops the items that
    involve a `heldout` (colour, shape) pair; otherwise they stay, flagged."""
    heldout = {tuple(pair) for pair in heldout}
    vqa: list[VqaItem] = []
    referring: list[ReferringItem] = []
    for scene in scenes:
        rng = scene_rng(seed, scene.image_id)
        vqa += [
            item
            for item in vqa_items(scene, rng, heldout, questions_per_type)
            if keep_heldout or not item.heldout
        ]
        referring += [
            item for item in referring_items(scene, rng, heldout) if keep_heldout or not item.heldout
        ]
    return SceneTasks(vqa, referring)


# ------------------------------------------------------------------------------------------ descriptions


def matching(objects: Sequence[SceneObject], shape: str, colour: str | None, size: str | None) -> list[int]:
    """Indices of the objects that fit a description (None: any value)."""
    return [
        i
        for i, o in enumerate(objects)
        if o.shape == shape and colour in (None, o.colour) and size in (None, o.size)
    ]


def unique_descriptions(
    scene: Scene, index: int, with_colour: bool = True, with_pairs: bool = True
) -> list[str]:
    """Noun phrases ("star", "small blue star") that fit object `index` and no other, shortest first;
    `with_colour=False` leaves the colour out (a question that asks for it). When none does and the object
    is one of two lookalikes, clearly apart, `with_pairs` gives the phrase that tells them apart ("left red
    circle")."""
    objects, target = scene.objects, scene.objects[index]
    found, pairs = [], []
    for use_size in (False, True):
        for use_colour in (False, True) if with_colour else (False,):
            colour = target.colour if use_colour else None
            size = target.size if use_size else None
            same = matching(objects, target.shape, colour, size)
            if same == [index]:
                found.append(_phrase(target.shape, colour, size))
            elif len(same) == 2:
                other = objects[same[0] if same[1] == index else same[1]]
                word = _pair_word(target, other, scene.image_size)
                if word is not None:
                    pairs.append(f"{word} {_phrase(target.shape, colour, size)}")
    return found or (pairs[:1] if with_pairs else [])


def _phrase(shape: str, colour: str | None, size: str | None) -> str:
    return " ".join(word for word in (size, colour, shape) if word)


def _pair_word(a: SceneObject, b: SceneObject, image_size: int) -> str | None:
    """Where `a` is relative to its lookalike `b`, along the axis of their larger clear separation."""
    margin = RELATION_MARGIN * image_size
    gaps = [a.centre[axis] - b.centre[axis] for axis in (0, 1)]
    axis = 0 if abs(gaps[0]) >= abs(gaps[1]) else 1
    if abs(gaps[axis]) <= margin:
        return None
    return PAIR_WORDS[(axis, 1 if gaps[axis] > 0 else -1)]


def relation_holds(a: SceneObject, b: SceneObject, relation: str, image_size: int) -> bool | None:
    """Whether `a` is `relation` `b` by their box centres: True or False when the centres differ by more than
    the margin along the relation's axis, None (not asked) when they are that close."""
    _, axis, sign = RELATIONS[relation]
    gap = a.centre[axis] - b.centre[axis]
    if abs(gap) <= RELATION_MARGIN * image_size:
        return None
    return (gap > 0) == (sign > 0)


# ------------------------------------------------------------------------------------------------ VQA


def vqa_items(
    scene: Scene,
    rng: np.random.Generator,
    heldout: Collection[tuple[str, str]] = (),
    questions_per_type: int = QUESTIONS_PER_TYPE,
) -> list[VqaItem]:
    """Up to `questions_per_type` questions of each type about `scene`, each with its exact answer."""
    candidates = {
        "colour": _colour_questions(scene),
        "count": _count_questions(scene),
        "exists": _exists_questions(scene),
        "relation": _relation_questions(scene),
    }
    items = []
    for kind in QUESTION_TYPES:
        for question, answer, mentions, named in _sample(candidates[kind], rng, questions_per_type):
            flagged = _involves(scene, mentions, named, heldout)
            items.append(VqaItem(scene.image_id, question, answer, kind, mentions, flagged))
    return items


Candidate = tuple[str, str, tuple[int, ...], tuple[tuple[str, str], ...]]  # question, answer, mentions, named


def _colour_questions(scene: Scene) -> list[Candidate]:
    out = []
    for i, obj in enumerate(scene.objects):
        phrases = unique_descriptions(scene, i, with_colour=False)
        if phrases:
            out.append((f"what colour is the {phrases[0]}?", obj.colour, (i,), ()))
    return out


def _count_questions(scene: Scene) -> list[Candidate]:
    objects = scene.objects
    present_shapes = sorted({o.shape for o in objects}, key=SHAPES.index)
    present_colours = sorted({o.colour for o in objects}, key=list(COLOURS).index)
    absent_shapes = [s for s in SHAPES if s not in present_shapes]
    absent_colours = [c for c in COLOURS if c not in present_colours]
    out = []
    for shape in present_shapes + absent_shapes[:1]:
        counted = tuple(matching(objects, shape, None, None))
        out.append((f"how many {PLURALS[shape]} are there?", str(len(counted)), counted, ()))
    for colour in present_colours + absent_colours[:1]:
        counted = tuple(i for i, o in enumerate(objects) if o.colour == colour)
        out.append((f"how many {colour} objects are there?", str(len(counted)), counted, ()))
    for colour, shape in sorted({(o.colour, o.shape) for o in objects}):
        counted = tuple(matching(objects, shape, colour, None))
        question = f"how many {colour} {PLURALS[shape]} are there?"
        out.append((question, str(len(counted)), counted, ((colour, shape),)))
    return out


def _exists_questions(scene: Scene) -> list[Candidate]:
    """ "Is there a red star?": yes for each kind present; no for kinds absent that share a colour or a shape
    with one present (the near misses), in a fixed order."""
    present = {(o.colour, o.shape) for o in scene.objects}
    out = []
    for colour, shape in sorted(present):
        found = tuple(matching(scene.objects, shape, colour, None))
        out.append((f"is there {_article(colour)} {colour} {shape}?", "yes", found, ((colour, shape),)))
    near = sorted(
        (colour, shape)
        for colour in COLOURS
        for shape in SHAPES
        if (colour, shape) not in present and any(colour == c or shape == s for c, s in present)
    )
    for colour, shape in near:
        out.append((f"is there {_article(colour)} {colour} {shape}?", "no", (), ((colour, shape),)))
    return out


def _relation_questions(scene: Scene) -> list[Candidate]:
    objects, out = scene.objects, []
    for a in range(len(objects)):
        for b in range(len(objects)):
            # Lookalikes named by where they are would make a question answer itself.
            first = unique_descriptions(scene, a, with_pairs=False)
            second = unique_descriptions(scene, b, with_pairs=False)
            if a == b or not first or not second:
                continue
            for relation, (phrase, _, _) in RELATIONS.items():
                holds = relation_holds(objects[a], objects[b], relation, scene.image_size)
                if holds is None:
                    continue
                question = f"is the {first[-1]} {phrase} the {second[-1]}?"
                out.append((question, "yes" if holds else "no", (a, b), ()))
    return out


def _sample(candidates: list[Candidate], rng: np.random.Generator, n: int) -> list[Candidate]:
    """Up to `n` distinct questions: an answer drawn uniformly among those not yet drawn in this round (a
    round ends when every answer left has been drawn), then a question with that answer."""
    left = list(candidates)
    chosen: list[Candidate] = []
    drawn: set[str] = set()
    while left and len(chosen) < n:
        answers = sorted({answer for _, answer, _, _ in left}, key=ANSWER_INDEX.__getitem__)
        fresh = [answer for answer in answers if answer not in drawn] or answers
        if len(fresh) == len(answers):
            drawn.clear()
        answer = fresh[int(rng.integers(len(fresh)))]
        drawn.add(answer)
        options = [c for c in left if c[1] == answer]
        pick = options[int(rng.integers(len(options)))]
        chosen.append(pick)
        left = [c for c in left if c[0] != pick[0]]
    return chosen


def _involves(
    scene: Scene,
    mentions: Iterable[int],
    named: Iterable[tuple[str, str]],
    heldout: Collection[tuple[str, str]],
) -> bool:
    kinds = {(scene.objects[i].colour, scene.objects[i].shape) for i in mentions} | set(named)
    return any(kind in heldout for kind in kinds)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


# ------------------------------------------------------------------------------------------ referring


def referring_items(
    scene: Scene, rng: np.random.Generator, heldout: Collection[tuple[str, str]] = ()
) -> list[ReferringItem]:
    """One phrase per object that some phrase picks out alone ("the small blue star"), chosen at random
    among its unique descriptions; objects of a pair no description separates get none."""
    items = []
    for i, obj in enumerate(scene.objects):
        phrases = unique_descriptions(scene, i)
        if phrases:
            phrase = phrases[int(rng.integers(len(phrases)))]
            flagged = (obj.colour, obj.shape) in heldout
            items.append(ReferringItem(scene.image_id, f"the {phrase}", i, flagged))
    return items
