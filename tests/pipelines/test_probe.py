from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from tests.models.tiny import save_tiny_clip
from vlkit.models.clip import ClipSpec, load_clip
from vlkit.pipelines.probe import run_probe, summary_row
from vlkit.probe.config import ProbeConfig


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    folder = save_tiny_clip(tmp_path_factory.mktemp("probe") / "clip")
    return ClipSpec(str(folder), device="cpu"), load_clip(ClipSpec(str(folder), device="cpu"))


def _relabelled(source: Path, out: Path, seed: int) -> Path:
    """A copy of a flat classification folder whose images carry shuffled class ids."""
    out.mkdir()
    shutil.copy(source / "id2label.json", out / "id2label.json")
    files = sorted(source.glob("*.png"))
    ids = [int(f.stem.split("_")[0]) for f in files]
    random.Random(seed).shuffle(ids)
    for n, (file, class_id) in enumerate(zip(files, ids, strict=True)):
        shutil.copy(file, out / f"{class_id}_{n}.png")
    return out


def test_the_test_labels_never_reach_the_choice_of_c(tiny_clip, shapes_world, tmp_path):
    spec, clip = tiny_clip
    train, test = shapes_world / "classification" / "train", shapes_world / "classification" / "val"
    runs = [
        run_probe(spec, train, folder, tmp_path / f"{i}.json", clip=clip)
        for i, folder in enumerate([test, _relabelled(test, tmp_path / "relabelled", seed=1)])
    ]
    assert runs[0]["per_class"] != runs[1]["per_class"]  # the test labels did change the test figures
    assert runs[0]["c"] == runs[1]["c"] and runs[0]["c_search"] == runs[1]["c_search"]
    assert runs[0]["c_chosen_by"] == "validation" and len(runs[0]["c_search"]) >= 7


def test_few_shot_encodes_only_the_pool_and_the_summary_row_sets_probe_beside_zeroshot(
    tiny_clip, shapes_world, tmp_path
):
    spec, clip = tiny_clip
    train, test = shapes_world / "classification" / "train", shapes_world / "classification" / "val"
    out = tmp_path / "p.json"
    result = run_probe(spec, train, test, out, ProbeConfig(few_shot=1, seed=3), clip=clip)
    assert json.loads(out.read_text()) == result
    assert (result["n_train"], result["n_val"], result["c_chosen_by"]) == (40, 0, "default")
    row = summary_row(result)
    assert row["probe_top1"] == result["top1"] and row["zeroshot_top1"] == result["zeroshot"]["top1"]
    assert set(row) == {"model", "test", "few_shot", "probe_top1", "probe_top5", "zeroshot_top1",
                        "zeroshot_top5", "c", "n_train", "n_test"}  # fmt: skip
