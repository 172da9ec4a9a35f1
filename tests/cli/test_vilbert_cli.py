"""`vlkit vilbert pretrain | finetune | evaluate` end to end on the tiny world, and bad input as one line."""

from __future__ import annotations

import json

import pytest

from vlkit.cli.main import main

TINY = ["--hidden-size", "16", "--heads", "2", "--text-layers", "1", "--vision-layers", "1",
        "--coattention-layers", "1", "--ffn-size", "24", "--batch-size", "4", "--retrieval-rows", "2",
        "--rerank-candidates", "4", "--steps", "2", "--warmup-steps", "1"]  # fmt: skip


def test_pretrain_then_finetune_then_evaluate(shapes_world, tmp_path, capsys):
    cache = ["--feature-cache-dir", str(tmp_path / "cache")]
    world = ["--world", str(shapes_world)]
    main(["vilbert", "pretrain", *world, "--out", str(tmp_path / "pre"), *TINY, *cache])
    assert "saved" in capsys.readouterr().out
    main(["vilbert", "finetune", *world, "--out", str(tmp_path / "ft"), "--init", str(tmp_path / "pre"),
          *TINY, *cache])  # fmt: skip
    out = capsys.readouterr().out
    assert "best validation VQA accuracy" in out and (tmp_path / "ft" / "best" / "config.json").is_file()
    main(
        ["vilbert", "evaluate", "--model", str(tmp_path / "ft"), *world, "--out", str(tmp_path / "eval.json")]
    )
    results = json.loads((tmp_path / "eval.json").read_text())
    expected = {
        "vqa_accuracy",
        "vqa_by_type",
        "vqa_heldout_accuracy",
        "refer_accuracy",
        "refer_baselines",
        "refer_heldout_accuracy",
        "retrieval_r1",
        "retrieval_r5",
        "retrieval_r10",
        "params",
    }
    assert expected <= set(results)
    assert "ranks 4 images" in results["retrieval_protocol"]
    assert "VQA accuracy" in capsys.readouterr().out
    logged = [json.loads(line) for line in (tmp_path / "ft" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [2] and "loss_retrieval" in logged[-1]  # log every 10 and the last


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["vilbert", "pretrain", "--out", "{tmp}/o"], "--world: required"),
        (["vilbert", "pretrain", "--world", "{tmp}/none", "--out", "{tmp}/o"], "folder not found"),
        (["vilbert", "pretrain", "--world", "{tmp}", "--out", "{tmp}/o"], "not a shapes world"),
        (
            ["vilbert", "pretrain", "--world", "{world}", "--out", "{tmp}/o", "--variant", "x"],
            "--variant: unknown",
        ),
        (
            ["vilbert", "pretrain", "--world", "{world}", "--out", "{tmp}/o", "--regions", "x"],
            "--regions: must be",
        ),
        (
            ["vilbert", "pretrain", "--world", "{world}", "--out", "{tmp}/o", "--heads", "3"],
            "--heads: 3 heads",
        ),
        (
            ["vilbert", "finetune", "--world", "{world}", "--out", "{tmp}/o", "--init", "{tmp}"],
            "no config.json",
        ),
        (
            ["vilbert", "pretrain", "--world", "{world}", "--out", "{tmp}/o", "--region-pooling", "roi"],
            "--region-pooling: must be",
        ),
        (
            ["vilbert", "pretrain", "--boxes", "{tmp}/b.json", "--out", "{tmp}/o"],
            "real images need all three",
        ),
        (
            ["vilbert", "pretrain", "--annotations", "{tmp}/a.json", "--images", "{tmp}",
             "--boxes", "{tmp}/b", "--out", "{tmp}/o"],
            "--annotations {tmp}/a.json: file not found",
        ),  # fmt: skip
        (
            ["vilbert", "pretrain", "--world", "{world}", "--annotations", "{tmp}/a.json",
             "--images", "{tmp}", "--boxes", "{tmp}/b", "--out", "{tmp}/o"],
            "give one data source",
        ),  # fmt: skip
        (["vilbert", "evaluate", "--model", "{tmp}/none", "--world", "{world}"], "model folder not found"),
        (["vilbert", "evaluate", "--model", "{tmp}/m", "--world", "{world}"], "not a vlkit VL model"),
    ],
)
def test_vilbert_commands_turn_bad_input_into_one_line_and_exit_2(
    shapes_world, tmp_path, capsys, argv, message
):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(SystemExit) as exit_info:
        main([a.replace("{tmp}", str(tmp_path)).replace("{world}", str(shapes_world)) for a in argv])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    message = message.replace("{tmp}", str(tmp_path))
    assert len(error.splitlines()) == 1 and message in error, error


def test_pretrain_on_real_images_with_a_detectors_boxes(shapes_world, tmp_path, capsys):
    # The real path: a COCO caption file, its images and a detector's boxes (COCO detection layout), read
    # through the same encoder; cropped features (R-CNN's pooling) on the way.
    world = json.loads((shapes_world / "train.json").read_text())
    images = world["images"][:6]
    ids = {i["id"] for i in images}
    captions = {
        "images": [{"id": i["id"], "file_name": i["file_name"]} for i in images],
        "annotations": [a for a in world["annotations"] if a["image_id"] in ids],
    }
    boxes = {"annotations": [{"image_id": i["id"], "bbox": o["bbox"]} for i in images for o in i["objects"]]}
    (tmp_path / "captions.json").write_text(json.dumps(captions))
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    main(["vilbert", "pretrain", "--annotations", str(tmp_path / "captions.json"),
          "--images", str(shapes_world / "images"), "--boxes", str(tmp_path / "boxes.json"),
          "--out", str(tmp_path / "pre"), "--region-pooling", "crop",
          "--feature-cache-dir", str(tmp_path / "cache"), *TINY])  # fmt: skip
    assert "saved" in capsys.readouterr().out
    config = json.loads((tmp_path / "pre" / "vlkit_vilbert_train.json").read_text())
    assert config["region_pooling"] == "crop"
    logged = [json.loads(line) for line in (tmp_path / "pre" / "train_log.jsonl").read_text().splitlines()]
    assert "loss_word" in logged[-1] and "loss_alignment" in logged[-1] and "loss_region" not in logged[-1]
