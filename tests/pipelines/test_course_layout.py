"""The course's homework layout end to end through the CLI: zero-shot on p1's classification folder, then
train a captioner on p2's split image folders, caption its validation images into the course's predictions
file and score it with the course's CLIPScore (no text prefix) and CIDEr-D.

The tree, built from a tiny shapes world:

    p1/  {class_id}_{n}.png ... id2label.json
    p2/  images/train/*.png  images/val/*.png  train.json  val.json   (file names relative to those folders)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.models.tiny import save_tiny_clip
from tests.models.tiny_captioner import save_tiny_gpt2
from vlkit.cli.main import main
from vlkit.shapes.world import ShapesConfig, generate_world

COURSE_WORLD = ShapesConfig(
    seed=3, n_train=16, n_val=6, per_class_train=1, per_class_val=1, n_alt_text=8, n_alt_text_val=4,
    workers=1,
)  # fmt: skip


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> dict[str, Path]:
    """The course tree (p1, p2) from a tiny world, and a tiny CLIP and GPT-2 (its BPE from p2's captions)."""
    root = tmp_path_factory.mktemp("course")
    world = root / "world"
    generate_world(COURSE_WORLD, world)
    p1 = root / "hw" / "p1"
    shutil.copytree(world / "classification" / "val", p1)
    p2 = root / "hw" / "p2"
    captions = []
    for split in ("train", "val"):
        data = json.loads((world / f"{split}.json").read_text())
        folder = p2 / "images" / split
        folder.mkdir(parents=True)
        for image in data["images"]:
            shutil.copy(world / "images" / image["file_name"], folder / image["file_name"])
        # the course's files hold images and captions only
        data["images"] = [{"id": i["id"], "file_name": i["file_name"]} for i in data["images"]]
        (p2 / f"{split}.json").write_text(json.dumps(data))
        captions += [a["caption"] for a in data["annotations"]]
    return {
        "p1": p1,
        "p2": p2,
        "clip": save_tiny_clip(root / "models" / "clip"),
        "gpt2": save_tiny_gpt2(root / "models" / "gpt2", captions),
    }


def test_the_course_layout_runs_end_to_end_through_the_cli(course, tmp_path):
    p1, p2, clip = course["p1"], course["p2"], str(course["clip"])
    assert (p1 / "id2label.json").is_file() and (p1 / "0_0.png").is_file()

    zeroshot = tmp_path / "p1_zeroshot.json"
    main(
        [
            "--quiet",
            "zeroshot",
            "--model",
            clip,
            "--data",
            str(p1),
            "--templates",
            "seed",
            "--out",
            str(zeroshot),
        ]
    )
    report = json.loads(zeroshot.read_text())
    n_images = len(list(p1.glob("*.png")))
    assert report["n_images"] == n_images and report["n_classes"] == len(
        json.loads((p1 / "id2label.json").read_text())
    )
    assert {"templates", "ensemble", "per_class", "predictions"} <= report.keys()
    assert all(0.0 <= t["top1"] <= 1.0 for t in report["templates"])

    captioner = tmp_path / "p2_captioner"
    main(["--quiet", "caption", "train", "--data", str(p2), "--train-images", str(p2 / "images" / "train"),
          "--val-images", str(p2 / "images" / "val"), "--encoder", clip, "--decoder", str(course["gpt2"]),
          "--tuning", "lora", "--steps", "2", "--batch-size", "4", "--max-caption-tokens", "20",
          "--mixed-precision", "no", "--out", str(captioner)])  # fmt: skip
    assert (captioner / "config.json").is_file() and (captioner / "best" / "best.json").is_file()

    predictions = tmp_path / "pred.json"
    main(["--quiet", "caption", "predict", "--model", str(captioner), "--images", str(p2 / "images" / "val"),
          "--out", str(predictions)])  # fmt: skip
    captions = json.loads(predictions.read_text())
    val = json.loads((p2 / "val.json").read_text())
    assert sorted(captions) == sorted(Path(image["file_name"]).stem for image in val["images"])
    assert all(isinstance(caption, str) for caption in captions.values())

    evaluation = tmp_path / "p2_evaluation"
    main(["--quiet", "evaluate", "--predictions", str(predictions), "--annotations", str(p2 / "val.json"),
          "--images", str(p2 / "images" / "val"), "--model", clip, "--metrics", "cider,clip_score",
          "--no-prefix", "--allow-empty", "--out", str(evaluation)])  # fmt: skip
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert set(metrics["metrics"]) == {"cider", "clip_score"}
    assert all(isinstance(m["value"], float) for m in metrics["metrics"].values())
    assert metrics["details"]["clip"]["prefix"] is None  # the course's CLIPScore: plain captions
    for name in ("per_image.csv", "per_image.json", "pairs.png"):
        assert (evaluation / name).is_file()

    # The same captions keyed by file name, extension included, score the same.
    named = tmp_path / "pred_named.json"
    by_stem = {Path(image["file_name"]).stem: image["file_name"] for image in val["images"]}
    named.write_text(json.dumps({by_stem[stem]: caption for stem, caption in captions.items()}))
    again = tmp_path / "p2_evaluation_named"
    main(["--quiet", "evaluate", "--predictions", str(named), "--annotations", str(p2 / "val.json"),
          "--images", str(p2 / "images" / "val"), "--model", clip, "--metrics", "cider,clip_score",
          "--no-prefix", "--allow-empty", "--out", str(again)])  # fmt: skip
    assert json.loads((again / "metrics.json").read_text())["metrics"] == metrics["metrics"]
