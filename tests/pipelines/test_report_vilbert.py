"""The report's ViLBERT section: without the study it names the command; with it, the table, the bars, the
chart and the co-attention figures, copied into the report; a name with a path in study.json copies
nothing from outside the run folder."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from vlkit.pipelines.report import write_report

XSS = "<img src=x onerror=alert(1)>"


def _png(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 24), colour).save(path)


def _variant(name: str, vqa: float) -> dict:
    return {
        "name": name, "vqa_accuracy": vqa, "vqa_by_type": {"colour": vqa, "count": vqa / 2},
        "retrieval_r1": 0.4, "refer_accuracy": 0.7, "params": 123456, "train_s": 61.0,
        "seconds_per_step": 0.05, "seeds": [0, 1],
    }  # fmt: skip


def _study(run: Path) -> None:
    folder = run / "vilbert"
    study = {
        "variants": [_variant("two-stream", 0.91), _variant(XSS, 0.5)],
        "baselines": {"question_only": {"vqa_accuracy": 0.42}, "image_only": {"vqa_accuracy": 0.3},
                      "clip": {"retrieval_r1": 0.35}},
        "bars": {"vqa_80": {"text": "two-stream VQA >= 80%", "value": 0.91, "met": True}},
        "pointing": {
            "two-stream": {"layers": {"last": {"pointing_game": 0.6, "random": 0.2, "n_words": 9},
                                      "mean": {"pointing_game": 0.5}}, "figures": ["question_colour.png"]},
            "../../..": {"layers": {}, "figures": ["secret.png"]},
        },
        "seeds": [0, 1], "budget": {"pretrain_steps": 100, "finetune_steps": 200, "batch_size": 32},
    }  # fmt: skip
    folder.mkdir(parents=True)
    (folder / "study.json").write_text(json.dumps(study))
    _png(folder / "study.png", (10, 200, 10))
    _png(folder / "figures" / "two-stream" / "question_colour.png", (200, 10, 10))
    _png(run.parent / "secret.png", (1, 2, 3))


def _section(page: str) -> str:
    return page.split('<section id="vilbert">')[1].split("</section>")[0]


def test_without_the_study_the_section_names_the_command(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    section = _section(write_report(run).read_text())
    assert "vilbert/study.json" in section and "vlkit vilbert study --out RUN_DIR/vilbert" in section


def test_with_the_study_the_section_shows_its_table_bars_chart_and_figures(tmp_path):
    run = tmp_path / "run"
    _study(run)
    index = write_report(run)
    section = _section(index.read_text())
    assert "two-stream" in section and "91.0%" in section and "123,456" in section
    assert "question only baseline" in section and "42.0%" in section and "35.0%" in section
    assert "two-stream VQA &gt;= 80%" in section and "met" in section
    assert XSS not in section and "&lt;img src=x" in section
    assert "60.0%" in section and "by question type" in section
    copied = sorted((index.parent / "assets").iterdir())
    assert len(copied) == 2 and section.count("<img ") == 2  # the chart and one figure; nothing from ../..
