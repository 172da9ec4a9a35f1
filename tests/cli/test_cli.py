from __future__ import annotations

import json
from pathlib import Path

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


def test_quick_demo_runs_the_whole_study_and_reuses_finished_stages(tmp_path, capsys):
    from vlkit.pipelines.demo import DEMO_METHODS, FIXED_FIGURES

    out = tmp_path / "demo"
    main(["--quiet", "demo", "--out", str(out), "--quick"])
    summary = json.loads((out / "summary.json").read_text())
    # P1: both template sets, each template alone and their ensemble, and one chart of both.
    assert set(summary["zeroshot"]) == {"seed", "imagenet80"}
    for name, count in (("seed", 3), ("imagenet80", 80)):
        result = json.loads((out / "zeroshot" / f"{name}.json").read_text())
        assert len(result["templates"]) == count and 0.0 <= result["ensemble"]["top1"] <= 1.0
    assert (out / "zeroshot" / "prompts.png").stat().st_size > 0
    # P1 beyond zero-shot: the same CLIP's retrieval on the validation captions and its linear probe.
    retrieval = json.loads((out / "clip_eval" / "retrieval.json").read_text())
    clip_eval = summary["clip_eval"]
    assert clip_eval["retrieval"]["image_to_text"] == retrieval["image_to_text"]
    val = json.loads((out / "world" / "val.json").read_text())
    assert clip_eval["retrieval"]["n_images"] == len(val["images"])
    probe = json.loads((out / "clip_eval" / "probe.json").read_text())
    assert clip_eval["probe"]["top1"] == probe["top1"] and clip_eval["probe"]["c"] == probe["c"]
    assert clip_eval["probe"]["untrained_classes"] == len(probe["untrained_classes"]) > 0
    assert probe["top1"] <= clip_eval["probe"]["seen_top1"]  # the untrained classes only count as errors
    # P2: every method on the same budget, the best by CIDEr-D, beside the retrieval baseline.
    captioning = summary["captioning"]
    assert [m["tuning"] for m in captioning["methods"]] == list(DEMO_METHODS)
    for method in captioning["methods"]:
        assert set(method) >= {"tuning", "cider", "clip_score", "chair_i", "trainable_params"}
        assert isinstance(method["trainable_params"], int) and method["trainable_params"] > 0
        assert isinstance(method["cider"], float) and isinstance(method["clip_score"], float)
    assert captioning["best"] == max(captioning["methods"], key=lambda m: m["cider"])["tuning"]
    baseline = captioning["retrieval_baseline"]
    assert set(baseline) == {"cider", "clip_score", "chair_i"} and baseline["cider"] >= 0.0
    sweep = json.loads((out / "sweep" / "SWEEP.json").read_text())
    assert {m["tuning"]: m["cider"] for m in sweep["methods"]} == {
        m["tuning"]: m["cider"] for m in captioning["methods"]
    }
    assert len({m["steps"] for m in _results(out, DEMO_METHODS)}) == 1  # one budget for all
    retrieved = json.loads((out / "sweep" / "retrieval" / "val_predictions.json").read_text())
    train = json.loads((out / "world" / "train.json").read_text())
    references = {annotation["caption"] for annotation in train["annotations"]}
    assert retrieved and set(retrieved.values()) <= references  # each one a training caption
    best_metrics = json.loads((out / "captions" / "evaluation" / "metrics.json").read_text())
    assert best_metrics["metrics"]["cider"]["value"] == pytest.approx(
        next(m["cider"] for m in captioning["methods"] if m["tuning"] == captioning["best"])
    )
    # P3: the five fixed images and the top-1 / last-1 by CLIPScore drawn; grounding for the best.
    p3 = captioning["attention"]
    assert len(p3["fixed"]) == FIXED_FIGURES
    for stem in p3["fixed"] + [Path(p3[k]["file_name"]).stem for k in ("top_1", "last_1")]:
        assert (out / "attention" / "figures" / f"{stem}.png").is_file(), stem
    assert p3["top_1"]["clip_score"] >= p3["last_1"]["clip_score"]
    assert set(summary["grounding"]) >= {"aggregations", "baselines"}
    assert set(summary["bars"]) >= {"chair_i_at_most_half_retrieval", "pointing_game_15_above_centre"}
    page = (out / "report" / "index.html").read_text()
    sections = ("P1 · Zero-shot", "<b>retrieval</b>", "<b>linear probe</b>", "P2 · The tuning methods")
    for section in (*sections, "P3 · Attention maps", "(best)"):
        assert section in page
    # A second run reuses every stage: no model trained again, every stage folder reported reused.
    weights = {m: (out / "sweep" / m / "model.safetensors").stat().st_mtime_ns for m in DEMO_METHODS}
    capsys.readouterr()
    main(["--quiet", "demo", "--out", str(out), "--quick"])
    assert {m: (out / "sweep" / m / "model.safetensors").stat().st_mtime_ns for m in DEMO_METHODS} == weights
    said = "".join(capsys.readouterr().out.split())  # (rich wraps long lines, paths included)
    for folder in ("clip", "lm", "zeroshot", "clip_eval", "sweep", "captions", "attention"):
        assert f"reusing{out / folder}(complete" in said, folder


def _results(out, methods):
    return [json.loads((out / "sweep" / m / "vlkit_caption_result.json").read_text()) for m in methods]
