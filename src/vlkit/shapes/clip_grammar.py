"""The generated clips' events, the grammar that writes their captions, and the grammar's inverse.

A clip's captions say what happens and in which order ("a red circle moves to the left", "a blue square
appears after the green star", "a pink cross turns cyan, then a red star disappears"), written from the
clip's exact events (`ClipEvent`). Every statement is about time: played backwards, a clip has the opposite
events in the opposite order (`reverse_events`), so its captions are false of the reversed clip, whose
frames are the same set, and a mean over frames cannot tell the two apart.

`parse_statements` reads the statements back out of any caption in this vocabulary (ours or a model's): one
per event clause and one per order between two clauses ("then", "before", "after"), which is what
`vlkit.metrics.order` judges. As for the image captions (`grammar.parse_mentions`), the grammar is small and
closed, so a hand-written scanner is exact where a general parser would be a heavy dependency that still
needs these word lists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vlkit.shapes.grammar import COLOURS, SHAPES, SIZE_WORDS

EVENT_KINDS: tuple[str, ...] = ("moves", "appears", "disappears", "changes")
DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")
OPPOSITE: dict[str, str] = {"left": "right", "right": "left", "up": "down", "down": "up"}
# What an event is when the clip is played backwards.
REVERSED_KIND: dict[str, str] = {
    "moves": "moves",
    "appears": "disappears",
    "disappears": "appears",
    "changes": "changes",
}
MOVE_VERBS: tuple[str, ...] = ("moves", "slides", "goes")
DIRECTION_PHRASES: dict[str, tuple[str, ...]] = {
    "left": ("to the left", "left"),
    "right": ("to the right", "right"),
    "up": ("up", "upwards"),
    "down": ("down", "downwards"),
}
APPEAR_VERBS: tuple[str, ...] = ("appears", "shows up")
DISAPPEAR_VERBS: tuple[str, ...] = ("disappears", "vanishes")
CHANGE_VERBS: tuple[str, ...] = ("turns", "becomes", "changes to")
FRAMINGS: tuple[str, ...] = ("", "", "in this clip ", "in the video ")
# How two events in order are said: "E1, then E2", "E1 before E2", "E2 after E1", and for two appearances
# (or disappearances) the verb said once: "X appears after Y".
ORDER_FORMS: dict[str, float] = {"then": 0.3, "before": 0.2, "after": 0.2, "elided": 0.3}


@dataclass(frozen=True)
class ClipEvent:
    """One thing that happens in a clip. `colour` is the object's colour when the event starts; `frame` is
    the first frame that shows it happening and `last_frame` the first that shows it done (the same frame
    for an appearance, a disappearance or a change of colour)."""

    kind: str
    colour: str
    shape: str
    size: str
    frame: int
    last_frame: int
    direction: str | None = None  # moves
    to_colour: str | None = None  # changes

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "kind": self.kind,
            "object": {"colour": self.colour, "shape": self.shape, "size": self.size},
            "frame": self.frame,
            "last_frame": self.last_frame,
        }
        if self.direction is not None:
            record["direction"] = self.direction
        if self.to_colour is not None:
            record["to_colour"] = self.to_colour
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> ClipEvent:
        obj = record["object"]
        return cls(
            kind=record["kind"],
            colour=obj["colour"],
            shape=obj["shape"],
            size=obj["size"],
            frame=int(record["frame"]),
            last_frame=int(record["last_frame"]),
            direction=record.get("direction"),
            to_colour=record.get("to_colour"),
        )


def reverse_events(events: Sequence[ClipEvent], n_frames: int) -> list[ClipEvent]:
    """The events of the clip played backwards: the opposite of each, in the opposite order."""
    reversed_events = []
    for event in reversed(events):
        frame, last_frame = n_frames - event.last_frame, n_frames - event.frame
        if event.kind == "changes":
            assert event.to_colour is not None
            reversed_events.append(
                replace(
                    event, colour=event.to_colour, to_colour=event.colour, frame=frame, last_frame=last_frame
                )
            )
            continue
        direction = OPPOSITE[event.direction] if event.direction else None
        reversed_events.append(
            replace(
                event, kind=REVERSED_KIND[event.kind], direction=direction, frame=frame, last_frame=last_frame
            )
        )
    return reversed_events


# ----------------------------------------------------------------------------------------------- writing


def write_clip_captions(events: Sequence[ClipEvent], rng: np.random.Generator, n: int) -> list[str]:
    """`n` captions of a clip's one or two events (in the order they happen), distinct where possible."""
    if len(events) not in (1, 2):
        raise ValueError(f"a clip caption tells one or two events, got {len(events)}")
    write: Callable[[], str] = (
        (lambda: _clause(events[0], rng))
        if len(events) == 1
        else (lambda: _order_caption(events[0], events[1], rng))
    )
    captions: list[str] = []
    for _ in range(20 * n):
        caption = _pick(FRAMINGS, rng) + write()
        if caption not in captions:
            captions.append(caption)
        if len(captions) == n:
            break
    while len(captions) < n:
        captions.append(captions[len(captions) % max(1, len(captions))])
    return captions


