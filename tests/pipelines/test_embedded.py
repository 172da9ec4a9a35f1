"""The embedded default's stages: the CLIP learns from the alt-text corpus, models are reused only when made
from the same world, and a new world never resumes or reuses a model of the old one."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from vlkit.pipelines import embedded
from vlkit.pipelines.embedded import (
    WORLD_STAMP,
    embedded_plan,
    ensure_clip,
    is_made_from,
    start_from,
    world_is_current,
)
from vlkit.shapes.world import ALT_TEXT_DIR, ShapesConfig, generate_world

WORLD = ShapesConfig(
    n_train=8, n_val=4, per_class_train=1, per_class_val=1, n_alt_text=12, n_alt_text_val=4, workers=1
)


@pytest.fixture
def world(tmp_path: Path) -> Path:
    generate_world(WORLD, tmp_path / "world")
    return tmp_path / "world"


@pytest.fixture
def trainings(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Replaces train_clip by a recorder that writes the weights file a finished run leaves."""
    calls: list[dict] = []

    def fake_train_clip(config, train, val, out_dir, resume=False):
        calls.append({"train": train, "val": val, "resume": resume})
        (out_dir / "model.safetensors").write_bytes(b"weights of run %d" % len(calls))

    monkeypatch.setattr(embedded, "train_clip", fake_train_clip)
    return calls


def test_the_clip_trains_on_the_alt_text_corpus(world: Path, tmp_path: Path, trainings: list[dict]) -> None:
    assert ensure_clip(embedded_plan(0, quick=True).clip, world, tmp_path / "clip") is False
    (call,) = trainings
    corpus = world / ALT_TEXT_DIR
    assert len(call["train"]) == WORLD.n_alt_text and len(call["val"]) == WORLD.n_alt_text_val
    assert {path.parent for path in call["train"].image_paths()} == {corpus / "images"}
    assert call["resume"] is False


def test_a_model_is_reused_only_for_the_world_it_was_made_from(
    world: Path, tmp_path: Path, trainings: list[dict]
) -> None:
    config, clip = embedded_plan(0, quick=True).clip, tmp_path / "clip"
    ensure_clip(config, world, clip)
    assert ensure_clip(config, world, clip) is True and len(trainings) == 1
    generate_world(dataclasses.replace(WORLD, seed=1), world)  # another world
    assert not is_made_from(clip, world)
    assert ensure_clip(config, world, clip) is False and len(trainings) == 2
    assert trainings[1]["resume"] is False
    assert (clip / "model.safetensors").read_bytes() == b"weights of run 2"


def test_a_new_world_deletes_the_old_worlds_checkpoints_and_weights(world: Path, tmp_path: Path) -> None:
    folder = tmp_path / "clip"
    (folder / "checkpoints" / "step-00000010").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"old")
    (folder / WORLD_STAMP).write_text(json.dumps({"meta_sha256": "another world"}))
    assert start_from(folder, world) is False
    assert not (folder / "checkpoints").exists() and not (folder / "model.safetensors").exists()
    (folder / "checkpoints").mkdir()  # a run of this world, stopped half way
    assert start_from(folder, world) is True and (folder / "checkpoints").is_dir()


def test_an_older_generators_world_is_made_again(world: Path) -> None:
    assert world_is_current(world, WORLD)
    meta = json.loads((world / "meta.json").read_text())
    (world / "meta.json").write_text(json.dumps({**meta, "generator_version": meta["generator_version"] - 1}))
    assert not world_is_current(world, WORLD)
