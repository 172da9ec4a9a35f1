from __future__ import annotations

import json

import pytest
import torch

from tests.models.tiny import save_tiny_clip
from vlkit.cli.main import main
from vlkit.data.classification import load_classification_dataset
from vlkit.errors import VlkitError
from vlkit.models.clip import load_clip
from vlkit.shapes.meta import unseen_classes_of_world
from vlkit.zeroshot.classifier import (
    analyse_prompts,
    ensemble_embeddings,
    fill_template,
    resolve_templates,
    score_templates,
)
from vlkit.zeroshot.templates import IMAGENET80_TEMPLATES, SEED_TEMPLATES


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("zs") / "clip")


def test_named_template_sets_hold_the_seed_three_and_the_clip_paper_eighty():
    assert resolve_templates("seed") == list(SEED_TEMPLATES)
    assert SEED_TEMPLATES == (
        "This is a photo of {object}",
        "This is not a photo of {object}",
        "No {object}, no score.",
    )
    assert len(IMAGENET80_TEMPLATES) == len(set(IMAGENET80_TEMPLATES)) == 80
    assert all("{object}" in t for t in IMAGENET80_TEMPLATES)
    assert fill_template("No {object}, no score.", "red {circle}") == "No red {circle}, no score."


def test_template_file_without_placeholder_names_the_line(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("a photo of {object}\n\na drawing of something\n")
    with pytest.raises(VlkitError, match=r"mine.txt: template 2 'a drawing of something' has no \{object\}"):
        resolve_templates(str(path))
    with pytest.raises(VlkitError, match="neither a named set"):
        resolve_templates("imagenet81")


def test_ensemble_is_the_renormalized_mean_of_normalized_template_embeddings():
    torch.manual_seed(0)
    per_template = torch.nn.functional.normalize(torch.randn(3, 4, 8), dim=-1)
    expected = per_template.mean(0)
    expected = expected / expected.norm(dim=-1, keepdim=True)
    assert torch.allclose(ensemble_embeddings(per_template), expected, atol=1e-6)


def test_scores_equal_separate_classification_runs_per_template():
    torch.manual_seed(1)
    images = torch.nn.functional.normalize(torch.randn(50, 16), dim=-1)
    texts = torch.nn.functional.normalize(torch.randn(4, 6, 16), dim=-1)
    labels = torch.randint(0, 6, (50,)).tolist()
    analysis = score_templates(
        images, texts, labels, ["t0", "t1", "t2", "t3"], list("abcdef"), unseen_class_ids=[5]
    )
    for t in range(4):
        predicted = (images @ texts[t].T).argmax(-1)
        correct = predicted == torch.tensor(labels)
        assert analysis.templates[t].top1 == pytest.approx(float(correct.float().mean()))
        unseen = torch.tensor(labels) == 5
        assert analysis.templates[t].unseen_top1 == pytest.approx(float(correct[unseen].float().mean()))
        assert analysis.templates[t].seen_top1 == pytest.approx(float(correct[~unseen].float().mean()))
        top5 = (images @ texts[t].T).topk(5, dim=-1).indices
        assert analysis.templates[t].top5 == pytest.approx(
            float((top5 == torch.tensor(labels)[:, None]).any(-1).float().mean())
        )
    ensemble_pred = (images @ ensemble_embeddings(texts).T).argmax(-1)
    assert analysis.ensemble.top1 == pytest.approx(
        float((ensemble_pred == torch.tensor(labels)).float().mean())
    )
    confusion = torch.tensor(analysis.confusion(-1))
    assert confusion.sum() == 50 and confusion.trace() == int((ensemble_pred == torch.tensor(labels)).sum())


def test_prompt_analysis_encodes_each_image_once(tiny_clip_dir, shapes_world, monkeypatch):
    clip = load_clip(str(tiny_clip_dir))
    dataset = load_classification_dataset(shapes_world / "classification" / "val")
    seen = []
    original = clip.encode_images
    monkeypatch.setattr(clip, "encode_images", lambda pixels: seen.append(len(pixels)) or original(pixels))
    analysis = analyse_prompts(
        clip, dataset.paths, dataset.labels, dataset.class_names, list(IMAGENET80_TEMPLATES), batch_size=32
    )
    assert sum(seen) == len(dataset.paths)
    assert len(analysis.templates) == 80 and len(analysis.labels) == len(dataset.paths)


def test_unseen_classes_come_from_the_world_whatever_the_layout(shapes_world):
    meta = json.loads((shapes_world / "meta.json").read_text())
    flat = load_classification_dataset(shapes_world / "classification" / "val")
    folders = load_classification_dataset(shapes_world / "imagefolder" / "val")
    heldout = {f"{c} {s}" for c, s in meta["heldout"]}
    for dataset in (flat, folders):
        unseen = unseen_classes_of_world(dataset.root, dataset.class_names)
        assert {dataset.class_names[i] for i in unseen} == heldout


def test_zeroshot_command_writes_results_and_charts(tiny_clip_dir, shapes_world, tmp_path, capsys):
    out = tmp_path / "results.json"
    main(
        [
            "--quiet",
            "zeroshot",
            "--model",
            str(tiny_clip_dir),
            "--data",
            str(shapes_world / "classification" / "val"),
            "--templates",
            "seed",
            "--out",
            str(out),
        ]
    )
    result = json.loads(out.read_text())
    assert [t["template"] for t in result["templates"]] == list(SEED_TEMPLATES)
    for row in result["templates"] + [result["ensemble"]]:
        for key in ("top1", "top5", "seen_top1", "unseen_top1"):
            assert 0.0 <= row[key] <= 1.0
    assert result["n_images"] == len(result["predictions"]) == 96
    assert len(result["per_class"]) == 48 and len(result["unseen_classes"]) == 8
    assert (tmp_path / "results_templates.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "results_confusion.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--templates", "{template_file}"], "template 1 'no placeholder here' has no {object}"),
        (["--class-names", "{empty_names}"], "no class names"),
        (["--on-bad-image", "ignore"], "unknown policy 'ignore'"),
    ],
)
def test_zeroshot_bad_input_is_one_line_and_exit_code_2(
    args, message, tiny_clip_dir, shapes_world, tmp_path, capsys
):
    (tmp_path / "t.txt").write_text("no placeholder here\n")
    (tmp_path / "names.txt").write_text("\n")
    args = [a.format(template_file=tmp_path / "t.txt", empty_names=tmp_path / "names.txt") for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "zeroshot",
                "--model",
                str(tiny_clip_dir),
                "--data",
                str(shapes_world / "classification" / "val"),
                "--out",
                str(tmp_path / "r.json"),
                *args,
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err


def test_zeroshot_from_classification_shards_gives_the_folder_results(
    tiny_clip_dir, shapes_world, tmp_path, capsys
):
    folder = shapes_world / "classification" / "val"
    main(["--quiet", "data", "shard", "--classification", str(folder), "--out", str(tmp_path / "shards"),
          "--per-shard", "40"])  # fmt: skip
    assert json.loads((tmp_path / "shards" / "id2label.json").read_text())["0"] == "red circle"
    pattern = str(tmp_path / "shards" / "data-{000000..000002}.tar")  # 96 images: 40, 40 and 16
    for name, source in (("folder", ["--data", str(folder)]), ("shards", ["--shards", pattern])):
        main(["--quiet", "zeroshot", "--model", str(tiny_clip_dir), *source, "--templates", "seed",
              "--batch-size", "7", "--out", str(tmp_path / f"{name}.json")])  # fmt: skip
    from_folder = json.loads((tmp_path / "folder.json").read_text())
    from_shards = json.loads((tmp_path / "shards.json").read_text())
    assert from_shards["n_images"] == from_folder["n_images"] == 96
    assert from_shards["unseen_classes"] == from_folder["unseen_classes"] != []
    for key in ("per_class", "confusion", "ensemble"):
        assert from_shards[key] == from_folder[key]
    assert [t["top1"] for t in from_shards["templates"]] == [t["top1"] for t in from_folder["templates"]]
    # Other batch boundaries move the embeddings by float rounding: the same classes, probabilities to 1e-5.
    exact = ("label", "ensemble", "best_template")
    assert [{k: p[k] for k in exact} for p in from_shards["predictions"]] == [
        {k: p[k] for k in exact} for p in from_folder["predictions"]
    ]
    assert [p["probability"] for p in from_shards["predictions"]] == pytest.approx(
        [p["probability"] for p in from_folder["predictions"]], abs=1e-5
    )
    assert from_shards["predictions"][0]["file"].endswith(
        "data-000000.tar#" + from_folder["predictions"][0]["file"].split("/")[-1]
    )
    (tmp_path / "shards" / "id2label.json").unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "zeroshot",
                "--model",
                str(tiny_clip_dir),
                "--shards",
                pattern,
                "--out",
                str(tmp_path / "x.json"),
            ]
        )
    assert exit_info.value.code == 2 and "pass --class-names" in capsys.readouterr().err
