"""`vlkit --allow-pickle`: a model folder holding only pytorch_model.bin is refused without the option (exit
code 2, one line naming the folder and the option) and loads with it, through torch.load(weights_only=True),
so a pickle that would run code is still refused. The option travels in typer's context, never in a module
global: a run without it after a run with it is refused again."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.models.tiny import save_tiny_clip
from vlkit.cli import context as cli_context
from vlkit.cli import main as cli_main
from vlkit.cli.main import main
from vlkit.models import clip as clip_module


class _Payload:
    """Unpickling this runs code (it creates `marker`): what a hostile pytorch_model.bin can carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """A seeded tiny CLIP saved as safetensors, and two copies holding only a pickled pytorch_model.bin: the
    same weights (benign), and the same weights plus a code-running object (hostile)."""
    root = tmp_path_factory.mktemp("pickled-clips")
    source = save_tiny_clip(root / "source", seed=0)
    state = load_file(str(source / "model.safetensors"))
    marker = root / "payload-ran"

    def pickled_copy(name: str, weights: dict) -> Path:
        folder = root / name
        shutil.copytree(source, folder)
        (folder / "model.safetensors").unlink()
        torch.save(weights, folder / "pytorch_model.bin")
        return folder

    return {
        "source": source,
        "benign": pickled_copy("benign", state),
        "hostile": pickled_copy("hostile", {**state, "extra": _Payload(marker)}),
        "marker": marker,
    }


@pytest.fixture
def offline(monkeypatch, tmp_path):
    # The folders are local; nothing may reach for the hub (huggingface_hub reads HF_HUB_OFFLINE at import).
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


def _zeroshot(model: Path, world: Path, out: Path, *root_options: str) -> list[str]:
    data = world / "classification" / "val"
    return ["--quiet", *root_options, "zeroshot", "--model", str(model), "--data", str(data),
            "--templates", "seed", "--device", "cpu", "--out", str(out)]  # fmt: skip


def _refused(argv: list[str], capsys, warned: bool = False) -> str:
    """Run the CLI expecting exit code 2 and return its one error line. Before it, stderr holds nothing, or
    (`warned`: with --allow-pickle) only the warning that pickled weights are being loaded."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err, err
    *before, error = err.strip().splitlines()
    assert error.startswith("error:"), err
    warning = " ".join(" ".join(before).split())  # rich wraps a log record at the console width
    if warned:
        assert warning.startswith("WARNING") and "loading pickled weights" in warning, err
    else:
        assert not warning, err
    return error


def _module_state() -> dict[str, object]:
    """The dict-valued globals of the CLI and the CLIP loader: where an option set as a global would live."""
    modules = (cli_main, cli_context, clip_module)
    return {
        f"{module.__name__}.{name}": copy.deepcopy(value)
        for module in modules
        for name, value in vars(module).items()
        if isinstance(value, dict) and not name.startswith("__")
    }


def test_pickle_only_folder_is_refused_without_the_option(clips, shapes_world, tmp_path, capsys, offline):
    out = tmp_path / "zs.json"
    message = _refused(_zeroshot(clips["benign"], shapes_world, out), capsys)
    assert str(clips["benign"]) in message
    assert "pytorch_model.bin" in message and "vlkit --allow-pickle COMMAND" in message
    assert not out.exists()


def test_allow_pickle_loads_the_pickled_weights_then_the_next_run_refuses_again(
    clips, shapes_world, tmp_path, capsys, offline
):
    before = _module_state()
    safe_out, pickled_out = tmp_path / "safe.json", tmp_path / "pickled.json"
    main(_zeroshot(clips["source"], shapes_world, safe_out))  # the same weights as safetensors
    capsys.readouterr()
    main(_zeroshot(clips["benign"], shapes_world, pickled_out, "--allow-pickle"))  # returns: exit code 0
    err = capsys.readouterr().err
    assert "loading pickled weights" in " ".join(err.split()) and "weights_only=True" in err
    pickled, safe = json.loads(pickled_out.read_text()), json.loads(safe_out.read_text())
    assert pickled["n_images"] == safe["n_images"] > 0
    assert pickled["ensemble"] == safe["ensemble"]  # the very same weights were loaded
    # The option lived in that run's typer context only: nothing global changed, the next run refuses.
    assert _module_state() == before
    assert not hasattr(clip_module, "set_allow_pickle") and not hasattr(clip_module, "_PICKLE")
    _refused(_zeroshot(clips["benign"], shapes_world, tmp_path / "again.json"), capsys)


def test_allow_pickle_still_refuses_a_pickle_that_would_run_code(
    clips, shapes_world, tmp_path, capsys, offline
):
    out = tmp_path / "zs.json"
    message = _refused(_zeroshot(clips["hostile"], shapes_world, out, "--allow-pickle"), capsys, warned=True)
    assert str(clips["hostile"]) in message and "cannot load a CLIP from this folder" in message
    assert not clips["marker"].exists()  # torch.load(weights_only=True) refused the object unrun
    assert not out.exists()


def test_evaluate_and_caption_train_read_the_option_from_the_context(
    clips, shapes_world, tmp_path, capsys, offline
):
    """The other commands that load pretrained weights by name refuse the pickle-only folder without the
    option, naming it, and get past that check with it (CLIPScore computed; a captioner trained)."""
    val = json.loads((shapes_world / "val.json").read_text())
    predictions = tmp_path / "pred.json"
    predictions.write_text(json.dumps({Path(i["file_name"]).stem: "a red circle" for i in val["images"]}))
    evaluate = ["evaluate", "--predictions", str(predictions),
                "--annotations", str(shapes_world / "val.json"),
                "--images", str(shapes_world / "images"), "--out", str(tmp_path / "eval"),
                "--model", str(clips["benign"]), "--metrics", "clip_score", "--device", "cpu",
                "--top-k", "0"]  # fmt: skip
    message = _refused(["--quiet", *evaluate], capsys)
    assert str(clips["benign"]) in message and "--allow-pickle" in message
    main(["--quiet", "--allow-pickle", *evaluate])
    assert "loading pickled weights" in " ".join(capsys.readouterr().err.split())
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]
    assert isinstance(metrics["clip_score"]["value"], float)

    from tests.models.tiny_captioner import save_tiny_gpt2

    gpt2 = save_tiny_gpt2(tmp_path / "gpt2")
    out = tmp_path / "captioner"
    train = ["caption", "train", "--data", str(shapes_world), "--encoder", str(clips["benign"]), "--decoder",
             str(gpt2), "--out", str(out), "--steps", "1", "--batch-size", "4", "--val-limit", "1",
             "--max-caption-tokens", "8", "--mixed-precision", "no", "--tuning", "cross-attn"]  # fmt: skip
    message = _refused(["--quiet", *train], capsys)
    assert str(clips["benign"]) in message and "--allow-pickle" in message
    main(["--quiet", "--allow-pickle", *train])
    assert "loading pickled weights" in " ".join(capsys.readouterr().err.split())
    assert (out / "model.safetensors").is_file()  # the trained captioner itself is saved as safetensors
