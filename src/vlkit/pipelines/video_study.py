"""`vlkit video study`: what time adds to a CLIP captioner, measured on clips whose captions need it.

The clips come from `vlkit.shapes.clips` (real MP4 files under OUT/clips, with exact per-frame ground
truth); the encoder and decoder are the stand-ins vlkit:shapes-clip and vlkit:shapes-gpt2, the encoder frozen
and read once per sampling into the feature cache (OUT/feature_cache, keyed by `VideoSampling.key()`). Every
temporal module trains with the same budget (`StudyBudget`); so do seq's frame-count ablations. Each run
then captions the validation clips as they are and with their frames shuffled (a seeded permutation of the
cached frames' tokens, which is the encoding of the shuffled clip exactly, the encoder being per-frame),
scored against the real clips: CIDEr-D, the order accuracy of `vlkit.metrics.order` (the share of motion
and order statements the ground truth makes true) and CHAIR-i over the objects of any frame. Baselines: the
nearest training clip by the frames' mean CLS token (its first caption), and the best temporal module on
shuffled frames. Runs go two at a time in spawned processes of one thread each (`video_study_runs`);
`video_study_table` writes study.md and the chart; the attention figures (frames x words) go to
OUT/figures/<variant>/.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlkit.runtime.files import read_json, write_bytes_atomic, write_json_atomic
from vlkit.runtime.machine import cpu_name

log = logging.getLogger(__name__)

STUDY_FILE = "study.json"
VARIANTS = ("meanp", "concat", "seq")
ENCODER, DECODER = "vlkit:shapes-clip", "vlkit:shapes-gpt2"
ORDER_BAR_POINTS = 0.25  # a temporal module's order accuracy at least 25 points above meanp's


@dataclass(frozen=True)
class StudyBudget:
    """What every run shares: steps, batch, learning rate, the tuning method, frames, the ablation's frame
    counts, and the workers."""

    steps: int = 1200
    batch_size: int = 32
    learning_rate: float = 1e-3
    tuning: str = "lora"
    frames: int = 8
    ablation_frames: tuple[int, ...] = (2, 4)
    workers: int = 2
    max_new_tokens: int | None = None  # validation captions' length limit (None: the captioner's)
    figure_clips: int = 4  # validation clips drawn per variant

    @staticmethod
    def quick() -> StudyBudget:
        return StudyBudget(
            steps=2, batch_size=8, ablation_frames=(2,), workers=1, max_new_tokens=6, figure_clips=1
        )


@dataclass
class VideoStudyRequest:
    """`vlkit video study`'s options."""

    out: Path
    seed: int = 0
    quick: bool = False
    workers: int | None = None
    steps: int | None = None


@dataclass(frozen=True)
class StudyRun:
    """One captioner to train: its name in the study, temporal module and frames."""

    name: str
    temporal: str
    frames: int


def study_runs(budget: StudyBudget) -> list[StudyRun]:
    """The variants (every temporal module at the budget's frames), then seq at the ablation's frames."""
    runs = [StudyRun(kind, kind, budget.frames) for kind in VARIANTS]
    return runs + [StudyRun(f"seq-{frames}f", "seq", frames) for frames in budget.ablation_frames]


def run_video_study(request: VideoStudyRequest) -> dict[str, Any]:
    """Make the clips, train every run, score them and the baselines; write study.json, study.md, study.png
    and the figures under `request.out`. Returns study.json's document."""
    from vlkit.pipelines.video_study_runs import (
        RunContext,
        nearest_clip_predictions,
        prepare_caches,
        run_all,
        score_predictions,
    )
    from vlkit.pipelines.video_study_table import study_chart, study_markdown

    start = time.perf_counter()
    out = request.out
    out.mkdir(parents=True, exist_ok=True)
    budget = StudyBudget.quick() if request.quick else StudyBudget()
    if request.workers is not None:
        budget = dataclasses.replace(budget, workers=request.workers)
    if request.steps is not None:
        budget = dataclasses.replace(budget, steps=request.steps)
    clips_s = time.perf_counter()
    clips = ensure_clips(out / "clips", request.seed, request.quick)
    clips_s = time.perf_counter() - clips_s
    context = RunContext(out, clips, request.seed, budget)
    runs = study_runs(budget)
    cache_s = time.perf_counter()
    prepare_caches(context, sorted({run.frames for run in runs}))
    cache_s = time.perf_counter() - cache_s
    results = run_all(context, runs)
    from vlkit.shapes.clips import load_clip_truth

    truth = load_clip_truth(clips)
    rows = []
    for run in runs:
        result = results[run.name]
        ordered = score_predictions(context, result["predictions"], truth)
        shuffled = score_predictions(context, result["shuffled_predictions"], truth)
        rows.append(
            {
                "name": run.name,
                "temporal": run.temporal,
                "frames": run.frames,
                **ordered,
                "train_s": result["train_s"],
                "step_s": result["step_s"],
                "shuffled": shuffled,
                "checkpoint": str(Path(result["checkpoint"]).relative_to(out)),
            }
        )
    variants = [row for row in rows if row["name"] in VARIANTS]
    timed = [row for row in variants if row["temporal"] != "meanp"]
    best = max(timed, key=lambda row: (row["order_accuracy"] or 0.0, row["cider"]))
    nearest = score_predictions(context, nearest_clip_predictions(context), truth)
    document = {
        "variants": [_variant_entry(row) for row in variants],
        "baselines": {
            "nearest_clip": {k: nearest[k] for k in ("cider", "order_accuracy", "chair_i")},
            "shuffled_frames": {"temporal": best["temporal"], **best["shuffled"]},
        },
        "ablations": {
            "frames": [
                _ablation_entry(row)
                for row in sorted(rows, key=lambda row: row["frames"])
                if row["temporal"] == "seq"
            ],
            "shuffled_frames": [
                {"temporal": row["temporal"], "ordered": _scores(row), "shuffled": row["shuffled"]}
                for row in variants
            ],
        },
        "bars": _bars(variants, nearest),
        "budget": {
            **dataclasses.asdict(budget),
            "encoder": ENCODER,
            "decoder": DECODER,
            "seed": request.seed,
        },
        "clips": _clip_counts(context),
        "figures": {},
        "cpu": cpu_name(),
        "quick": request.quick,
    }
    document["figures"] = draw_figures(context, rows, out / "figures")
    document["timing_s"] = {"clips": clips_s, "feature_caches": cache_s}
    document["total_s"] = time.perf_counter() - start
    write_json_atomic(out / STUDY_FILE, document)
    (out / "study.md").write_text(study_markdown(document))
    write_bytes_atomic(out / "study.png", study_chart(document))
    return document


