"""metrics/order.py: statements about time read from captions and judged against a clip's exact events."""

from __future__ import annotations

import numpy as np
import pytest

from vlkit.errors import VlkitError
from vlkit.metrics.order import clip_chair, order_accuracy, order_statements, statement_holds
from vlkit.shapes.clip_grammar import ClipEvent, reverse_events, write_clip_captions
from vlkit.shapes.clip_plan import FrameObject, plan_clip
from vlkit.shapes.clips import ClipTruth, clip_rng


def _clip(events: list[ClipEvent], n_frames: int = 12) -> ClipTruth:
    objects = [[FrameObject(e.colour, e.shape, e.size, (1, 1, 20, 20)) for e in events]] * n_frames
    return ClipTruth(frames=objects, events=events, split="val", frame_order=list(range(n_frames)))


CIRCLE_LEFT = ClipEvent("moves", "red", "circle", "small", frame=1, last_frame=5, direction="left")
STAR_APPEARS = ClipEvent("appears", "green", "star", "large", frame=8, last_frame=8)
SQUARE_TURNS = ClipEvent("changes", "blue", "square", "small", frame=3, last_frame=3, to_colour="pink")


def test_statements_are_read_from_each_wording_of_the_grammar():
    texts = [s.text() for s in order_statements("in this clip a small red circle slides to the left")]
    assert texts == ["red circle moves left"]
    texts = [s.text() for s in order_statements("a blue square appears after the green star")]
    assert texts == [
        "blue square appears",
        "green star appears",
        "(green star appears) before (blue square appears)",
    ]
    texts = [s.text() for s in order_statements("a pink cross turns cyan, then a star vanishes")]
    assert texts == [
        "pink cross changes cyan",
        "star disappears",
        "(pink cross changes cyan) before (star disappears)",
    ]
    texts = [s.text() for s in order_statements("the circle goes up and a red square changes colour to blue")]
    assert texts == ["circle moves up", "red square changes blue"]  # "and" says no order
    assert order_statements("a picture of two red circles") == []


def test_a_caption_of_the_clip_is_true_and_the_reversed_clips_caption_is_false():
    clip = _clip([CIRCLE_LEFT, STAR_APPEARS])
    score = order_accuracy({"c": "a red circle moves to the left, then a green star appears"}, {"c": clip})
    assert (score.accuracy, score.statements, score.true) == (1.0, 3, 3)
    backwards = "a green star disappears, then a red circle moves to the right"  # the reversed clip's caption
    score = order_accuracy({"c": backwards}, {"c": clip})
    assert (score.accuracy, score.statements) == (0.0, 3)
    # The right events in the wrong order: two true statements, one false.
    score = order_accuracy({"c": "a green star appears before the red circle moves left"}, {"c": clip})
    assert score.per_clip[0].true == [True, True, False]
    assert (score.by_kind["order"].total, score.by_kind["order"].correct) == (1, 0)


@pytest.mark.parametrize(
    ("caption", "true"),
    [
        ("a blue square turns pink", [True]),
        ("a blue square turns red", [False]),
        ("a pink square turns blue", [False]),  # the reversed change
        ("a square changes", [True]),  # no colour named: any square that changes
        ("a red circle moves down", [False]),
        ("a green circle moves left", [False]),  # wrong colour
        ("a red circle appears", [False]),  # there from the start
    ],
)
def test_each_event_statement_is_judged_on_kind_subject_and_detail(caption, true):
    clip = _clip([CIRCLE_LEFT, SQUARE_TURNS])
    assert [statement_holds(s, clip.events) for s in order_statements(caption)] == true


def test_generated_captions_are_all_true_of_their_clip_and_all_false_of_it_reversed():
    rng_captions = np.random.default_rng(0)
    true_here = true_reversed = statements = 0
    for index in range(150):
        plan = plan_clip(clip_rng(7, "train", index), 64, 8, 16)
        for caption in write_clip_captions(plan.events, rng_captions, 2):
            verdicts = [statement_holds(s, plan.events) for s in order_statements(caption)]
            statements += len(verdicts)
            true_here += sum(verdicts)
        reversed_events = reverse_events(plan.events, plan.n_frames)
        for caption in write_clip_captions(reversed_events, rng_captions, 2):
            true_reversed += sum(statement_holds(s, plan.events) for s in order_statements(caption))
    assert statements > 300 and true_here == statements and true_reversed == 0


def test_unknown_clips_are_errors_and_chair_counts_objects_of_any_frame():
    clip = _clip([CIRCLE_LEFT, SQUARE_TURNS])
    with pytest.raises(VlkitError, match="clip 'nope' has no ground truth"):
        order_accuracy({"nope": "a red circle moves left"}, {"c": clip})
    with pytest.raises(VlkitError, match="no predictions"):
        order_accuracy({}, {"c": clip})
    clip.frames[-1] = [FrameObject("pink", "square", "small", (30, 30, 50, 50))]  # the square turned pink
    result = clip_chair({"c": "a pink square appears before a blue square and a yellow star"}, {"c": clip})
    assert (result.n_mentions, result.n_hallucinated) == (3, 1)
    assert result.per_caption[0].hallucinated == ["yellow star"]
