"""The bad-input corpus, across the commands: each case ends with exit code 2 and one line naming the file,
entry or option at fault (never a traceback), or is handled (odd but valid images are converted and
captioned). README's "Bad input" counts these cases."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.data import badfiles
from tests.models.tiny_captioner import save_tiny_parts
from vlkit.cli.main import main
from vlkit.models.captioner.model import CaptionerSpec, build_captioner
from vlkit.runtime import progress


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-input-models")
    clip, _, gpt2 = save_tiny_parts(root)
    captioner = build_captioner(CaptionerSpec(str(clip), str(gpt2), "cross-attn", max_caption_tokens=6))
    return {"clip": clip, "captioner": captioner.save(root / "captioner")}


def _predict(make: Callable[[Path], Path]):
    """`vlkit caption predict` on a folder holding one file made by `make`."""

    def args(tmp: Path, world: Path, models: dict[str, Path]) -> list[str]:
        folder = tmp / "images"
        folder.mkdir()
        make(folder)
        return [
            "caption",
            "predict",
            "--model",
            str(models["captioner"]),
            "--images",
            str(folder),
            "--out",
            str(tmp / "pred.json"),
        ]

    return args


def _evaluate(tmp: Path, annotations: Path, images: Path) -> list[str]:
    """`vlkit evaluate` of TMP/pred.json against `annotations`, CIDEr-D only (the option --metrics last)."""
    return ["evaluate", "--predictions", str(tmp / "pred.json"), "--annotations", str(annotations),
            "--images", str(images), "--out", str(tmp / "out"), "--metrics", "cider"]  # fmt: skip


def _annotations(edit: Callable[[dict], dict | list | str | bytes]):
    """`vlkit evaluate` against the tiny world's val.json after `edit` (bytes and str are written as is)."""

    def args(tmp: Path, world: Path, models: dict[str, Path]) -> list[str]:
        data = json.loads((world / "val.json").read_text())
        predictions = {Path(image["file_name"]).stem: "a red circle" for image in data["images"]}
        (tmp / "pred.json").write_text(json.dumps(predictions))
        edited = edit(data)
        ann = tmp / "ann.json"
        if isinstance(edited, bytes):
            ann.write_bytes(edited)
        else:
            ann.write_text(edited if isinstance(edited, str) else json.dumps(edited))
        return _evaluate(tmp, ann, world / "images")

    return args


def _predictions(edit: Callable[[dict], object]):
    """`vlkit evaluate` with predictions edited by `edit` (a str is written as is)."""

    def args(tmp: Path, world: Path, models: dict[str, Path]) -> list[str]:
        data = json.loads((world / "val.json").read_text())
        predictions = edit({Path(image["file_name"]).stem: "a red circle" for image in data["images"]})
        text = predictions if isinstance(predictions, str) else json.dumps(predictions)
        (tmp / "pred.json").write_text(text)
        return _evaluate(tmp, world / "val.json", world / "images")

    return args


def _zeroshot(templates: str | None = None, id2label: dict | None = None, model: str | None = None):
    """`vlkit zeroshot` on a copy of the tiny world's classification set, with optional changes."""

    def args(tmp: Path, world: Path, models: dict[str, Path]) -> list[str]:
        data = tmp / "classif"
        shutil.copytree(world / "classification" / "val", data)
        if id2label is not None:
            (data / "id2label.json").write_text(json.dumps(id2label))
        chosen = "seed"
        if templates is not None:
            (tmp / "templates.txt").write_text(templates)
            chosen = str(tmp / "templates.txt")
        name = models["clip"] if model is None else model.format(tmp=tmp, clip=models["clip"])
        return [
            "zeroshot",
            "--model",
            str(name),
            "--data",
            str(data),
            "--templates",
            chosen,
            "--out",
            str(tmp / "zs.json"),
        ]

    return args


def _no_weights(tmp: Path, world: Path, models: dict[str, Path]) -> list[str]:
    folder = tmp / "clip"
    shutil.copytree(models["clip"], folder)
    (folder / "model.safetensors").unlink()
    return _zeroshot(model=str(folder))(tmp, world, models)


def _model_file(tmp: Path, world: Path, models: dict[str, Path]) -> list[str]:
    (tmp / "model.txt").write_text("not a model")
    return _zeroshot(model=str(tmp / "model.txt"))(tmp, world, models)


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    """A tar shard holding `members` (name: bytes)."""
    import io
    import tarfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _predict_shard(members: dict[str, bytes] | bytes):
    """`vlkit caption predict --shards` on one shard (raw bytes: a file that is not a tar)."""

    def args(tmp: Path, world: Path, models: dict[str, Path]) -> list[str]:
        shard = tmp / "shards" / "data-000000.tar"
        if isinstance(members, bytes):
            shard.parent.mkdir()
            shard.write_bytes(members)
        else:
            _tar(shard, members)
        return ["caption", "predict", "--model", str(models["captioner"]), "--shards", str(shard),
                "--out", str(tmp / "pred.json")]  # fmt: skip

    return args


