"""`vlkit zeroshot` with a CLIP and with a SigLIP: RESULTS.json names the scoring and the precision, and each
image's class probabilities are the model's own, computed here again through transformers' forward."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel, SiglipModel

from tests.models.tiny import save_tiny_clip
from tests.models.tiny_siglip import CONTEXT, LOGIT_BIAS, save_tiny_siglip
from vlkit.cli.main import main

TEMPLATE = "a {object}"
KINDS = {  # kind -> (builder, model class, the kind's padding, probabilities of logits_per_image)
    "clip": (
        save_tiny_clip,
        CLIPModel,
        dict(padding=True, truncation=True),
        lambda logits: logits.softmax(dim=-1),
    ),
    "siglip": (
        save_tiny_siglip,
        SiglipModel,
        dict(padding="max_length", max_length=CONTEXT, truncation=True, padding_side="right"),
        torch.sigmoid,
    ),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("scoring")
    return {kind: build(root / kind) for kind, (build, *_) in KINDS.items()}


def _zeroshot(model: Path, world: Path, tmp_path: Path) -> dict:
    (tmp_path / "templates.txt").write_text(TEMPLATE + "\n")  # one template: the ensemble is that template
    out = tmp_path / "zs.json"
    main(["--quiet", "zeroshot", "--model", str(model), "--data", str(world / "classification" / "val"),
          "--templates", str(tmp_path / "templates.txt"), "--out", str(out)])  # fmt: skip
    return json.loads(out.read_text())


@pytest.mark.parametrize("kind", list(KINDS))
def test_zeroshot_probabilities_are_the_models_own_and_the_output_names_them(
    kind, models, shapes_world, tmp_path
):
    result = _zeroshot(models[kind], shapes_world, tmp_path)
    _, model_class, padding, probabilities = KINDS[kind]
    assert result["scoring"] == {"clip": "softmax", "siglip": "sigmoid"}[kind]
    assert result["precision"] == "fp32"  # `auto` on a CPU the tests declare without bf16 (VLKIT_CPU_BF16=0)
    assert result["logit_bias"] == (None if kind == "clip" else pytest.approx(LOGIT_BIAS, rel=1e-6))
    rows = result["predictions"][:4]
    model = model_class.from_pretrained(models[kind]).eval()
    tokenizer = AutoTokenizer.from_pretrained(models[kind])
    processor = AutoImageProcessor.from_pretrained(models[kind], backend="pil")
    prompts = [TEMPLATE.replace("{object}", name) for name in result["class_names"]]
    images = [Image.open(row["file"]).convert("RGB") for row in rows]
    with torch.no_grad():
        logits = model(
            input_ids=tokenizer(prompts, return_tensors="pt", **padding)["input_ids"],
            pixel_values=processor(images=images, return_tensors="pt")["pixel_values"],
        ).logits_per_image  # (4 images, C classes)
    expected = probabilities(logits)
    for row, image_probabilities in zip(rows, expected, strict=True):
        values, indices = image_probabilities.topk(5)
        assert [c["class"] for c in row["top_classes"]] == [result["class_names"][i] for i in indices]
        assert [c["probability"] for c in row["top_classes"]] == pytest.approx(values.tolist(), abs=1e-5)
        assert row["ensemble"] == row["top_classes"][0]["class"]  # ranking does not depend on the scoring
        assert row["probability"] == row["top_classes"][0]["probability"]
    total = expected.sum(dim=-1)
    assert torch.allclose(total, torch.ones(4)) == (kind == "clip")  # a softmax sums to 1; sigmoids need not


def test_a_siglip_folder_without_its_tokenizer_is_one_line_naming_it(models, shapes_world, tmp_path, capsys):
    folder = tmp_path / "no-tokenizer"
    shutil.copytree(models["siglip"], folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    with pytest.raises(SystemExit) as exit_info:
        _zeroshot(folder, shapes_world, tmp_path)
    message = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in message and "Traceback" not in message
    assert message.startswith("error:") and str(folder) in message and "has no tokenizer" in message


def test_a_siglip_ranks_captions_and_probes_like_any_clip(models, shapes_world, tmp_path):
    """Retrieval and the probe with a SigLIP: R.json says sigmoid, and each caption's rank is its image's
    place among transformers' own logits_per_text (the sigmoid is increasing: it ranks as the cosine)."""
    out = tmp_path / "r.json"
    main(["--quiet", "retrieval", "--model", str(models["siglip"]), "--annotations",
          str(shapes_world / "val.json"), "--images", str(shapes_world / "images"),
          "--out", str(out)])  # fmt: skip
    result = json.loads(out.read_text())
    assert (result["scoring"], result["precision"]) == ("sigmoid", "fp32")
    _, model_class, padding, _ = KINDS["siglip"]
    model = model_class.from_pretrained(models["siglip"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(models["siglip"])
    processor = AutoImageProcessor.from_pretrained(models["siglip"], backend="pil")
    val = json.loads((shapes_world / "val.json").read_text())
    images = [Image.open(shapes_world / "images" / e["file_name"]).convert("RGB") for e in val["images"]]
    texts = [row["text"] for row in result["per_text"][:12]]
    with torch.no_grad():
        logits = model(
            input_ids=tokenizer(texts, return_tensors="pt", **padding)["input_ids"],
            pixel_values=processor(images=images, return_tensors="pt")["pixel_values"],
        ).logits_per_text  # (12 captions, images)
    position = {entry["id"]: i for i, entry in enumerate(val["images"])}
    for row, scores in zip(result["per_text"][:12], logits, strict=True):
        own = scores[position[row["image_id"]]]
        assert row["rank"] == 1 + int((scores > own).sum())
    probe_out = tmp_path / "p.json"
    classification = shapes_world / "classification"
    main(["--quiet", "probe", "--model", str(models["siglip"]), "--train", str(classification / "train"),
          "--test", str(classification / "val"), "--out", str(probe_out)])  # fmt: skip
    probe = json.loads(probe_out.read_text())
    assert probe["precision"] == "fp32" and 0.0 <= probe["top1"] <= 1.0 and probe["n_test"] == 96
