"""The methods of a sweep, each trained in a child process of its own (multiprocessing, spawn), one or
several at a time.

A child process per method makes the peak memory reported that method's alone: a process's peak resident set
only ever grows, so methods trained one after another in one process would each report the largest peak so
far. Several children at once (`SweepConfig.processes`) share the cores, each with its share as torch
threads: on 2 cores two one-thread children train about 1.4 times as many steps per second as one child
with two threads (the models of the embedded default are too small to keep two threads busy). A method whose
folder already holds a finished run of the same configuration, encoder and decoder is not trained again.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import resource
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vlkit.data.captions import CaptionDataset, load_caption_dataset
from vlkit.errors import VlkitError
from vlkit.models.hub import resolve_model_name
from vlkit.runtime import progress
from vlkit.runtime.files import read_json, write_json_atomic, write_text_atomic
from vlkit.train.caption_trainer import RESULT_FILE
from vlkit.train.config import CaptionTrainConfig

log = logging.getLogger(__name__)

CHILD_RESULT = "vlkit_sweep_run.json"
CHILD_ERROR = "vlkit_sweep_error.txt"
# Records of an older version (peak memory measured with ru_maxrss, which counted the parent's) are redone.
RECORD_VERSION = 2


def own_peak_rss_mib() -> float:
    """This process's peak resident set since it started its program, in MiB.

    Linux's VmHWM belongs to the process's current memory map, which exec replaces, so a spawned child reads
    its own peak. `ru_maxrss` would not do: Linux carries it across fork and exec, so every child would
    report at least its parent's resident set at the fork (measured: 1,304 MiB for each method, the parent's).
    Elsewhere ru_maxrss is the fallback.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20  # KiB on Linux, bytes on macOS


def _train_in_child(
    config: dict[str, Any],
    train_file: str,
    train_root: str,
    val_file: str | None,
    val_root: str | None,
    out_dir: str,
    verbosity: int,
    show_progress: bool,
    threads: int = 0,
) -> None:
    """The child process: train one method, then write its step time and its own peak memory."""
    import torch

    if threads:
        torch.set_num_threads(threads)

    from vlkit.train.caption_trainer import train_captioner

    logging.basicConfig(level=verbosity, format="%(message)s")
    progress.set_enabled(show_progress)
    train = load_caption_dataset(train_file, train_root)
    val = load_caption_dataset(val_file, val_root) if val_file else None
    try:
        result = train_captioner(CaptionTrainConfig.from_dict(config), train, val, Path(out_dir))
    except VlkitError as error:  # one line for the parent to report, not a child's traceback
        write_text_atomic(Path(out_dir) / CHILD_ERROR, str(error))
        raise SystemExit(2) from None
    record = {
        "record_version": RECORD_VERSION,
        "config": config,
        "trainable_params": result.parameters.trainable,
        "total_params": result.parameters.total,
        "trainable_share": result.parameters.share,
        "step_time_s": result.step_seconds,
        "peak_rss_mib": own_peak_rss_mib(),
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "best_val_cider_d": result.best_cider,
    }
    write_json_atomic(Path(out_dir) / CHILD_RESULT, record)


def train_method(
    config: CaptionTrainConfig, train: CaptionDataset, val: CaptionDataset | None, out_dir: Path
) -> dict[str, Any]:
    """Train one method in a spawned child (or reuse a finished run of the same config); its record."""
    return train_methods([(config, out_dir)], train, val)[0]


