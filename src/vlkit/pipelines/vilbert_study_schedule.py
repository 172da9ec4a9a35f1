"""The order and the place of the study's runs: every model's first seed, then later seeds while the budget
lasts, `workers` at a time.

With one worker the runs go one after another in this process. With more, each run goes to a worker
process (started with `spawn`, so no OpenMP state is inherited from a parent that has run torch; each loads
the world's batches once, from the feature caches the parent built) with one torch thread: on a small CPU,
two single-threaded runs side by side get more from two cores than one run with two threads, whose threads
wait for each other at every small matrix product. Every run is seeded and self-contained, so its figures
do not depend on which worker ran it or when. `concurrent.futures` does the pool; what is written here is
the order: a model that starts from another's pre-training waits for that run, and a later seed's run
starts only when its first seed's time fits in what is left of the budget.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from vlkit.errors import VlkitError
from vlkit.pipelines.vilbert_study_runs import MODELS, StudyContext, load_context, run_model

log = logging.getLogger(__name__)

# The order of a later seed's runs while the budget lasts: the bars' model and baseline, the notes' questions.
SEED_PRIORITY = (
    "two-stream", "question-only", "no-standard-layers", "sequential", "single-stream", "lxmert",
    "visualbert", "no-pretraining", "grid-regions", "crop-regions", "image-only",
)  # fmt: skip
RESERVE_S = 30.0  # kept for the CLIP baseline and the outputs

_WORKER: StudyContext | None = None  # a worker process's own context


def _start_worker(out: Path, world: Path, base: Any, pretrain_steps: int, finetune_steps: int) -> None:
    global _WORKER
    from vlkit.runtime import progress

    progress.set_enabled(False)  # two workers' bars would overwrite each other; the parent logs each run
    _WORKER = load_context(out, world, base, pretrain_steps, finetune_steps)


def _run_in_worker(name: str, seed: int, figures: bool) -> dict[str, Any]:
    assert _WORKER is not None, "a study worker runs after its initializer"
    return run_model(_WORKER, name, seed, figures)


class _InProcess:
    """The executor of one worker: each run right away, in this process (this process is the worker)."""

    def __init__(self, context: StudyContext):
        global _WORKER
        _WORKER = context

    def submit(self, fn: Callable[..., dict[str, Any]], *args: Any) -> Future:
        future: Future = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self) -> None:
        global _WORKER
        _WORKER = None


def schedule_runs(
    context: StudyContext,
    seeds: tuple[int, ...],
    start: float,
    budget: float | None,
    workers: int,
    figure_models: tuple[str, ...] | None,
) -> dict[str, list[dict[str, Any]]]:
    """Run every model with `seeds[0]`, then each later seed in `SEED_PRIORITY` order while its first
    seed's time (measured, or read back with its result) fits in what is left of `budget` (seconds since
    `start`; None: no limit); returns each model's results in seed order."""
    tasks = [(name, seeds[0]) for name in MODELS] + [(n, s) for s in seeds[1:] for n in SEED_PRIORITY]
    done: dict[tuple[str, int], dict[str, Any]] = {}
    left_out: set[tuple[str, int]] = set()
    running: dict[Future, tuple[str, int]] = {}
    pool = _executor(context, workers)
    try:
        while tasks or running:
            progressed = False
            for task in list(tasks):
                if len(running) >= workers:
                    break
                verdict = _verdict(context, task, seeds[0], done, left_out, start, budget)
                if verdict == "wait":
                    continue
                tasks.remove(task)
                progressed = True
                if verdict == "leave":
                    left_out.add(task)
                    continue
                name, seed = task
                figures = seed == seeds[0] and (figure_models is None or name in figure_models)
                log.info("%s, seed %d", name, seed)
                running[pool.submit(_run_in_worker, name, seed, figures)] = task
            if not running:
                if not progressed:  # every task left waits on one that will never run
                    raise VlkitError(f"study: {tasks[0][0]}, seed {tasks[0][1]} waits on a run never started")
                continue
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                task = running.pop(future)
                done[task] = future.result()
                log.info("%s, seed %d: done (%.0f s)", *task, done[task]["wall_s"])
    finally:
        pool.shutdown()
    return {name: [done[(name, s)] for s in seeds if (name, s) in done] for name in MODELS}


def _verdict(
    context: StudyContext, task: tuple[str, int], first: int, done: dict, left_out: set, start: float,
    budget: float | None,
) -> str:  # fmt: skip
    """ "run", "wait" (its pre-training is another run's, not finished) or "leave" (out of the budget)."""
    name, seed = task
    shared = MODELS[name].pretrained_by
    if shared and (shared, seed) in left_out:
        return "leave"
    if shared and (shared, seed) not in done:
        return "wait"
    if seed == first or budget is None or context.is_done(name, seed):
        return "run"
    if (name, first) not in done:
        return "wait"
    estimate, left = done[(name, first)]["wall_s"], budget - (time.perf_counter() - start) - RESERVE_S
    if estimate > left:
        log.info("%s, seed %d: left out (about %.0f s, %.0f s left)", name, seed, estimate, left)
        return "leave"
    return "run"


def _executor(context: StudyContext, workers: int) -> Any:
    if workers <= 1:
        return _InProcess(context)
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(context.out, context.world, context.base, context.pretrain_steps, context.finetune_steps),
    )
