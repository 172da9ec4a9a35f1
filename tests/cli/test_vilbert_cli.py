"""`vlkit vilbert pretrain | finetune | evaluate` end to end on the tiny world, and bad input as one line."""

from __future__ import annotations

import json

import pytest

from vlkit.cli.main import main

TINY = ["--hidden-size", "16", "--heads", "2", "--text-layers", "1", "--vision-layers", "1",
        "--coattention-layers", "1", "--ffn-size", "24", "--batch-size", "4", "--retrieval-rows", "2",
        "--rerank-candidates", "4", "--steps", "2", "--warmup-steps", "1"]  # fmt: skip


def test_pretrain_then_finetune_then_evaluate(shapes_world, tmp_path, capsys):
    cache = ["--feature-cache-dir", str(tmp_path / "cache")]
    world = ["--world", str(shapes_world)]
    main(["vilbert", "pretrain", *world, "--out", str(tmp_path / "pre"), *TINY, *cache])
    assert "saved" in capsys.readouterr().out
    main(["vilbert", "finetune", *world, "--out", str(tmp_path / "ft"), "--init", str(tmp_path / "pre"),
          *TINY, *cache])  # fmt: skip
    out = capsys.readouterr().out
    assert "best validation VQA accuracy" in out and (tmp_path / "ft" / "best" / "config.json").is_file()
    main(
        ["vilbert", "evaluate", "--model", str(tmp_path / "ft"), *world, "--out", str(tmp_path / "eval.json")]
    )
    results = json.loads((tmp_path / "eval.json").read_text())
    expected = {
        "vqa_accuracy",
        "vqa_by_type",
        "vqa_heldout_accuracy",
        "refer_accuracy",
        "refer_baselines",
        "refer_heldout_accuracy",
        "retrieval_r1",
        "retrieval_r5",
        "retrieval_r10",
        "params",
    }
    assert expected <= set(results)
    assert "ranks 4 images" in results["retrieval_protocol"]
    assert "VQA accuracy" in capsys.readouterr().out
    logged = [json.loads(line) for line in (tmp_path / "ft" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [2] and "loss_retrieval" in logged[-1]  # log every 10 and the last


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["vilbert", "pretrain", "--out", "{tmp}/o"], "--world: required"),
        (["vilbert", "pretrain", "--world", "{tmp}/none", "--out", "{tmp}/o"], "folder not found"),
        (["vilbert", "pretrain", "--world", "{tmp}", "--out", "{tmp}/o"], "not a shapes world"),
        (
            ["vilbert", "pretrain", "--world", "{world}", "--out", "{tmp}/o", "--variant", "x"],
            "--variant: unknown",
        ),
        (
            ["vilbert", "pretrain", "--world", "{world}", "--out", "{tmp}/o", "--regions", "x"],
            "--regions: must be",
        ),
        (
            ["vilbert", "pretrain", "--world", "{world}", "--out", "{tmp}/o", "--heads", "3"],
            "--heads: 3 heads",
        ),
        (
            ["vilbert", "finetune", "--world", "{world}", "--out", "{tmp}/o", "--init", "{tmp}"],
            "no config.json",
        ),
        (["vilbert", "evaluate", "--model", "{tmp}/none", "--world", "{world}"], "model folder not found"),
        (["vilbert", "evaluate", "--model", "{tmp}/m", "--world", "{world}"], "not a vlkit VL model"),
    ],
)
def test_vilbert_commands_turn_bad_input_into_one_line_and_exit_2(
    shapes_world, tmp_path, capsys, argv, message
):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(SystemExit) as exit_info:
        main([a.replace("{tmp}", str(tmp_path)).replace("{world}", str(shapes_world)) for a in argv])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error, error