def ensure_clips(folder: Path, seed: int, quick: bool) -> Path:
    """The study's clips under `folder` (made unless a finished set for this seed is there)."""
    from vlkit.shapes.clips import ClipsConfig, make_clips

    config = ClipsConfig.quick(seed=seed) if quick else ClipsConfig(seed=seed)
    world = folder / "world.json"
    if world.is_file() and (folder / "truth.json").is_file():
        meta = read_json(world)
        wanted = {"seed": config.seed, "n_train": config.n_train, "n_val": config.n_val, "order": "original"}
        if isinstance(meta, dict) and all(meta.get(k) == v for k, v in wanted.items()):
            return folder
    make_clips(folder, config)
    return folder


def _scores(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("cider", "order_accuracy", "chair_i")}


def _variant_entry(row: dict[str, Any]) -> dict[str, Any]:
    return {"temporal": row["temporal"], **_scores(row), "train_s": row["train_s"], "step_s": row["step_s"],
            "frames": row["frames"], "checkpoint": row["checkpoint"]}  # fmt: skip


def _ablation_entry(row: dict[str, Any]) -> dict[str, Any]:
    return {"temporal": row["temporal"], "frames": row["frames"], **_scores(row), "train_s": row["train_s"]}


def _bars(variants: list[dict[str, Any]], nearest: dict[str, Any]) -> dict[str, Any]:
    """The issue's first bars, met or missed by the best temporal module on each."""
    meanp = next(row for row in variants if row["temporal"] == "meanp")
    timed = [row for row in variants if row["temporal"] != "meanp"]
    by_order = max(timed, key=lambda row: row["order_accuracy"] or 0.0)
    by_cider = max(timed, key=lambda row: row["cider"])
    limit = (meanp["order_accuracy"] or 0.0) + ORDER_BAR_POINTS
    return {
        "order": {
            "text": f"order accuracy of {by_order['temporal']} >= meanp's + 25 points",
            "value": by_order["order_accuracy"],
            "limit": limit,
            "met": (by_order["order_accuracy"] or 0.0) >= limit,
        },
        "cider": {
            "text": f"CIDEr-D of {by_cider['temporal']} above the nearest-clip baseline",
            "value": by_cider["cider"],
            "limit": nearest["cider"],
            "met": by_cider["cider"] > nearest["cider"],
        },
    }


def _clip_counts(context: Any) -> dict[str, Any]:
    return {"train": len(context.train.videos), "val": len(context.val.videos), "folder": "clips"}


def draw_figures(context: Any, rows: list[dict[str, Any]], folder: Path) -> dict[str, list[str]]:
    """Frames x words attention figures of the first validation clips, for every variant with frames."""
    from vlkit.captioning.config import DecodingConfig
    from vlkit.data.video import read_video
    from vlkit.models.captioner.model import load_captioner
    from vlkit.pipelines.attend_video import attend_clips, draw_clip
    from vlkit.train.video_features import captioner_sampling

    figures: dict[str, list[str]] = {}
    for row in rows:
        if row["temporal"] == "meanp" or row["name"] not in VARIANTS:
            continue
        captioner = load_captioner(context.out / row["checkpoint"])
        sampling = captioner_sampling(captioner)
        chosen = context.val.videos[: context.budget.figure_clips]
        clips = [read_video(path, sampling).frames for _, path in chosen]
        decoding = DecodingConfig(num_beams=1, max_new_tokens=context.budget.max_new_tokens)
        found = attend_clips(captioner, clips, [path.stem for _, path in chosen], decoding)
        names = []
        for frames, clip in zip(clips, found, strict=True):
            draw_clip(folder / row["name"] / f"{clip.stem}.png", frames, clip)
            names.append(f"{clip.stem}.png")
        figures[row["name"]] = names
    return figures


def shuffle_frames(features: np.ndarray, frame_tokens: int, seed: int, index: int) -> np.ndarray:
    """One clip's (frames * frame tokens, C) features with its frames in a seeded order other than their
    own (for 2 frames or more)."""
    frames = features.reshape(-1, frame_tokens, features.shape[-1])
    rng = np.random.default_rng([seed, index])
    order = np.arange(len(frames))
    while len(frames) > 1 and (order == np.arange(len(frames))).all():
        order = rng.permutation(len(frames))
    return frames[order].reshape(features.shape)
