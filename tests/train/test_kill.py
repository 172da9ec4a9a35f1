"""Interrupted training loses nothing: `vlkit clip train` and `vlkit caption train` (from a folder, and from
WebDataset shards read as a stream) killed with SIGKILL at several moments (one of them half way through
writing a checkpoint), resumed each time, end with the very weights of an uninterrupted run with the same
seed and step count."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.models.tiny_captioner import save_tiny_parts
from vlkit.train.checkpoint import is_complete

STEPS = 12
# (kill once the checkpoint of this step is complete, after this many more seconds); None: kill half way
# through writing a checkpoint. Checkpoints come every 2 steps.
MOMENTS: list[tuple[int, float] | None] = [(2, 0.0), (4, 0.05), None, (8, 0.02), (10, 0.08)]


def _env(pause_in_checkpoint: bool = False) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VLKIT_PROGRESS": "0"}
    env.pop("VLKIT_FAULT_PAUSE_IN_CHECKPOINT", None)
    if pause_in_checkpoint:
        env["VLKIT_FAULT_PAUSE_IN_CHECKPOINT"] = "30"
    return env


PROGRAM = "import torch; torch.set_num_threads(1); from vlkit.cli.main import main; main()"


def _command(args: list[str]) -> list[str]:
    return [sys.executable, "-c", PROGRAM, "--quiet", *args]


def _checkpointed_step(out: Path) -> int:
    steps = [
        int(path.name.split("-")[1]) for path in (out / "checkpoints").glob("step-*") if is_complete(path)
    ]
    return max(steps, default=0)


def _half_written_checkpoint(out: Path) -> bool:
    return any((tmp / "model.safetensors").is_file() for tmp in (out / "checkpoints").glob(".tmp-step-*"))


def _kill_when(args: list[str], out: Path, moment: tuple[int, float] | None) -> None:
    process = subprocess.Popen(_command(args), env=_env(moment is None), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(
                    f"training ended before the kill (code {process.returncode}): {process.stderr.read()}"
                )
            ready = _half_written_checkpoint(out) if moment is None else _checkpointed_step(out) >= moment[0]
            if ready:
                time.sleep(0 if moment is None else moment[1])
                break
            time.sleep(0.01)
        else:
            pytest.fail("the kill moment never came")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    if moment is None:  # the partial checkpoint is left behind, and it is not a complete one
        assert _half_written_checkpoint(out)


def _interrupted_equals_uninterrupted(args: list[str], out: Path, reference: Path) -> None:
    subprocess.run(_command([*args, "--out", str(reference)]), env=_env(), check=True, capture_output=True)
    for i, moment in enumerate(MOMENTS):
        _kill_when([*args, "--out", str(out), *(["--resume"] if i else [])], out, moment)
        done = sorted((out / "checkpoints").glob("step-*"))
        assert all(is_complete(path) for path in done)  # a killed run never leaves a complete-looking partial
    subprocess.run(
        _command([*args, "--out", str(out), "--resume"]), env=_env(), check=True, capture_output=True
    )
    expected, got = load_file(str(reference / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == STEPS  # the log has no step twice


def test_clip_train_killed_five_times_ends_with_the_uninterrupted_weights(shapes_world, tmp_path):
    args = ["clip", "train", "--data", str(shapes_world), "--steps", str(STEPS), "--batch-size", "8",
            "--checkpoint-every", "2", "--mixed-precision", "no"]  # fmt: skip
    _interrupted_equals_uninterrupted(args, tmp_path / "killed", tmp_path / "reference")


def test_caption_train_killed_five_times_ends_with_the_uninterrupted_weights(shapes_world, tmp_path):
    clip, _, gpt2 = save_tiny_parts(tmp_path / "parts")
    args = ["caption", "train", "--data", str(shapes_world), "--encoder", str(clip), "--decoder", str(gpt2),
            "--tuning", "lora", "--steps", str(STEPS), "--batch-size", "8", "--checkpoint-every", "2",
            "--mixed-precision", "no", "--val-limit", "4"]  # fmt: skip
    _interrupted_equals_uninterrupted(args, tmp_path / "killed", tmp_path / "reference")


def test_caption_train_from_shards_killed_five_times_ends_with_the_uninterrupted_weights(
    shapes_world, tmp_path
):
    # 12 steps of 8 over 60 streamed images: epoch 1 starts at step 7, so resumes land in both epochs' streams
    from vlkit.data.captions import load_caption_dataset
    from vlkit.data.shards import write_shards

    train = load_caption_dataset(shapes_world / "train.json", shapes_world / "images")
    write_shards(train, tmp_path / "shards", per_shard=20)
    clip, _, gpt2 = save_tiny_parts(tmp_path / "parts")
    args = ["caption", "train", "--train-shards", str(tmp_path / "shards" / "data-{000000..000002}.tar"),
            "--shuffle-buffer", "16", "--encoder", str(clip), "--decoder", str(gpt2), "--tuning", "lora",
            "--steps", str(STEPS), "--batch-size", "8", "--checkpoint-every", "2",
            "--mixed-precision", "no"]  # fmt: skip
    _interrupted_equals_uninterrupted(args, tmp_path / "killed", tmp_path / "reference")
