"""Interrupted training loses nothing: `vlkit clip train` and `vlkit caption train` (from a folder, and from
WebDataset shards read as a stream) killed with SIGKILL at several moments (one of them half way through
writing a checkpoint), resumed each time, end with the very weights of an uninterrupted run with the same
seed and step count.

Every kill is checked to have landed: the process was alive when the signal was sent and died of it, the
moment was reached by that run (not read from what an earlier run left on disk), each resumed run started
from a later step than the one before it, and each one wrote a checkpoint of its own before its kill."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from safetensors.torch import load_file

from tests.models.tiny_captioner import save_tiny_parts
from vlkit.train.checkpoint import MANIFEST, is_complete

STEPS = 12
EVERY = 2  # --checkpoint-every


class Moment(NamedTuple):
    """Kill `delay` seconds after this run completes the checkpoint of `step`; with `delay` None, kill half
    way through writing the checkpoint of `step` (after this run completed the one before it)."""

    step: int
    delay: float | None


# Run i resumes from the checkpoint run i-1 was killed after: from 0, 2, 4, 6, 8, then 10 for the last run.
MOMENTS = [Moment(2, 0.0), Moment(4, 0.05), Moment(8, None), Moment(8, 0.02), Moment(10, 0.08)]

# Each killed run is held inside one checkpoint write (VLKIT_FAULT_PAUSE_IN_CHECKPOINT=SECONDS@STEP): the one
# to kill in for a half-written moment, else the one after the moment's checkpoint. So however slow the test
# is to notice the moment (a loaded machine), the run can neither finish nor complete a later checkpoint
# before the kill: the kill always lands in a live process, with the moment's checkpoint the newest complete.
PAUSE_SECONDS = 120
DEADLINE_SECONDS = 300  # for a run to reach its moment (start-up and a few steps take seconds, not minutes)


def _env(pause_at_step: int | None = None) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VLKIT_PROGRESS": "0"}
    env.pop("VLKIT_FAULT_PAUSE_IN_CHECKPOINT", None)
    if pause_at_step is not None:
        env["VLKIT_FAULT_PAUSE_IN_CHECKPOINT"] = f"{PAUSE_SECONDS}@{pause_at_step}"
    return env


# --quiet hides INFO logs, so the loop's own "resumed from ... (step N)" line (`vlkit.train.loop._restore`)
# is sent to stderr by a handler of that one logger: it says where each run really started from.
PROGRAM = (
    "import logging, sys, torch; torch.set_num_threads(1); loop_log = logging.getLogger('vlkit.train.loop'); "
    "loop_log.setLevel(logging.INFO); loop_log.propagate = False; "
    "loop_log.addHandler(logging.StreamHandler(sys.stderr)); from vlkit.cli.main import main; main()"
)


def _command(args: list[str]) -> list[str]:
    return [sys.executable, "-c", PROGRAM, "--quiet", *args]


def _resumed_from(stderr: str) -> int:
    """The step a run started from, by the loop's log line (0 for a run that logged none: a fresh start)."""
    steps = [int(s) for s in re.findall(r"^resumed from .* \(step (\d+)\)$", stderr, re.MULTILINE)]
    assert len(steps) <= 1, stderr
    return steps[0] if steps else 0


def _step(folder: Path) -> int:
    return int(folder.name.split("-")[-2 if folder.name.startswith(".tmp-") else -1])


def _complete_checkpoints(out: Path) -> dict[int, tuple[int, int]]:
    """The complete checkpoints in `out` by step, each with the identity of its manifest (inode, mtime in ns).

    Snapshotted before a run starts, this tells the checkpoints that run completed from those earlier runs
    left: a folder that is new, or that was written again (a new manifest file, later mtime), is the run's."""
    found = {}
    for folder in (out / "checkpoints").glob("step-*"):
        try:
            manifest = (folder / MANIFEST).stat()
        except OSError:  # not complete, or pruned while we look
            continue
        if is_complete(folder):
            found[_step(folder)] = (manifest.st_ino, manifest.st_mtime_ns)
    return found


def _completed_since(before: dict[int, tuple[int, int]], out: Path) -> set[int]:
    return {step for step, identity in _complete_checkpoints(out).items() if before.get(step) != identity}


def _own_half_written(out: Path, pid: int) -> set[int]:
    """Steps of the checkpoints process `pid` is writing: its temporary folders (named after the pid, so
    never one an earlier run left) that hold the weights, not yet renamed into place."""
    folders = (out / "checkpoints").glob(f".tmp-step-*-{pid}")
    return {_step(tmp) for tmp in folders if (tmp / "model.safetensors").is_file()}


