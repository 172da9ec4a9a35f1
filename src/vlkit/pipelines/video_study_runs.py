"""The video study's runs: the feature caches made once, each captioner trained and its validation captions
made (as they are, and on shuffled frames) in a worker, the scores and the nearest-clip baseline.

A run is `vlkit.train.video_trainer.train_video_captioner` with the study's budget; several go at once in
processes started with `spawn` (no OpenMP state inherited), one torch thread each, as the ViLBERT study
does. A finished run (its study_run.json matching the run's config) is reused on the next call.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from vlkit.pipelines.video_study import DECODER, ENCODER, StudyBudget, StudyRun, shuffle_frames
from vlkit.runtime.files import read_json, write_json_atomic

log = logging.getLogger(__name__)

RUN_FILE = "study_run.json"


@dataclass
class RunContext:
    """Where the study lives and what every run shares."""

    out: Path
    clips: Path
    seed: int
    budget: StudyBudget
    threads: int | None = field(default=None)

    @cached_property
    def splits(self) -> tuple[Any, Any]:
        from vlkit.train.video_trainer import load_video_splits

        train, val = load_video_splits(self.clips)
        if val is None:
            raise FileNotFoundError(f"{self.clips}: no val/annotations.json")
        return train, val

    @property
    def train(self) -> Any:
        return self.splits[0]

    @property
    def val(self) -> Any:
        return self.splits[1]

    @property
    def cache_root(self) -> Path:
        return self.out / "feature_cache"


def train_config(context: RunContext, run: StudyRun) -> Any:
    """The run's `CaptionTrainConfig`: the budget's steps, batch, learning rate and method for every run."""
    from vlkit.models.captioner.config import CaptionerSpec
    from vlkit.train.config import CaptionTrainConfig, LoopConfig

    budget = context.budget
    spec = CaptionerSpec(ENCODER, DECODER, budget.tuning, temporal=run.temporal, frames=run.frames)
    loop = LoopConfig(
        steps=budget.steps,
        learning_rate=budget.learning_rate,
        weight_decay=0.01,
        warmup_steps=min(50, budget.steps // 10),
        checkpoint_every=budget.steps,
        log_every=50,
        mixed_precision="no",
        seed=context.seed,
    )
    return CaptionTrainConfig(
        spec, batch_size=budget.batch_size, loop=loop, feature_cache_dir=str(context.cache_root)
    )


def _caches(captioner: Any, context: RunContext) -> tuple[Any, Any]:
    from vlkit.train.feature_cache import build_feature_cache
    from vlkit.train.video_features import captioner_video_parts

    return tuple(
        build_feature_cache(captioner, captioner_video_parts(captioner, [p for _, p in split.videos]), root)
        for split, root in ((context.train, context.cache_root), (context.val, context.cache_root))
    )


def prepare_caches(context: RunContext, frame_counts: list[int]) -> None:
    """Encode the train and validation clips once per frame count, before any worker starts."""
    from vlkit.models.captioner.model import build_captioner

    for frames in frame_counts:
        run = StudyRun(f"cache-{frames}", "seq", frames)
        _caches(build_captioner(train_config(context, run).spec()), context)


def run_one(context: RunContext, run: StudyRun) -> dict[str, Any]:
    """Train one run (or reuse it) and caption the validation clips, ordered and shuffled."""
    import torch

    from vlkit.captioning.generate import DecodingConfig, caption_features
    from vlkit.models.captioner.model import load_captioner
    from vlkit.train.video_trainer import train_video_captioner

    if context.threads:
        torch.set_num_threads(context.threads)
    config = train_config(context, run)
    folder = context.out / "runs" / run.name
    key = dataclasses.asdict(config)
    done = read_json(folder / RUN_FILE) if (folder / RUN_FILE).is_file() else None
    if isinstance(done, dict) and done.get("config") == key:
        return done["result"]
    start = time.perf_counter()
    trained = train_video_captioner(config, context.train, None, folder)
    train_s = time.perf_counter() - start
    captioner = load_captioner(folder)
    _, val_cache = _caches(captioner, context)
    features = val_cache.rows(np.arange(len(val_cache))).numpy()
    tokens = captioner.video_settings().frame_tokens
    shuffled = np.stack([shuffle_frames(f, tokens, context.seed, i) for i, f in enumerate(features)])
    decoding = DecodingConfig(num_beams=1, batch_size=64, max_new_tokens=context.budget.max_new_tokens)
    stems = [path.stem for _, path in context.val.videos]
    captions = {}
    for name, rows in (("predictions", features), ("shuffled_predictions", shuffled)):
        made = caption_features(captioner, torch.from_numpy(rows), decoding).captions
        captions[name] = dict(zip(stems, made, strict=True))
        write_json_atomic(folder / f"val_{name}.json", captions[name])
    result = {**captions, "train_s": train_s, "step_s": trained.step_seconds, "checkpoint": str(folder)}
    write_json_atomic(folder / RUN_FILE, {"config": key, "result": result})
    return result


def _run_in_worker(args: tuple[RunContext, StudyRun]) -> tuple[str, dict[str, Any]]:
    context, run = args
    return run.name, run_one(context, run)


def run_all(context: RunContext, runs: list[StudyRun]) -> dict[str, dict[str, Any]]:
    """Every run, `budget.workers` at a time (in this process with one worker)."""
    workers = context.budget.workers
    if workers <= 1:
        return {run.name: run_one(context, run) for run in runs}
    worker_context = dataclasses.replace(context, threads=context.threads or 1)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=spawn) as pool:
        return dict(pool.map(_run_in_worker, [(worker_context, run) for run in runs]))


def score_predictions(context: RunContext, predictions: dict[str, str], truth: Any) -> dict[str, Any]:
    """CIDEr-D against the clips' captions, the order accuracy against their ground truth (`truth`:
    `vlkit.shapes.clips.load_clip_truth`), CHAIR-i against the objects of any of their frames."""
    from vlkit.metrics.cider import cider_d
    from vlkit.metrics.order import clip_chair, order_accuracy

    references = {path.stem: context.val.captions[key] for key, path in context.val.videos}
    chosen = {stem: predictions[stem] for stem in references}
    return {
        "cider": cider_d(chosen, references).score,
        "order_accuracy": order_accuracy(chosen, truth).accuracy,
        "chair_i": clip_chair(chosen, truth).chair_i,
    }


def nearest_clip_predictions(context: RunContext) -> dict[str, str]:
    """Each validation clip gets the first caption of the training clip nearest to it by cosine of the
    frames' mean CLS token (the encoder's own summary of each frame: no temporal model at all)."""
    from vlkit.models.captioner.model import build_captioner

    run = StudyRun("nearest", "meanp", context.budget.frames)
    captioner = build_captioner(train_config(context, run).spec())
    tokens = captioner.video_settings().frame_tokens
    bank, query = (_mean_cls(cache, tokens) for cache in _caches(captioner, context))
    nearest = (query @ bank.T).argmax(axis=1)
    keys = [key for key, _ in context.train.videos]
    return {
        path.stem: context.train.captions[keys[int(j)]][0]
        for (_, path), j in zip(context.val.videos, nearest, strict=True)
    }


def _mean_cls(cache: Any, frame_tokens: int) -> np.ndarray:
    features = cache.rows(np.arange(len(cache))).numpy()
    cls = features.reshape(len(features), -1, frame_tokens, features.shape[-1])[:, :, 0].mean(axis=1)
    return cls / np.linalg.norm(cls, axis=1, keepdims=True).clip(min=1e-12)
