"""The VQA and referring items of the shapes world: every answer checked against an independent reading of
the scene's objects (a small parser of the question forms written here, not the generator's code), held-out
combinations never in a training split and flagged exactly where they occur, seeded per image."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from vlkit.data.scene_tasks import load_world_split
from vlkit.shapes.grammar import COLOURS, PLURALS, SHAPES, SceneObject
from vlkit.shapes.questions import (
    ANSWERS,
    QUESTION_TYPES,
    RELATION_MARGIN,
    Scene,
    scene_tasks,
)

SHAPE_OF_PLURAL = {plural: shape for shape, plural in PLURALS.items()}
RELATION_WORDS = {"to the left of": (0, -1), "to the right of": (0, 1), "above": (1, -1), "below": (1, 1)}


def resolve(phrase: str, objects: tuple[SceneObject, ...]) -> list[int]:
    """The objects a noun phrase ("left small red circle") fits, read from the words alone."""
    words = phrase.split()
    shape = words[-1]
    assert shape in SHAPES, phrase
    where = words[0] if words[0] in ("left", "right", "upper", "lower") else None
    colour = next((w for w in words if w in COLOURS), None)
    size = next((w for w in words if w in ("small", "large")), None)
    fits = [
        i
        for i, o in enumerate(objects)
        if o.shape == shape and colour in (None, o.colour) and size in (None, o.size)
    ]
    if where is None:
        return fits
    assert len(fits) == 2, phrase
    axis = 0 if where in ("left", "right") else 1
    first = 0 if where in ("left", "upper") else 1
    ordered = sorted(fits, key=lambda i: objects[i].centre[axis])
    return [ordered[first]]


def read_answer(question: str, scene: Scene) -> tuple[str, set[int], set[tuple[str, str]]]:
    """(answer, objects involved, colour x shape pairs named) of a question, computed from the objects."""
    objects = scene.objects
    if m := re.fullmatch(r"what colour is the (.+)\?", question):
        (i,) = resolve(m[1], objects)
        return objects[i].colour, {i}, set()
    if m := re.fullmatch(r"how many (\w+) objects are there\?", question):
        found = {i for i, o in enumerate(objects) if o.colour == m[1]}
        return str(len(found)), found, set()
    if m := re.fullmatch(r"how many (\w+) are there\?", question):
        found = {i for i, o in enumerate(objects) if o.shape == SHAPE_OF_PLURAL[m[1]]}
        return str(len(found)), found, set()
    if m := re.fullmatch(r"how many (\w+) (\w+) are there\?", question):
        shape = SHAPE_OF_PLURAL[m[2]]
        found = {i for i, o in enumerate(objects) if (o.colour, o.shape) == (m[1], shape)}
        return str(len(found)), found, {(m[1], shape)}
    if m := re.fullmatch(r"is there an? (\w+) (\w+)\?", question):
        found = {i for i, o in enumerate(objects) if (o.colour, o.shape) == (m[1], m[2])}
        return ("yes" if found else "no"), found, {(m[1], m[2])}
    relations = "|".join(RELATION_WORDS)
    if m := re.fullmatch(rf"is the (.+) ({relations}) the (.+)\?", question):
        (a,) = resolve(m[1], objects)
        (b,) = resolve(m[3], objects)
        axis, sign = RELATION_WORDS[m[2]]
        gap = objects[a].centre[axis] - objects[b].centre[axis]
        assert abs(gap) > RELATION_MARGIN * scene.image_size, question  # never a close call
        return ("yes" if (gap > 0) == (sign > 0) else "no"), {a, b}, set()
    raise AssertionError(f"a question of no known form: {question!r}")


def involves_heldout(scene: Scene, involved: set[int], named: set, heldout: set) -> bool:
    kinds = {(scene.objects[i].colour, scene.objects[i].shape) for i in involved} | named
    return bool(kinds & heldout)


@pytest.fixture(scope="module")
def val(shapes_world):
    return load_world_split(shapes_world, "val")


def test_every_answer_is_what_the_objects_say(val):
    tasks = scene_tasks(val.scenes, seed=0, heldout=val.heldout, questions_per_type=4)
    scenes = {scene.image_id: scene for scene in val.scenes}
    assert {item.type for item in tasks.vqa} == set(QUESTION_TYPES)
    for item in tasks.vqa:
        answer, involved, named = read_answer(item.question, scenes[item.image_id])
        assert item.answer == answer and item.answer in ANSWERS, item
        assert set(item.mentions) == involved, item
        assert item.heldout == involves_heldout(scenes[item.image_id], involved, named, set(val.heldout))
    for item in tasks.referring:
        scene = scenes[item.image_id]
        assert item.text.startswith("the ")
        assert resolve(item.text[4:], scene.objects) == [item.target], item  # unique in its scene
        target = scene.objects[item.target]
        assert item.heldout == ((target.colour, target.shape) in val.heldout)


def test_heldout_combinations_stay_out_of_the_training_split(shapes_world, val):
    train = load_world_split(shapes_world, "train")
    heldout = set(train.heldout)
    # Train images hold no held-out object, but questions can still name one ("is there a red circle?").
    kept = scene_tasks(train.scenes, seed=0, heldout=heldout, keep_heldout=True, questions_per_type=6)
    assert any(item.heldout for item in kept.vqa), "the tiny world names no held-out pair: test is vacuous"
    dropped = scene_tasks(train.scenes, seed=0, heldout=heldout, keep_heldout=False, questions_per_type=6)
    scenes = {scene.image_id: scene for scene in train.scenes}
    for item in dropped.vqa:
        _, involved, named = read_answer(item.question, scenes[item.image_id])
        assert not involves_heldout(scenes[item.image_id], involved, named, heldout), item
    assert not any(item.heldout for item in dropped.referring)
    # val keeps them, flagged, so they are reported apart
    flagged = scene_tasks(val.scenes, seed=0, heldout=heldout, keep_heldout=True)
    assert any(item.heldout for item in flagged.referring) and any(item.heldout for item in flagged.vqa)


def test_items_are_seeded_per_image_and_balanced_between_yes_and_no(val):
    first = scene_tasks(val.scenes, seed=3, heldout=val.heldout)
    assert first == scene_tasks(val.scenes, seed=3, heldout=val.heldout)
    assert first != scene_tasks(val.scenes, seed=4, heldout=val.heldout)
    alone = scene_tasks(val.scenes[5:6], seed=3, heldout=val.heldout)  # the others do not move it
    assert alone.vqa == [item for item in first.vqa if item.image_id == val.scenes[5].image_id]
    exists = Counter(item.answer for item in first.vqa if item.type == "exists")
    assert exists["yes"] == exists["no"] == len(val.scenes)  # one of each per image: both always occur


def test_lookalikes_are_told_apart_by_where_they_are_and_never_by_a_question_that_answers_itself():
    twins = (
        SceneObject("red", "circle", "small", (4, 4, 20, 20)),
        SceneObject("red", "circle", "small", (40, 10, 20, 20)),
    )
    tasks = scene_tasks([Scene(7, twins, 64)], seed=0, questions_per_type=10)
    assert sorted(item.text for item in tasks.referring) == ["the left circle", "the right circle"]
    assert not [item for item in tasks.vqa if item.type == "relation"]  # "is the left circle left of ..."
    close = (twins[0], SceneObject("red", "circle", "small", (28, 40, 20, 20)))  # 24 px right, 36 px down
    text = {i.target: i.text for i in scene_tasks([Scene(8, close, 64)], seed=0).referring}
    assert text == {0: "the upper circle", 1: "the lower circle"}