def _order_caption(first: ClipEvent, second: ClipEvent, rng: np.random.Generator) -> str:
    forms = [
        form
        for form in ORDER_FORMS
        if form != "elided" or (first.kind == second.kind and first.kind in ("appears", "disappears"))
    ]
    weights = np.array([ORDER_FORMS[form] for form in forms])
    form = forms[int(rng.choice(len(forms), p=weights / weights.sum()))]
    if form == "then":
        return f"{_clause(first, rng)}{_pick((', then ', ' and then ', ' then '), rng)}{_clause(second, rng)}"
    if form == "before":
        return f"{_clause(first, rng)} before {_clause(second, rng, 'the')}"
    if form == "after":
        return f"{_clause(second, rng)} after {_clause(first, rng, 'the')}"
    verb = _verb_phrase(second, rng)
    if rng.random() < 0.5:
        return f"{_noun_phrase(second, rng)} {verb} after {_noun_phrase(first, rng, 'the')}"
    return f"{_noun_phrase(first, rng)} {verb} before {_noun_phrase(second, rng, 'the')}"


def _clause(event: ClipEvent, rng: np.random.Generator, article: str | None = None) -> str:
    return f"{_noun_phrase(event, rng, article)} {_verb_phrase(event, rng)}"


def _noun_phrase(event: ClipEvent, rng: np.random.Generator, article: str | None = None) -> str:
    size_word = _pick(SIZE_WORDS[event.size], rng) + " " if rng.random() < 0.2 else ""
    body = f"{size_word}{event.colour} {event.shape}"
    if article is None:
        article = "an" if body[0] in "aeiou" else "a"
    return f"{article} {body}"


def _verb_phrase(event: ClipEvent, rng: np.random.Generator) -> str:
    if event.kind == "moves":
        assert event.direction is not None
        return f"{_pick(MOVE_VERBS, rng)} {_pick(DIRECTION_PHRASES[event.direction], rng)}"
    if event.kind == "appears":
        return _pick(APPEAR_VERBS, rng)
    if event.kind == "disappears":
        return _pick(DISAPPEAR_VERBS, rng)
    return f"{_pick(CHANGE_VERBS, rng)} {event.to_colour}"


