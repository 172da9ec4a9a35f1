from __future__ import annotations

import json

import pytest
import typer.main
from rich.text import Text

from vlkit.cli.main import app, main


def _command_paths(group, prefix=()):
    for name, command in getattr(group, "commands", {}).items():
        yield (*prefix, name)
        yield from _command_paths(command, (*prefix, name))


COMMANDS = sorted(_command_paths(typer.main.get_command(app)))


def test_every_command_is_listed():
    assert {("data", "shapes"), ("data", "inspect"), ("clip", "train"), ("zeroshot",), ("demo",)} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help(path, capsys):
    assert main([*path, "--help"]) is None
    out = capsys.readouterr().out
    assert "Usage:" in out and len(out.strip().splitlines()) > 3


def _command_at(path):
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_no_option_help_loses_text_to_rich_markup(path):
    # Help renders with rich markup, which swallows "[the embedded default]" whole as an unknown style.
    for param in _command_at(path).params:
        text = getattr(param, "help", None) or ""
        assert Text.from_markup(text).plain == text, param.name


def test_unknown_option_is_a_usage_error_with_exit_code_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["zeroshot", "--no-such-option"])
    assert exit_info.value.code == 2
    assert "No such option" in capsys.readouterr().err


def test_debug_shows_the_traceback_that_is_otherwise_hidden(tmp_path, capsys):
    from vlkit.errors import VlkitError

    with pytest.raises(SystemExit):
        main(["data", "inspect", str(tmp_path / "missing.json")])
    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(VlkitError):
        main(["--debug", "data", "inspect", str(tmp_path / "missing.json")])


def test_quick_demo_runs_the_whole_path_and_reuses_finished_stages(tmp_path, capsys):
    out = tmp_path / "demo"
    main(["--quiet", "demo", "--out", str(out), "--quick"])
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["zeroshot"]) == {"seed", "imagenet80"}
    baseline = summary["captioning"]["retrieval_baseline"]
    assert baseline["cider"]["value"] >= 0.0 and "chair_i" in baseline
    retrieved = json.loads((out / "captions" / "retrieval_predictions.json").read_text())
    train = json.loads((out / "world" / "train.json").read_text())
    references = {annotation["caption"] for annotation in train["annotations"]}
    assert retrieved and set(retrieved.values()) <= references  # each one a training caption
    assert all((out / "attention" / name).is_file() for name in ("grounding.json", "captions.json"))
    assert '<section id="pairs">' in (out / "report" / "index.html").read_text()
    for name in ("seed", "imagenet80"):
        result = json.loads((out / "zeroshot" / f"{name}.json").read_text())
        assert 0.0 <= result["ensemble"]["top1"] <= 1.0
    weights = (out / "clip" / "model.safetensors").stat().st_mtime_ns
    main(["--quiet", "demo", "--out", str(out), "--quick"])
    assert (out / "clip" / "model.safetensors").stat().st_mtime_ns == weights
    assert "reusing" in capsys.readouterr().out
