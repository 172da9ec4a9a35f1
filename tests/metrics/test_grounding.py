"""CHAIR and attribute accuracy on hand-made scenes, and on the shapes world's own captions."""

from __future__ import annotations

import json

import pytest

from vlkit.errors import VlkitError
from vlkit.metrics.grounding import (
    ATTRIBUTE_KINDS,
    attribute_accuracy,
    chair,
    parse_relations,
    regions_near,
    scene_objects,
)

SIZE = 90  # grid cells of 30 pixels


def _object(colour: str, shape: str, centre: tuple[int, int], size: str = "small", side: int = 20) -> dict:
    x, y = centre
    return {
        "colour": colour,
        "shape": shape,
        "size": size,
        "bbox": [x - side // 2, y - side // 2, side, side],
    }


RED_CIRCLE = _object("red", "circle", (15, 15))  # top left
BLUE_SQUARE = _object("blue", "square", (75, 75), size="large", side=24)  # bottom right
GREEN_STAR = _object("green", "star", (15, 75))  # bottom left, straight below the circle
SCENE = [RED_CIRCLE, BLUE_SQUARE]


def _counts(result) -> dict[str, tuple[int, int]]:
    return {kind: (tally.correct, tally.total) for kind, tally in result.per_kind_counts.items()}


def test_a_correct_caption_has_no_hallucination_and_every_claim_true():
    caption = "a small red circle in the top left to the left of a big blue square in the bottom right"
    result = chair([caption], [SCENE])
    assert (result.chair_i, result.chair_s, result.n_mentions, result.n_hallucinated) == (0.0, 0.0, 2, 0)
    accuracy = attribute_accuracy([caption], [SCENE], SIZE)
    assert _counts(accuracy) == {
        "colour": (2, 2),
        "shape": (2, 2),
        "count": (2, 2),
        "size": (2, 2),
        "position": (2, 2),
        "relation": (1, 1),
    }
    assert [getattr(accuracy, kind) for kind in ATTRIBUTE_KINDS] == [1.0] * 6


def test_one_wrong_object_gives_the_exact_fractions():
    captions = ["a red circle and a green triangle", "a blue square"]
    result = chair(captions, [SCENE, SCENE])
    assert result.n_mentions == 3 and result.n_hallucinated == 1
    assert result.chair_i == pytest.approx(1 / 3)
    assert result.chair_s == pytest.approx(1 / 2)
    assert [c.hallucinated for c in result.per_caption] == [["green triangle"], []]
    accuracy = attribute_accuracy(captions, [SCENE, SCENE], SIZE)
    # The triangle: no such shape, no green object, and 0 objects where one is claimed.
    assert (accuracy.shape, accuracy.colour, accuracy.count) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert accuracy.size is None and accuracy.position is None and accuracy.relation is None


def test_colour_is_judged_on_the_named_shape_and_shape_on_its_own():
    captions = ["a blue circle", "a red square", "a blue triangle"]
    result = chair(captions, [SCENE] * 3)
    assert result.chair_i == 1.0 and result.chair_s == 1.0  # none of the three objects exists
    per_caption = attribute_accuracy(captions, [SCENE] * 3, SIZE).per_caption
    judged = [(tallies["shape"].correct, tallies["colour"].correct) for tallies in per_caption]
    # blue circle: the circle is red; red square: the square is blue; blue triangle: no triangle, blue exists.
    assert judged == [(1, 0), (1, 0), (0, 1)]


def test_a_bare_shape_is_hallucinated_only_when_no_object_has_that_shape():
    result = chair(["a circle", "a star", "we can see two squares"], [SCENE] * 3)
    assert [c.hallucinated for c in result.per_caption] == [[], ["star"], []]
    accuracy = attribute_accuracy(["a circle", "we can see two squares"], [SCENE] * 2, SIZE)
    assert _counts(accuracy)["colour"] == (0, 0)
    assert _counts(accuracy)["count"] == (1, 2)  # one circle is right; there is one square, not two


def test_counts_compare_with_the_number_of_matching_objects():
    two_circles = [RED_CIRCLE, _object("red", "circle", (75, 15))]
    captions = ["two red circles", "red circles", "a red circle", "three red circles"]
    per_caption = attribute_accuracy(captions, [two_circles] * 4, SIZE).per_caption
    assert [tallies["count"].correct for tallies in per_caption] == [1, 1, 0, 0]


def test_relations_follow_the_grammar_relation_between():
    scene = [RED_CIRCLE, GREEN_STAR, BLUE_SQUARE]
    true_captions = [
        "a red circle above a green star",
        "a green star under a red circle",
        "a green star to the left of a blue square and a red circle",
        "a photo of a blue square and a red circle over a green star",
    ]
    false_captions = ["a red circle below a green star", "a blue square left of a green star"]
    for captions, expected in ((true_captions, 1.0), (false_captions, 0.0)):
        accuracy = attribute_accuracy(captions, [scene] * len(captions), SIZE)
        assert _counts(accuracy)["relation"] == (int(expected) * len(captions), len(captions))
    claims = parse_relations("a green star to the left of a blue square and a red circle")
    assert [(c.subject.shape, c.relation, c.reference.shape) for c in claims] == [
        ("star", "left of", "square")
    ]
    # A relation with a missing object is false, not skipped.
    assert attribute_accuracy(["a red circle above a yellow star"], [scene], SIZE).relation == 0.0


def test_left_to_right_lists_are_one_claim_per_neighbouring_pair():
    scene = [RED_CIRCLE, _object("green", "star", (45, 45)), BLUE_SQUARE]
    right = "from left to right, a red circle, a green star and a blue square"
    wrong = "from left to right, a green star, a red circle and a blue square"
    accuracy = attribute_accuracy([right, wrong], [scene, scene], SIZE)
    assert [(t["relation"].correct, t["relation"].total) for t in accuracy.per_caption] == [(2, 2), (1, 2)]


def test_positions_accept_either_cell_next_to_a_grid_line():
    [clear] = scene_objects([RED_CIRCLE])
    assert regions_near(clear, SIZE) == {"top left"}
    [near_line] = scene_objects([_object("red", "circle", (31, 15))])  # 31/90 is 0.011 past the line at 1/3
    assert regions_near(near_line, SIZE) == {"top left", "top"}
    wrong = attribute_accuracy(["a red circle in the bottom right"], [SCENE], SIZE)
    assert _counts(wrong)["position"] == (0, 1)


def test_no_mentions_leave_chair_i_undefined_not_zero():
    result = chair(["a picture of something"], [SCENE])
    assert result.chair_i is None and result.chair_s == 0.0 and result.n_mentions == 0


def test_bad_inputs_are_errors():
    with pytest.raises(VlkitError, match="2 captions but objects for 1 images"):
        chair(["a", "b"], [SCENE])
    with pytest.raises(VlkitError, match=r"objects\[0\]: expected shape, colour, size and bbox"):
        attribute_accuracy(["a red circle"], [[{"colour": "red", "shape": "circle"}]], SIZE)
    with pytest.raises(VlkitError, match="no captions"):
        chair([], [])


@pytest.mark.parametrize("split", ["train.json", "val.json"])
def test_the_worlds_own_captions_are_all_grounded(shapes_world, split):
    data = json.loads((shapes_world / split).read_text())
    objects_of = {image["id"]: image["objects"] for image in data["images"]}
    size = data["images"][0]["width"]
    captions = [a["caption"] for a in data["annotations"]]
    objects = [objects_of[a["image_id"]] for a in data["annotations"]]
    result = chair(captions, objects)
    assert result.chair_i == 0.0 and result.chair_s == 0.0 and result.n_mentions >= len(captions)
    accuracy = attribute_accuracy(captions, objects, size)
    counts = _counts(accuracy)
    assert all(correct == total for correct, total in counts.values()), counts
    # The world's captions make every kind of claim, so each of them was really checked.
    assert all(total > 0 for _, total in counts.values()), counts