def _pick(options: Sequence[str], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


# ----------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Subject:
    """What a clause is about: a shape, with its colour when the caption names one."""

    colour: str | None
    shape: str

    def text(self) -> str:
        return self.shape if self.colour is None else f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Statement:
    """One claim of a caption about time: an event (kind in EVENT_KINDS, with its subject, and the direction
    or the new colour when said) or an order ("order": `first` happens before `second`)."""

    kind: str
    subject: Subject | None = None
    direction: str | None = None
    to_colour: str | None = None
    first: Statement | None = None
    second: Statement | None = None

    def text(self) -> str:
        """A canonical wording, for reports: "red circle moves left", "(star appears) before (...)"."""
        if self.kind == "order":
            assert self.first is not None and self.second is not None
            return f"({self.first.text()}) before ({self.second.text()})"
        assert self.subject is not None
        detail = (
            self.direction if self.kind == "moves" else self.to_colour if self.kind == "changes" else None
        )
        return " ".join(part for part in (self.subject.text(), self.kind, detail) if part)


_ARTICLES = {"a", "an", "the", "one"}
_SIZE_OF_WORD = {word for words in SIZE_WORDS.values() for word in words}
_DIRECTION_OF_WORD = {
    "left": "left",
    "right": "right",
    "up": "up",
    "upwards": "up",
    "upward": "up",
    "down": "down",
    "downwards": "down",
    "downward": "down",
    "top": "up",
    "bottom": "down",
}
_MOVE_WORDS = {"moves", "slides", "goes", "travels", "moving", "move"}
_APPEAR_PHRASES = (("shows", "up"), ("comes", "into", "view"), ("appears",), ("appear",))
_DISAPPEAR_PHRASES = (("disappears",), ("vanishes",), ("disappear",), ("leaves",))
_CHANGE_PHRASES = (
    ("changes", "colour", "to"),
    ("changes", "color", "to"),
    ("changes", "to"),
    ("changes", "into"),
    ("turns", "into"),
    ("turns",),
    ("becomes",),
    ("changes",),
)
_LINKS = {"then": "then", "before": "before", "after": "after"}


def parse_statements(caption: str) -> list[Statement]:
    """The event and order statements of a caption, in reading order (an order after the two it links).

    A clause is a noun phrase ([a|an|the|one] [size] [colour] shape) and a verb phrase (moves/slides/goes
    [to the] left|right|up|down, appears, disappears/vanishes, turns/becomes/changes to COLOUR). "then",
    "before" or "after" between two clauses is an order statement; a noun phrase with no verb right after
    "before"/"after" borrows the previous clause's verb ("a blue square appears after the star").
    """
    tokens = re.findall(r"[a-z]+", caption.lower())
    statements: list[Statement] = []
    previous: Statement | None = None
    link: str | None = None
    i = 0
    while i < len(tokens):
        subject, after_subject = _read_subject(tokens, i)
        if subject is None:
            if previous is not None and tokens[i] in _LINKS:
                link = _LINKS[tokens[i]]
            i += 1
            continue
        event, i = _read_verb_phrase(tokens, after_subject, subject)
        if event is None and link in ("before", "after") and previous is not None:
            event = replace(previous, subject=subject)  # the verb said once, for both
        if event is None:
            continue
        statements.append(event)
        if previous is not None and link is not None:
            first, second = (event, previous) if link == "after" else (previous, event)
            statements.append(Statement(kind="order", first=first, second=second))
        previous, link = event, None
    return statements


def _read_subject(tokens: list[str], start: int) -> tuple[Subject | None, int]:
    i = start
    if i < len(tokens) and tokens[i] in _ARTICLES:
        i += 1
    while i < len(tokens) and tokens[i] in _SIZE_OF_WORD:
        i += 1
    colour = None
    if i < len(tokens) and tokens[i] in COLOURS:
        colour, i = tokens[i], i + 1
    if i < len(tokens) and tokens[i] in SHAPES:
        return Subject(colour=colour, shape=tokens[i]), i + 1
    return None, start


def _read_verb_phrase(tokens: list[str], start: int, subject: Subject) -> tuple[Statement | None, int]:
    """The event the words at `start` say of `subject`, and where its words end."""
    if start < len(tokens) and tokens[start] in _MOVE_WORDS:
        i = start + 1
        for filler in ("to", "the"):
            if i < len(tokens) and tokens[i] == filler:
                i += 1
        direction = _DIRECTION_OF_WORD.get(tokens[i]) if i < len(tokens) else None
        return Statement("moves", subject, direction=direction), i + (direction is not None)
    for kind, phrases in (("appears", _APPEAR_PHRASES), ("disappears", _DISAPPEAR_PHRASES)):
        for phrase in phrases:
            if tuple(tokens[start : start + len(phrase)]) == phrase:
                return Statement(kind, subject), start + len(phrase)
    for phrase in _CHANGE_PHRASES:
        if tuple(tokens[start : start + len(phrase)]) == phrase:
            i = start + len(phrase)
            colour = tokens[i] if i < len(tokens) and tokens[i] in COLOURS else None
            return Statement("changes", subject, to_colour=colour), i + (colour is not None)
    return None, start