def train_methods(
    runs: list[tuple[CaptionTrainConfig, Path]],
    train: CaptionDataset,
    val: CaptionDataset | None,
    processes: int = 1,
) -> list[dict[str, Any]]:
    """Train each (config, folder) in a spawned child, `processes` of them at a time (each child then gets
    its share of the cores as torch threads), reusing finished runs of the same config; their records, in
    order. The first failure is raised once the running children have ended; the others keep their
    checkpoints, so running again continues."""
    records: list[dict[str, Any] | None] = [_reusable(config, out_dir) for config, out_dir in runs]
    todo = [k for k, record in enumerate(records) if record is None]
    if len(todo) > 1 and processes > 1:
        from vlkit.train.caption_trainer import prepare_feature_caches

        # Built once here, not by two children racing to write the same cache folder.
        prepare_feature_caches(runs[todo[0]][0], train, val)
    together = max(1, min(processes, len(todo)))
    threads = max(1, _cores() // together) if together > 1 else 0  # 0: torch's own default
    records_by_index = dict(enumerate(records))
    failure: VlkitError | None = None
    stop = threading.Event()
    finished = _run_children(runs, todo, train, val, together, threads, stop)
    # One bar for the methods when several train at once (their own bars would interleave).
    for k, exitcode in (
        progress.track(finished, "train methods", total=len(todo)) if together > 1 else finished
    ):
        try:
            records_by_index[k] = _finished(runs[k][0], runs[k][1], exitcode)
        except VlkitError as error:
            failure = failure or error
            stop.set()  # start no more children; the running ones end
    if failure is not None:
        raise failure
    return [records_by_index[k] for k in range(len(runs))]  # type: ignore[misc]


def _run_children(
    runs: list[tuple[CaptionTrainConfig, Path]],
    todo: list[int],
    train: CaptionDataset,
    val: CaptionDataset | None,
    together: int,
    threads: int,
    stop: threading.Event,
) -> Iterator[tuple[int, int | None]]:
    """(index, exit code) of each child as it ends, `together` running at a time; none started once `stop`
    is set."""
    from multiprocessing.connection import wait

    waiting, running = list(todo), {}
    while waiting or running:
        while waiting and len(running) < together and not stop.is_set():
            k = waiting.pop(0)
            child = _spawn(runs[k][0], train, val, runs[k][1], threads, show_progress=together == 1)
            running[child.sentinel] = (k, child)
        if not running:
            return
        for sentinel in wait(list(running)):
            k, child = running.pop(sentinel)
            child.join()
            yield k, child.exitcode


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _inputs(config: CaptionTrainConfig) -> dict[str, Any]:
    spec = config.captioner
    return {"encoder": model_identity(spec.encoder), "decoder": model_identity(spec.decoder)}


def _reusable(config: CaptionTrainConfig, out_dir: Path) -> dict[str, Any] | None:
    done = out_dir / CHILD_RESULT
    if done.is_file() and (out_dir / RESULT_FILE).is_file():
        record = read_json(done)
        if (record.get("config"), record.get("inputs"), record.get("record_version")) == (
            dataclasses.asdict(config),
            _inputs(config),
            RECORD_VERSION,
        ):
            log.info("reusing %s", out_dir)
            return record
    return None


def _spawn(
    config: CaptionTrainConfig,
    train: CaptionDataset,
    val: CaptionDataset | None,
    out_dir: Path,
    threads: int,
    show_progress: bool = True,
) -> Any:
    child = multiprocessing.get_context("spawn").Process(
        target=_train_in_child,
        args=(
            dataclasses.asdict(config),
            str(train.annotations),
            str(train.image_root),
            str(val.annotations) if val is not None else None,
            str(val.image_root) if val is not None else None,
            str(out_dir),
            # Children trained at once would interleave their lines and bars: warnings only, one bar here.
            logging.getLogger().getEffectiveLevel() if show_progress else logging.WARNING,
            progress.is_enabled() and show_progress,
            threads,
        ),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CHILD_ERROR).unlink(missing_ok=True)
    (out_dir / CHILD_RESULT).unlink(missing_ok=True)
    child.start()
    return child


def _finished(config: CaptionTrainConfig, out_dir: Path, exitcode: int | None) -> dict[str, Any]:
    failure, done, tuning = out_dir / CHILD_ERROR, out_dir / CHILD_RESULT, config.captioner.tuning
    if failure.is_file():
        raise VlkitError(f"tuning {tuning}: {failure.read_text(encoding='utf-8')}")
    if exitcode != 0 or not done.is_file():
        raise VlkitError(
            f"tuning {tuning}: training failed (exit code {exitcode}); its folder {out_dir} "
            "keeps the checkpoints, run the sweep again to continue"
        )
    record = {**read_json(done), "inputs": _inputs(config)}
    write_json_atomic(done, record)
    return record


def model_identity(name: str) -> list[int] | None:
    """(size, modification time) of a local model folder's weights, so that a model trained again under the
    same path (a new world, say) is not taken for the one a finished run used; None for a hub id."""
    weights = Path(resolve_model_name(name)) / "model.safetensors"
    if not weights.is_file():
        return None
    stat = weights.stat()
    return [stat.st_size, stat.st_mtime_ns]
