"""`vlkit evaluate` end to end on the tiny shapes world, through the console entry point."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.models.tiny import save_tiny_clip
from vlkit.cli.main import main

CLIP_AND_GROUNDING = "cider,clip_score,ref_clip_score,chair,attributes"


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("evaluate") / "clip")


@pytest.fixture(scope="module")
def val_images(shapes_world) -> list[dict]:
    """The val images with their references, in file order."""
    data = json.loads((shapes_world / "val.json").read_text())
    references: dict[int, list[str]] = {}
    for annotation in data["annotations"]:
        references.setdefault(annotation["image_id"], []).append(annotation["caption"])
    return [{**image, "references": references[image["id"]]} for image in data["images"]]


def _stem(image: dict) -> str:
    return Path(image["file_name"]).stem


def _evaluate(shapes_world: Path, predictions: Path, out: Path, *extra: str, annotations: Path | None = None):
    main(
        [
            "--quiet",
            "evaluate",
            "--predictions", str(predictions),
            "--annotations", str(annotations or shapes_world / "val.json"),
            "--images", str(shapes_world / "images"),
            "--out", str(out),
            *extra,
        ]
    )  # fmt: skip
    return json.loads((out / "metrics.json").read_text())


def _values(report: dict) -> dict[str, float | None]:
    return {name: result["value"] for name, result in report["metrics"].items()}


def test_own_references_score_high_and_ground_perfectly(shapes_world, val_images, tiny_clip_dir, tmp_path):
    predictions = tmp_path / "pred.json"
    predictions.write_text(json.dumps({_stem(image): image["references"][0] for image in val_images}))
    out = tmp_path / "out"
    report = _evaluate(
        shapes_world,
        predictions,
        out,
        "--model",
        str(tiny_clip_dir),
        "--metrics",
        CLIP_AND_GROUNDING + ",bleu",
    )
    values = _values(report)
    assert values["cider"] > 2.0  # the candidate is one of its own references
    assert values["chair_i"] == 0.0 and values["chair_s"] == 0.0
    for kind in ("colour", "shape", "count", "size", "position", "relation"):
        assert values[f"attribute_{kind}"] == 1.0
    assert values["bleu_4"] > 0.9
    assert 0.0 <= values["clip_score"] <= 2.5 and 0.0 <= values["ref_clip_score"] <= 2.5
    assert {k: report["details"]["clip"][k] for k in ("scoring", "precision")} == {
        "scoring": "softmax",
        "precision": "fp32",  # `auto` on the tests' CPU without bf16
    }
    assert report["n_images"] == len(val_images) == 20
    rows = json.loads((out / "per_image.json").read_text())
    with (out / "per_image.csv").open() as handle:
        csv_rows = list(csv.DictReader(handle))
    assert (
        [row["file_name"] for row in rows]
        == [row["file_name"] for row in csv_rows]
        == [image["file_name"] for image in val_images]
    )
    for column in (
        "image_id",
        "caption",
        "cider",
        "clip_score",
        "ref_clip_score",
        "mentions",
        "colour_accuracy",
    ):
        assert column in csv_rows[0]
    assert sum(row["cider"] for row in rows) / len(rows) == pytest.approx(values["cider"])
    assert sum(row["clip_score"] for row in rows) / len(rows) == pytest.approx(values["clip_score"])
    pairs = report["pairs"]
    assert len(pairs["top"]) == len(pairs["bottom"]) == 5
    scores = sorted((row["clip_score"] for row in rows), reverse=True)
    assert [p["clip_score"] for p in pairs["top"]] == scores[:5]
    assert [p["clip_score"] for p in pairs["bottom"]] == scores[::-1][:5]
    assert (out / "pairs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_clipscore_with_a_siglip_is_the_same_formula_on_its_cosine_and_says_so(
    shapes_world, val_images, tmp_path
):
    from tests.models.tiny_siglip import save_tiny_siglip
    from vlkit.data.images import read_image
    from vlkit.models.clip import load_clip

    siglip = save_tiny_siglip(tmp_path / "siglip")
    predictions = tmp_path / "pred.json"
    predictions.write_text(json.dumps({_stem(image): image["references"][0] for image in val_images}))
    out = tmp_path / "out"
    report = _evaluate(shapes_world, predictions, out, "--model", str(siglip), "--metrics", "clip_score",
                       "--precision", "fp32", "--no-prefix")  # fmt: skip
    assert report["details"]["clip"]["scoring"] == "sigmoid"
    clip = load_clip(str(siglip))
    first = val_images[0]
    image = clip.encode_images(clip.preprocess([read_image(shapes_world / "images" / first["file_name"])]))
    cosine = float(image @ clip.encode_texts([first["references"][0]]).T)
    row = json.loads((out / "per_image.json").read_text())[0]
    assert row["clip_score"] == pytest.approx(2.5 * max(cosine, 0.0), abs=1e-5)


def test_captions_swapped_between_images_score_lower_and_hallucinate(shapes_world, val_images, tmp_path):
    own, swapped = tmp_path / "own.json", tmp_path / "swapped.json"
    own.write_text(json.dumps({_stem(image): image["references"][0] for image in val_images}))
    shifted = val_images[1:] + val_images[:1]
    swapped.write_text(
        json.dumps(
            {_stem(image): other["references"][0] for image, other in zip(val_images, shifted, strict=True)}
        )
    )
    own_values = _values(_evaluate(shapes_world, own, tmp_path / "a", "--metrics", "cider,chair,attributes"))
    swapped_report = _evaluate(shapes_world, swapped, tmp_path / "b", "--metrics", "cider,chair,attributes")
    swapped_values = _values(swapped_report)
    assert swapped_values["cider"] < own_values["cider"] / 2
    assert swapped_values["chair_i"] > 0 and swapped_values["chair_s"] > 0
    assert swapped_values["attribute_shape"] < 1.0
    rows = json.loads((tmp_path / "b" / "per_image.json").read_text())
    assert any(row["hallucinated"] for row in rows)
    # No CLIP metric was asked for: no figure, and the reason is written down.
    assert swapped_report["pairs"] == {"unavailable": "clip_score was not requested"}
    assert not (tmp_path / "b" / "pairs.png").exists()


@pytest.mark.slow
def test_what_cannot_be_computed_is_reported_unavailable_never_zero(shapes_world, val_images, tmp_path):
    data = json.loads((shapes_world / "val.json").read_text())
    for image in data["images"]:
        del image["objects"]
    annotations = tmp_path / "no_objects.json"
    annotations.write_text(json.dumps(data))
    predictions = tmp_path / "pred.json"
    predictions.write_text(
        json.dumps([{"image_id": i["id"], "caption": i["references"][1]} for i in val_images])
    )
    report = _evaluate(shapes_world, predictions, tmp_path / "out", annotations=annotations)  # every metric
    metrics = report["metrics"]
    for name in ("clip_score", "ref_clip_score"):
        assert metrics[name] == {"value": None, "unavailable": "no --model given"}
    for name in ("chair_i", "chair_s", "attribute_colour", "attribute_relation"):
        assert metrics[name]["value"] is None and "carry no 'objects'" in metrics[name]["unavailable"]
    for name in ("cider", "bleu_1", "bleu_4", "rouge_l"):
        assert metrics[name]["value"] > 0
    assert "meteor" in metrics  # a value with Java, a reason without


def test_allow_partial_scores_only_the_predicted_images(shapes_world, val_images, tmp_path):
    predictions = tmp_path / "pred.json"
    predictions.write_text(json.dumps({_stem(image): image["references"][0] for image in val_images[:6]}))
    report = _evaluate(shapes_world, predictions, tmp_path / "out", "--metrics", "cider", "--allow-partial")
    assert report["n_images"] == 6 and report["n_images_in_annotations"] == 20
    assert len(json.loads((tmp_path / "out" / "per_image.json").read_text())) == 6


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("missing", "no prediction for 1 of 20 images"),
        ("extra", "1 prediction(s) for images that"),
        ("empty", "caption is empty"),
        ("malformed", "malformed JSON"),
    ],
)
def test_bad_predictions_exit_2_with_one_line_naming_the_file(
    shapes_world, val_images, tmp_path, capsys, content, message
):
    data = {_stem(image): image["references"][0] for image in val_images}
    if content == "missing":
        del data[_stem(val_images[3])]
    elif content == "extra":
        data["not_an_image"] = "a red circle"
    elif content == "empty":
        data[_stem(val_images[0])] = ""
    predictions = tmp_path / "pred.json"
    predictions.write_text(json.dumps(data) if content != "malformed" else json.dumps(data)[:-1])
    with pytest.raises(SystemExit) as exit_info:
        _evaluate(shapes_world, predictions, tmp_path / "out", "--metrics", "cider")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert str(predictions) in err and message in err
    assert "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "out" / "metrics.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics", "cider,spice"], "--metrics: unknown 'spice'"),
        (["--metrics", "clip_score"], "--model: a CLIP is needed for clip_score"),
        (["--tokenizer", "nltk"], "--tokenizer: unknown 'nltk'"),
        (["--on-bad-image", "ignore"], "unknown policy 'ignore'"),
    ],
)
def test_bad_options_exit_2_with_one_line(shapes_world, val_images, tmp_path, capsys, args, message):
    predictions = tmp_path / "pred.json"
    predictions.write_text(json.dumps({_stem(image): image["references"][0] for image in val_images}))
    with pytest.raises(SystemExit) as exit_info:
        _evaluate(shapes_world, predictions, tmp_path / "out", *args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_unreadable_images_stop_the_run_or_are_left_out_of_the_clip_metrics(
    shapes_world, val_images, tiny_clip_dir, tmp_path, capsys
):
    folder = tmp_path / "images"
    folder.mkdir()
    chosen = val_images[:3]
    for image in chosen:
        (folder / image["file_name"]).write_bytes((shapes_world / "images" / image["file_name"]).read_bytes())
    (folder / "broken.png").write_bytes(b"not a png at all")
    broken = {**chosen[0], "id": 999, "file_name": "broken.png"}
    images = [*chosen, broken]
    annotations = tmp_path / "ann.json"
    references = [{"image_id": i["id"], "caption": c} for i in images for c in i["references"]]
    annotations.write_text(json.dumps({"images": images, "annotations": references}))
    predictions = tmp_path / "pred.json"
    predictions.write_text(json.dumps({_stem(image): image["references"][0] for image in images}))
    args = ["--predictions", str(predictions), "--annotations", str(annotations), "--images", str(folder),
            "--model", str(tiny_clip_dir), "--metrics", "cider,clip_score"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(["--quiet", "evaluate", *args, "--out", str(tmp_path / "stopped")])
    assert exit_info.value.code == 2 and "broken.png" in capsys.readouterr().err
    out = tmp_path / "skipped"
    main(["--quiet", "evaluate", *args, "--out", str(out), "--on-bad-image", "skip", "--top-k", "2"])
    report = json.loads((out / "metrics.json").read_text())
    assert [Path(s["file"]).name for s in report["details"]["clip"]["skipped_images"]] == ["broken.png"]
    rows = json.loads((out / "per_image.json").read_text())
    assert [row["clip_score"] is None for row in rows] == [False, False, False, True]
    assert all(row["cider"] is not None for row in rows)  # text-only metrics still cover every image
    assert report["metrics"]["clip_score"]["value"] == pytest.approx(
        sum(r["clip_score"] for r in rows[:3]) / 3
    )
    assert len(report["pairs"]["top"]) == len(report["pairs"]["bottom"]) == 2
    with (out / "per_image.csv").open() as handle:
        assert [row["clip_score"] == "" for row in csv.DictReader(handle)] == [False, False, False, True]