def _train_shards(*extra: str):
    def args(tmp: Path, world: Path, models: dict[str, Path]) -> list[str]:
        shard = tmp / "shards" / "data-000000.tar"
        shard.parent.mkdir()
        shard.write_bytes(b"not a tar at all" * 100)
        return ["caption", "train", "--train-shards", str(shard), "--encoder", str(models["clip"]),
                "--decoder", str(models["captioner"]), "--out", str(tmp / "cap"), *extra]  # fmt: skip

    return args


def _unlabelled_classification_shard(tmp: Path, world: Path, models: dict[str, Path]) -> list[str]:
    png = next((world / "classification" / "val").glob("*.png")).read_bytes()
    shard = _tar(tmp / "classes" / "data-000000.tar", {"a.png": png, "a.json": b'{"file_name": "a.png"}'})
    (tmp / "classes" / "id2label.json").write_text('{"0": "red circle"}')
    return ["zeroshot", "--model", str(models["clip"]), "--shards", str(shard), "--out", str(tmp / "zs.json")]


def _first_image(data: dict) -> dict:
    return data["images"][0]


def _with(data: dict, change: Callable[[dict], None]) -> dict:
    change(data)
    return data


ERRORS: dict[str, tuple[Callable, str]] = {
    "zero-byte image": (_predict(badfiles.make_zero_byte), "empty.png"),
    "truncated PNG": (_predict(badfiles.make_truncated_png), "truncated.png"),
    "truncated JPEG": (_predict(badfiles.make_truncated_jpeg), "truncated.jpg"),
    "random bytes named .png": (_predict(badfiles.make_random_bytes), "not an image file"),
    "text file named .png": (_predict(badfiles.make_text_named_png), "not an image file"),
    "decompression bomb": (_predict(badfiles.make_bomb_png), "decompression bomb"),
    "folder without images": (_predict(badfiles.make_directory), "no image files"),
    "missing image folder": (
        lambda t, w, m: [
            "caption",
            "predict",
            "--model",
            str(m["captioner"]),
            "--images",
            str(t / "nowhere"),
            "--out",
            str(t / "p.json"),
        ],
        "folder not found",
    ),
    "malformed annotation JSON": (_annotations(lambda d: '{"images": ['), "ann.json"),
    "annotations of the wrong schema": (_annotations(lambda d: [1, 2, 3]), "ann.json"),
    "duplicate image ids": (
        _annotations(lambda d: _with(d, lambda x: x["images"].append(dict(x["images"][0])))),
        "duplicate",
    ),
    "caption for an image that is not listed": (
        _annotations(
            lambda d: _with(
                d,
                lambda x: x["annotations"].append(
                    {"id": 10**6, "image_id": 999_999, "caption": "a red circle"}
                ),
            )
        ),
        "999999",
    ),
    "file name escaping the image root": (
        _annotations(lambda d: _with(d, lambda x: _first_image(x).update(file_name="../../etc/passwd"))),
        "escapes the image root",
    ),
    "missing image file": (
        _annotations(lambda d: _with(d, lambda x: _first_image(x).update(file_name="nope.png"))),
        "nope.png",
    ),
    "a directory where an image should be": (
        _annotations(lambda d: _with(d, lambda x: _first_image(x).update(file_name="."))),
        "ann.json",
    ),
    "non-UTF-8 annotation file": (
        _annotations(lambda d: json.dumps(d).encode().replace(b'"caption": "', b'"caption": "\xff', 1)),
        "ann.json",
    ),
    "empty reference caption": (
        _annotations(lambda d: _with(d, lambda x: x["annotations"][0].update(caption="   "))),
        "empty",
    ),
    "template without {object}": (_zeroshot(templates="a photo of a thing\n"), "{object}"),
    "empty class list": (_zeroshot(id2label={}), "id2label.json"),
    "class name missing for a label": (_zeroshot(id2label={"0": "red circle"}), "id2label.json"),
    "unknown model name": (_zeroshot(model="no-such-org/no-such-model-xyz"), "no-such-org/no-such-model-xyz"),
    "model folder without weights": (_no_weights, "model.safetensors"),
    "a file where a model folder should be": (_model_file, "expected a model folder"),
    "predictions missing images": (_predictions(lambda p: dict(list(p.items())[:3])), "pred.json"),
    "predictions for unknown images": (
        _predictions(lambda p: {**p, "not_an_image": "a cat"}),
        "not_an_image",
    ),
    "predictions that are not JSON": (_predictions(lambda p: "{oops"), "pred.json"),
    "a prediction that is not a string": (_predictions(lambda p: {**p, next(iter(p)): 42}), "pred.json"),
    "an unknown metric": (lambda t, w, m: [*_predictions(lambda p: p)(t, w, m)[:-1], "bleu5"], "bleu5"),
    "a shard that is not a tar (predict)": (
        _predict_shard(b"not a tar at all" * 100),
        "data-000000.tar: not a readable tar shard",
    ),
    "a shard that is not a tar (train)": (_train_shards(), "data-000000.tar: not a readable tar shard"),
    "a shard sample with a broken image": (
        _predict_shard({"k.png": b"\x89PNG broken", "k.json": b"{}"}),
        "data-000000.tar: sample k: not an image file that can be read",
    ),
    "a shard sample without its .json": (
        _predict_shard({"k.png": b"x"}),
        "needs an image (.png/.jpg) and a .json",
    ),
    "a classification shard sample without a label": (_unlabelled_classification_shard, "integer `label`"),
    "a negative shuffle buffer": (
        _train_shards("--shuffle-buffer", "-1"),
        "--shuffle-buffer: must be 0 or more",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_gives_one_line_and_exit_code_2(case, shapes_world, models, tmp_path, capsys, monkeypatch):
    # No hub here: an unknown model name must fail from the offline cache, as on a user's offline machine.
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: set the constant it reads.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    make_args, expected = ERRORS[case]
    args = make_args(tmp_path, shapes_world, models)
    with pytest.raises(SystemExit) as exit_info:
        main(["--quiet", *args])  # --quiet: the error line is all that stderr holds
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err
    # One line: main prints the error with soft_wrap=True, so rich never wraps it at the console width, and
    # --quiet leaves no info logging or progress bar to precede it.
    message = err.strip()
    assert "\n" not in message, err
    assert message.startswith("error:") and expected in message, message


HANDLED = {
    "PNG named .jpg": badfiles.make_png_named_jpg,
    "CMYK JPEG": badfiles.make_cmyk_jpeg,
    "16-bit grayscale PNG": badfiles.make_gray16_png,
    "palette PNG with transparency": badfiles.make_palette_png_with_transparency,
    "gray + alpha PNG": badfiles.make_la_png,
    "RGBA PNG": badfiles.make_rgba_png,
    "1x1 image": badfiles.make_one_pixel,
    "1-bit PNG": badfiles.make_one_bit_png,
}


@pytest.mark.parametrize("case", list(HANDLED))
def test_odd_but_valid_images_are_converted_and_captioned(case, shapes_world, models, tmp_path):
    args = _predict(HANDLED[case])(tmp_path, shapes_world, models)
    main(["--quiet", *args])
    predictions = json.loads((tmp_path / "pred.json").read_text())
    assert len(predictions) == 1 and isinstance(next(iter(predictions.values())), str)


def test_a_10000_word_caption_is_scored_not_crashed(shapes_world, tmp_path):
    data = json.loads((shapes_world / "val.json").read_text())
    predictions = {Path(image["file_name"]).stem: "a red circle" for image in data["images"]}
    predictions[next(iter(predictions))] = " ".join(["red circle"] * 5000)
    (tmp_path / "pred.json").write_text(json.dumps(predictions))
    main(
        [
            "--quiet",
            "evaluate",
            "--predictions",
            str(tmp_path / "pred.json"),
            "--annotations",
            str(shapes_world / "val.json"),
            "--images",
            str(shapes_world / "images"),
            "--out",
            str(tmp_path / "o"),
            "--metrics",
            "cider,chair",
        ]
    )
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())["metrics"]
    assert metrics["cider"]["value"] >= 0.0


def test_a_class_name_with_braces_is_a_name_not_a_template(shapes_world, models, tmp_path):
    id2label = {
        str(i): name
        for i, name in enumerate(
            json.loads((shapes_world / "classification" / "val" / "id2label.json").read_text()).values()
        )
    }
    id2label["0"] = "red {circle}"
    main(["--quiet", *_zeroshot(id2label=id2label)(tmp_path, shapes_world, models)])
    result = json.loads((tmp_path / "zs.json").read_text())
    assert "red {circle}" in result["class_names"]


def test_the_corpus_has_at_least_25_cases():
    assert len(ERRORS) + len(HANDLED) + 2 >= 25


# The conftest's cli_global_state fixture restores what an in-process main() without --quiet changes: the
# first test changes it, the next (pytest runs a module's tests in order) finds it as the first found it.
_STATE_BEFORE: dict[str, object] = {}


def _cli_state() -> dict[str, object]:
    root = logging.getLogger()
    own = [h for h in root.handlers if not type(h).__module__.startswith("_pytest.")]
    return {"progress": progress.is_enabled(), "level": root.level, "handlers": own}


def test_main_without_quiet_turns_progress_and_logging_on():
    _STATE_BEFORE.update(_cli_state())
    assert _STATE_BEFORE["progress"] is False  # as the conftest set it
    assert main(["data", "--help"]) is None  # the root callback runs, without --quiet, before the help
    after = _cli_state()
    assert after["progress"] is True and after["level"] == logging.INFO
    assert [type(h).__name__ for h in after["handlers"]] == ["RichHandler"]
    assert after != _STATE_BEFORE


def test_the_next_test_finds_the_state_the_previous_one_found():
    if not _STATE_BEFORE:
        pytest.skip("runs after test_main_without_quiet_turns_progress_and_logging_on")
    assert _cli_state() == _STATE_BEFORE
    assert progress.is_enabled() is False
