from __future__ import annotations

import json
import shutil

import pytest

from tests.models.tiny import save_tiny_clip
from vlkit.cli.main import main
from vlkit.zeroshot.templates import SEED_TEMPLATES


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("probe-cli") / "clip")


def _probe(clip, train, test, out, *more) -> list[str]:
    return ["probe", "--model", str(clip), "--train", str(train), "--test", str(test), "--out", str(out),
            "--device", "cpu", *more]  # fmt: skip


def test_probe_writes_p_json_beside_the_zero_shot_figure(tiny_clip_dir, shapes_world, tmp_path):
    folders = shapes_world / "classification"
    out = tmp_path / "P.json"
    main(["--quiet", *_probe(tiny_clip_dir, folders / "train", folders / "val", out, "--seed", "2")])
    result = json.loads(out.read_text())
    assert {"top1", "top5", "per_class", "c", "n_train", "n_test", "n_val", "few_shot", "seed", "model",
            "train", "test", "precision", "c_search", "zeroshot"} <= set(result)  # fmt: skip
    assert (result["n_train"], result["n_val"], result["n_test"]) == (80, 40, 96)  # 40 classes x 2; 48 x 2
    assert result["precision"] == "fp32" and result["seed"] == 2 and result["few_shot"] is None
    assert len(result["per_class"]) == 48 and len(result["untrained_classes"]) == 8
    assert all(result["per_class"][name] == 0.0 for name in result["untrained_classes"])
    assert result["c"] in {trial["c"] for trial in result["c_search"]}
    assert set(result["zeroshot"]) >= {"top1", "top5", "templates"}
    assert result["zeroshot"]["templates"] == list(SEED_TEMPLATES)
    for value in (result["top1"], result["top5"], result["zeroshot"]["top1"], result["zeroshot"]["top5"]):
        assert 0.0 <= value <= 1.0


def _empty(tmp_path, folders):
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(folders / "train" / "id2label.json", empty / "id2label.json")
    return ["--train", str(empty)], f"{empty}: no image files beside id2label.json"


def _other_classes(tmp_path, folders):
    other = tmp_path / "other"
    other.mkdir()
    (other / "id2label.json").write_text(json.dumps({"0": "red circle", "1": "dragon"}))
    shutil.copy(next((folders / "val").glob("1_*.png")), other / "1_0.png")
    expected = f"{folders / 'train'} and {other} name different classes: 48 classes against 2"
    return ["--test", str(other)], expected


@pytest.mark.parametrize(
    "case",
    [
        lambda tmp, folders: (
            ["--few-shot", "3"],
            "--few-shot: class 'red square' has 2 training images, fewer than 3",
        ),  # fmt: skip
        _empty,
        _other_classes,
        lambda tmp, folders: (["--test", str(folders / "train")], "--train and --test are the same folder"),
        lambda tmp, folders: (["--val-fraction", "1"], "--val-fraction: must be between 0 and 1, got 1.0"),
    ],
    ids=["k-too-large", "empty-split", "mismatched-classes", "same-folder", "val-fraction"],
)
def test_probe_bad_input_is_one_line_naming_the_option_or_folder(
    case, tiny_clip_dir, shapes_world, tmp_path, capsys
):
    folders = shapes_world / "classification"
    more, message = case(tmp_path, folders)
    # A case's own --train or --test replaces the default one (both options can be repeated for a table).
    given = dict(zip(more[::2], more[1::2], strict=False))
    train, test = given.pop("--train", folders / "train"), given.pop("--test", folders / "val")
    more = [item for pair in given.items() for item in pair]
    with pytest.raises(SystemExit) as exit_info:
        main(_probe(tiny_clip_dir, train, test, tmp_path / "P.json", *more))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "P.json").exists()