def _kill_when(args: list[str], out: Path, moment: Moment, log: Path) -> tuple[int, int]:
    """Run `args`, SIGKILL it at `moment`; return the step it resumed from and the newest complete checkpoint
    at the kill (where the next run resumes from)."""
    before = _complete_checkpoints(out)  # what earlier runs left: it never counts as this run's moment
    half = moment.delay is None
    with log.open("w") as stderr:  # a file, not a pipe that nobody reads until the end
        process = subprocess.Popen(_command(args), env=_env(moment.step if half else moment.step + EVERY),
                                   stderr=stderr)  # fmt: skip
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"{moment}: training ended before the kill (code {process.returncode}):\n"
                            f"{log.read_text()}")  # fmt: skip
            # What the run is writing is read before what it completed: a run seen writing a later checkpoint
            # had completed the moment's one (if it ever would) before, and it is not pruned until two more.
            writing = _own_half_written(out, process.pid)
            ready = moment.step in writing if half else moment.step in _completed_since(before, out)
            if ready:
                time.sleep(moment.delay or 0.0)
                break
            if any(step > moment.step for step in writing):
                pytest.fail(f"{moment}: the run went past checkpoint {moment.step} without reaching the"
                            f" moment (it started from step {_resumed_from(log.read_text())})")  # fmt: skip
            if time.monotonic() > deadline:
                pytest.fail(f"{moment}: the moment never came in {DEADLINE_SECONDS} s:\n{log.read_text()}")
            time.sleep(0.01)
    finally:
        alive = process.poll() is None
        process.send_signal(signal.SIGKILL)  # (does nothing to a process already gone)
        code = process.wait()
    stderr_text = log.read_text()
    assert alive and code == -signal.SIGKILL, (
        f"{moment}: the kill did not land (alive when signalled: {alive}, return code {code}):\n{stderr_text}"
    )
    completed = _completed_since(before, out)
    newest = max(_complete_checkpoints(out), default=0)
    expected = moment.step - EVERY if half else moment.step
    assert newest == expected and newest in completed, (
        f"{moment}: at the kill the newest complete checkpoint is step {newest}, and this run completed"
        f" {sorted(completed)}; expected step {expected}, completed by this run"
    )
    if half:  # the partial checkpoint is left behind, and it is not a complete one
        assert moment.step in _own_half_written(out, process.pid)
        assert moment.step not in _complete_checkpoints(out)
    return _resumed_from(stderr_text), newest


def _interrupted_equals_uninterrupted(args: list[str], out: Path, reference: Path) -> None:
    subprocess.run(_command([*args, "--out", str(reference)]), env=_env(), check=True, capture_output=True)
    starts, kills = [], []
    for i, moment in enumerate(MOMENTS):
        run = [*args, "--out", str(out), *(["--resume"] if i else [])]
        start, at_kill = _kill_when(run, out, moment, out.parent / f"killed-run-{i}.stderr")
        starts.append(start)
        kills.append(at_kill)
        done = sorted((out / "checkpoints").glob("step-*"))
        assert all(is_complete(path) for path in done)  # a killed run never leaves a complete-looking partial
    last = subprocess.run(_command([*args, "--out", str(out), "--resume"]), env=_env(), check=True,
                          capture_output=True, text=True)  # fmt: skip
    starts.append(_resumed_from(last.stderr))
    # Each run resumed from the newest checkpoint the kill before it left, and got further before its kill.
    assert starts == [0, *kills], f"runs started from steps {starts}; the kills left checkpoints {kills}"
    assert all(a < b for a, b in zip(kills, kills[1:], strict=False)), f"the kills left checkpoints {kills}"
    assert all(start < at_kill for start, at_kill in zip(starts, kills, strict=False)), (starts, kills)
    expected, got = load_file(str(reference / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == STEPS  # the log has no step twice


def test_clip_train_killed_five_times_ends_with_the_uninterrupted_weights(shapes_world, tmp_path):
    args = ["clip", "train", "--data", str(shapes_world), "--steps", str(STEPS), "--batch-size", "8",
            "--checkpoint-every", str(EVERY), "--mixed-precision", "no"]  # fmt: skip
    _interrupted_equals_uninterrupted(args, tmp_path / "killed", tmp_path / "reference")


def test_caption_train_killed_five_times_ends_with_the_uninterrupted_weights(shapes_world, tmp_path):
    clip, _, gpt2 = save_tiny_parts(tmp_path / "parts")
    args = ["caption", "train", "--data", str(shapes_world), "--encoder", str(clip), "--decoder", str(gpt2),
            "--tuning", "lora", "--steps", str(STEPS), "--batch-size", "8", "--checkpoint-every", str(EVERY),
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
            "--steps", str(STEPS), "--batch-size", "8", "--checkpoint-every", str(EVERY),
            "--mixed-precision", "no"]  # fmt: skip
    _interrupted_equals_uninterrupted(args, tmp_path / "killed", tmp_path / "reference")
