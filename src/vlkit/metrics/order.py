"""Order accuracy on the generated clips: the share of a caption's statements about time that are true.

`order_statements` reads a caption's event and order statements ("a red circle moves to the left": one
event; "a blue square appears after the star": two events and one order) with the clips' grammar
(`shapes.clip_grammar.parse_statements`); `order_accuracy` judges each against a clip's exact events. An
event statement is true when the clip has an event of that kind by an object of that shape (and colour,
when named), with the direction or new colour said; an order statement when both events are true and the
first is done before the second starts. A caption of the reversed clip says the opposite events, so it is
false here: a model that averages its frames cannot beat chance on these statements.

`clip_chair` is CHAIR-i / CHAIR-s (`metrics.grounding.chair`) with a clip's objects being every object any
of its frames shows, so a caption may name an object by either of the colours it has.
Pure functions over captions and `ClipTruth`s; reading truth.json is `shapes.clips.load_clip_truth`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from vlkit.errors import VlkitError
from vlkit.metrics.grounding import ChairResult, Tally, chair
from vlkit.shapes.clip_grammar import ClipEvent, Statement, parse_statements
from vlkit.shapes.clips import ClipTruth

STATEMENT_KINDS: tuple[str, ...] = ("moves", "appears", "disappears", "changes", "order")


@dataclass(frozen=True)
class ClipOrder:
    """One clip's caption, its statements (canonical wording) and which of them are true."""

    stem: str
    caption: str
    statements: list[str]
    true: list[bool]


@dataclass
class OrderScore:
    """`accuracy`: true statements / statements over all captions (None when no caption makes one)."""

    accuracy: float | None
    statements: int
    true: int
    by_kind: dict[str, Tally] = field(default_factory=dict)
    per_clip: list[ClipOrder] = field(default_factory=list)

    @property
    def clips_with_statements(self) -> int:
        return sum(bool(clip.statements) for clip in self.per_clip)


def order_statements(caption: str) -> list[Statement]:
    """The event and order statements of a caption, in reading order."""
    return parse_statements(caption)


def statement_holds(statement: Statement, events: Sequence[ClipEvent]) -> bool:
    """Whether the clip whose events are `events` makes `statement` true."""
    if statement.kind == "order":
        assert statement.first is not None and statement.second is not None
        firsts = [e for e in events if _event_matches(statement.first, e)]
        seconds = [e for e in events if _event_matches(statement.second, e)]
        return any(a.last_frame < b.frame for a in firsts for b in seconds if a is not b)
    return any(_event_matches(statement, event) for event in events)


def order_accuracy(predictions: Mapping[str, str], truth: Mapping[str, ClipTruth]) -> OrderScore:
    """Judge each predicted caption (keyed by clip file stem) against its clip's events.

    Every predicted stem must have ground truth (VlkitError naming the first that has none); clips without a
    prediction are not judged.
    """
    if not predictions:
        raise VlkitError("order_accuracy: no predictions to judge")
    by_kind = {kind: Tally() for kind in STATEMENT_KINDS}
    per_clip = []
    for stem, caption in predictions.items():
        if stem not in truth:
            raise VlkitError(f"predictions: clip {stem!r} has no ground truth (not in truth.json)")
        statements = order_statements(caption)
        verdicts = [statement_holds(s, truth[stem].events) for s in statements]
        for statement, verdict in zip(statements, verdicts, strict=True):
            by_kind[statement.kind].add(verdict)
        per_clip.append(
            ClipOrder(stem=stem, caption=caption, statements=[s.text() for s in statements], true=verdicts)
        )
    total = sum(tally.total for tally in by_kind.values())
    correct = sum(tally.correct for tally in by_kind.values())
    return OrderScore(
        accuracy=correct / total if total else None,
        statements=total,
        true=correct,
        by_kind=by_kind,
        per_clip=per_clip,
    )


def clip_objects(clip: ClipTruth) -> list[dict[str, object]]:
    """Every (colour, shape) any frame of the clip shows, as the object dicts `grounding.chair` reads
    (bbox [x, y, w, h] where it is first seen)."""
    seen: dict[tuple[str, str], dict[str, object]] = {}
    for frame in clip.frames:
        for obj in frame:
            x1, y1, x2, y2 = obj.box
            seen.setdefault(
                (obj.colour, obj.shape),
                {
                    "colour": obj.colour,
                    "shape": obj.shape,
                    "size": obj.size,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                },
            )
    return list(seen.values())


def clip_chair(predictions: Mapping[str, str], truth: Mapping[str, ClipTruth]) -> ChairResult:
    """CHAIR-i and CHAIR-s of the predicted captions: a mention is hallucinated when no frame of its clip
    shows an object of its colour and shape."""
    missing = [stem for stem in predictions if stem not in truth]
    if missing:
        raise VlkitError(f"predictions: clip {missing[0]!r} has no ground truth (not in truth.json)")
    stems = list(predictions)
    return chair([predictions[s] for s in stems], [clip_objects(truth[s]) for s in stems])


def _event_matches(statement: Statement, event: ClipEvent) -> bool:
    subject = statement.subject
    assert subject is not None
    if statement.kind != event.kind or subject.shape != event.shape:
        return False
    if subject.colour is not None and subject.colour != event.colour:
        return False
    if statement.kind == "moves" and statement.direction is not None:
        return statement.direction == event.direction
    if statement.kind == "changes" and statement.to_colour is not None:
        return statement.to_colour == event.to_colour
    return True
