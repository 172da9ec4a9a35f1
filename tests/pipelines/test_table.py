"""Several models on several datasets in one call: one table, each model's text side encoded once, each
pair's figures those of a single run, and nothing lost when a later pair fails."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from tests.models.tiny import save_tiny_clip
from vlkit.cli.main import main
from vlkit.models.clip import Clip
from vlkit.pipelines.table import ResultTable, TableRow, slug, to_markdown


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    return [str(save_tiny_clip(root / "clip-a", seed=0)), str(save_tiny_clip(root / "clip-b", seed=1))]


def _run(*args: str) -> None:
    try:
        main(["-q", *args])
    except SystemExit as exc:
        if exc.code:
            raise


def test_models_by_datasets_table_equals_single_runs(two_clips, shapes_world, tmp_path, monkeypatch):
    val, train = shapes_world / "classification" / "val", shapes_world / "classification" / "train"
    prompts = []
    encode = Clip.encode_texts
    monkeypatch.setattr(
        Clip,
        "encode_texts",
        lambda self, texts, *a, **k: prompts.append(self.name) or encode(self, texts, *a, **k),
    )
    out = tmp_path / "zs.json"
    _run("zeroshot", "--model", two_clips[0], "--model", two_clips[1], "--data", str(val),
         "--data", str(train), "--out", str(out))  # fmt: skip
    # Both folders have the world's classes: each model encodes its prompts once, not once per dataset.
    assert sorted(prompts) == sorted(two_clips)
    table = json.loads(out.read_text())
    assert table["task"] == "zeroshot" and table["headline"] == "top1"
    assert [(r["model"], r["data"]) for r in table["rows"]] == [
        (m, str(d)) for m in two_clips for d in (val, train)
    ]
    single = tmp_path / "single.json"
    _run("zeroshot", "--model", two_clips[1], "--data", str(train), "--out", str(single))
    alone = json.loads(single.read_text())
    row = table["rows"][3]
    assert row["metrics"]["top1"] == alone["ensemble"]["top1"]
    assert row["metrics"]["top5"] == alone["ensemble"]["top5"]
    assert row["metrics"]["n_images"] == alone["n_images"]
    pair = json.loads(open(row["results"]).read())
    assert pair["templates"] == alone["templates"] and pair["model"] == two_clips[1]
    lines = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert len(lines) == 4 and float(lines[3]["top1"]) == pytest.approx(alone["ensemble"]["top1"])
    markdown = out.with_suffix(".md").read_text()
    assert f"| {two_clips[1]} |" in markdown and str(train) in markdown


def test_a_failing_pair_keeps_the_finished_ones(two_clips, shapes_world, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(shapes_world / "classification" / "val", broken)
    damaged = sorted(broken.glob("*.png"))[3]
    damaged.write_bytes(b"not a png")  # found only when its pixels are read, during the second pair
    out, val = tmp_path / "zs.json", shapes_world / "classification" / "val"
    with pytest.raises(SystemExit) as exc:
        main(["-q", "zeroshot", "--model", two_clips[0], "--data", str(val), "--data", str(broken),
              "--out", str(out)])  # fmt: skip
    assert exc.value.code == 2
    assert damaged.name in capsys.readouterr().err
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 1 and rows[0]["data"].endswith("val")


def test_a_missing_dataset_is_named_before_any_pair_runs(two_clips, shapes_world, tmp_path, capsys):
    out, val = tmp_path / "zs.json", shapes_world / "classification" / "val"
    with pytest.raises(SystemExit) as exc:
        main(["-q", "zeroshot", "--model", two_clips[0], "--data", str(val), "--data", str(tmp_path / "nope"),
              "--out", str(out)])  # fmt: skip
    assert exc.value.code == 2
    assert "nope: dataset folder not found" in capsys.readouterr().err
    assert not out.exists()


def test_the_same_model_twice_is_one_line(two_clips, shapes_world, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["-q", "zeroshot", "--model", two_clips[0], "--model", two_clips[0], "--data",
              str(shapes_world / "classification" / "val"), "--out", str(tmp_path / "zs.json")])  # fmt: skip
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"--model: '{two_clips[0]}' given twice" in err and len(err.strip().splitlines()) == 1


def test_markdown_pivots_the_headline_and_slugs_are_file_names():
    table = ResultTable("probe", ["top1", "n_test"], "top1", [
        TableRow("m/one", "a", {"top1": 0.5, "n_test": 10}, "x"),
        TableRow("m/one", "b|c", {"top1": None, "n_test": 3}, "y"),
    ])  # fmt: skip
    text = to_markdown(table)
    assert "| m/one | 0.5000 | - |" in text and "b\\|c" in text and "| 10 |" in text
    assert slug("openai/clip-vit-base-patch32") == "openai-clip-vit-base-patch32"
    assert slug("vlkit:shapes-clip") == "vlkit-shapes-clip"


def test_retrieval_table_pairs_annotations_with_images_in_order(two_clips, shapes_world, tmp_path, capsys):
    world = str(shapes_world)
    out, single = tmp_path / "r.json", tmp_path / "single.json"
    _run("retrieval", "--model", two_clips[0], "--model", two_clips[1],
         "--annotations", f"{world}/val.json", "--images", f"{world}/images",
         "--annotations", f"{world}/train.json", "--images", f"{world}/images",
         "--out", str(out))  # fmt: skip
    table = json.loads(out.read_text())
    assert table["task"] == "retrieval" and len(table["rows"]) == 4
    _run("retrieval", "--model", two_clips[1], "--annotations", f"{world}/train.json", "--images",
         f"{world}/images", "--out", str(single))  # fmt: skip
    alone = json.loads(single.read_text())
    row = table["rows"][3]["metrics"]
    assert row["image_to_text_R@1"] == alone["image_to_text"]["R@1"]
    assert row["text_to_image_mean_rank"] == alone["text_to_image"]["mean_rank"]
    assert row["n_texts"] == alone["n_texts"]
    with pytest.raises(SystemExit) as exc:
        main(["-q", "retrieval", "--model", two_clips[0], "--annotations", f"{world}/val.json",
              "--annotations", f"{world}/train.json", "--images", f"{world}/images",
              "--out", str(out)])  # fmt: skip
    assert exc.value.code == 2
    assert "--images: give one per --annotations" in capsys.readouterr().err


def test_probe_table_runs_each_train_test_pair(two_clips, shapes_world, tmp_path):
    train, val = shapes_world / "classification" / "train", shapes_world / "classification" / "val"
    other = tmp_path / "val-copy"
    shutil.copytree(val, other)
    out, single = tmp_path / "p.json", tmp_path / "single.json"
    _run("probe", "--model", two_clips[0], "--train", str(train), "--test", str(val), "--train", str(train),
         "--test", str(other), "--out", str(out))  # fmt: skip
    table = json.loads(out.read_text())
    assert table["headline"] == "probe_top1"
    assert [r["data"] for r in table["rows"]] == [f"{train} -> {val}", f"{train} -> {other}"]
    _run("probe", "--model", two_clips[0], "--train", str(train), "--test", str(val), "--out", str(single))
    alone = json.loads(single.read_text())
    row = table["rows"][0]["metrics"]
    assert (row["probe_top1"], row["c"], row["zeroshot_top1"]) == (
        alone["top1"], alone["c"], alone["zeroshot"]["top1"]
    )
