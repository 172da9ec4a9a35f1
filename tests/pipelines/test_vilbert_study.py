"""`vlkit vilbert study --quick`: the whole path (world, features, every model and baseline trained and
evaluated, the CLIP baseline, study.json / study.md / study.png / figures) in seconds, study.json in the
issue's layout, a second run that trains nothing, and the report's section reading it."""

from __future__ import annotations

import json

import pytest

from vlkit.cli.main import main
from vlkit.pipelines.report import write_report
from vlkit.pipelines.vilbert_study import StudyRequest, run_study
from vlkit.pipelines.vilbert_study_runs import BASELINE_MODELS, MODELS

VARIANT_KEYS = {"name", "vqa_accuracy", "vqa_by_type", "retrieval_r1", "refer_accuracy", "params", "train_s"}
QUESTION_TYPES = {"colour", "count", "exists", "relation"}


def _unit(value) -> bool:
    return isinstance(value, float) and 0.0 <= value <= 1.0


def test_the_quick_study_writes_its_figures_and_a_rerun_trains_nothing(tmp_path, monkeypatch):
    out = tmp_path / "run" / "vilbert"
    main(["--quiet", "vilbert", "study", "--out", str(out), "--quick"])
    study = json.loads((out / "study.json").read_text())
    names = [v["name"] for v in study["variants"]]
    assert names == [name for name in MODELS if name not in BASELINE_MODELS]
    for variant in study["variants"]:
        assert VARIANT_KEYS <= set(variant), variant["name"]
        assert all(_unit(variant[k]) for k in ("vqa_accuracy", "retrieval_r1", "refer_accuracy"))
        assert set(variant["vqa_by_type"]) == QUESTION_TYPES
        assert isinstance(variant["params"], int) and variant["params"] > 0 and variant["train_s"] > 0
        assert variant["seconds_per_step"] > 0 and variant["seeds"] == [0]
        assert variant["pretrain_step_s"] > 0 and variant["finetune_step_s"] > 0  # measured side by side
    counts = {v["name"]: v["params"] for v in study["variants"]}
    for peer in ("lxmert", "visualbert", "no-standard-layers"):  # sized to the two-stream model's count
        assert abs(counts[peer] - counts["two-stream"]) / counts["two-stream"] < 0.05, peer
    baselines = study["baselines"]
    assert _unit(baselines["question_only"]["vqa_accuracy"])
    assert _unit(baselines["image_only"]["vqa_accuracy"])
    assert _unit(baselines["clip"]["retrieval_r1"])
    assert {bar["met"] for bar in study["bars"].values()} <= {True, False}
    assert study["seeds"] == [0] and study["quick"] is True
    figures = study["pointing"]["two-stream"]["figures"]
    assert figures and all((out / "figures" / "two-stream" / name).is_file() for name in figures)
    assert (out / "study.png").read_bytes()[:4] == b"\x89PNG"
    table = (out / "study.md").read_text()
    assert "| two-stream |" in table and "| lxmert |" in table and "| *question-only* |" in table

    def refuse(*args, **kwargs):
        raise AssertionError("a rerun trained a model")

    monkeypatch.setattr("vlkit.train.vilbert_trainer.pretrain", refuse)
    monkeypatch.setattr("vlkit.train.vilbert_trainer.finetune", refuse)
    again = run_study(StudyRequest(out=out, quick=True))
    assert [v["vqa_accuracy"] for v in again["variants"]] == [v["vqa_accuracy"] for v in study["variants"]]
    page = write_report(out.parent).read_text()
    section = page.split('<section id="vilbert">')[1].split("</section>")[0]
    assert "two-stream" in section and "visualbert" in section and section.count("<img ") == 1 + len(figures)


def test_a_study_of_an_unknown_world_is_one_line(tmp_path):
    with pytest.raises(SystemExit) as stopped:
        main(["--quiet", "vilbert", "study", "--out", str(tmp_path / "s"), "--world", str(tmp_path / "none")])
    assert stopped.value.code == 2
