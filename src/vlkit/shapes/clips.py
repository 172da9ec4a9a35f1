"""The generated clips: short MP4 videos of the shapes world whose captions need time, with exact truth.

`make_clips(out, ClipsConfig())` (the CLI: `vlkit data shapes-video --out DIR`) writes
```
DIR/train/videos/train_00000.mp4 ...   DIR/train/annotations.json   (the COCO caption layout with videos)
DIR/val/videos/val_00000.mp4 ...       DIR/val/annotations.json
DIR/truth.json   {"clips": {"<file stem>": {"frames": [[{"colour", "shape", "size", "box": [x1, y1, x2, y2]},
                 ...] per frame], "events": [{"kind", "object", "frame", "last_frame", "direction"?,
                 "to_colour"?}], "split", "frame_order"}}}
DIR/world.json   the settings, the counts of each story, the generator version
```
Boxes are tight around the drawn pixels, x2 and y2 one past the last pixel. `clip_plan` plans and draws a
clip, `clip_grammar` writes its captions, `data.video.write_video` encodes it (H.264 through PyAV); this
module runs the chunks of clips on worker processes and writes the folder. Every clip has its own random
generator seeded from (seed, split, index), so the output is the same for any number of workers.

`ClipsConfig.order` writes the same clips played backwards ("reversed": the opposite events in the opposite
order, and captions that say so) or with their frames shuffled ("shuffled": the original's events and
captions, the permutation in "frame_order"), for the ablations that ask whether a model reads order.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from vlkit.data.video import write_video
from vlkit.errors import ConfigError, VlkitError
from vlkit.runtime.files import read_json, write_json_atomic
from vlkit.runtime.options import option
from vlkit.runtime.progress import track
from vlkit.shapes.clip_grammar import ClipEvent, reverse_events, write_clip_captions
from vlkit.shapes.clip_plan import CLIP_KINDS, FrameObject, plan_clip, render_clip

logger = logging.getLogger(__name__)

CLIPS_GENERATOR_VERSION = 1
CHUNK = 25  # clips per job
ORDERS: tuple[str, ...] = ("original", "reversed", "shuffled")
QUICK_SIZES = {"n_train": 24, "n_val": 8}
# Spawn keys of the clips' generators, apart from the shapes world's streams (scenes.STREAMS).
_SPLIT_STREAMS = {"train": 101, "val": 102}
WORLD_FILE, TRUTH_FILE = "world.json", "truth.json"


@dataclass
class ClipsConfig:
    """What to generate. Every field is one CLI option of `vlkit data shapes-video` (metadata "flag")."""

    seed: int = option(0, "--seed", "Seed of every random choice.")
    n_train: int = option(1500, "--train", "Training clips.")
    n_val: int = option(200, "--val", "Validation clips.")
    min_frames: int = option(8, "--min-frames", "Fewest frames in a clip (at least 8).")
    max_frames: int = option(16, "--max-frames", "Most frames in a clip (at most 64).")
    fps: int = option(8, "--fps", "Frames per second of the MP4 files.")
    image_size: int = option(64, "--image-size", "Side of every (square) frame in pixels, even, 32 to 256.")
    captions_per_clip: int = option(3, "--captions", "Reference captions per clip.")
    order: str = option(
        "original",
        "--order",
        "Frame order: original, reversed (the clips played "
        "backwards, captioned so) or shuffled (frames permuted, the original's captions).",
    )
    workers: int = option(
        2, "--workers", "Processes that render and encode; the output is the same for any number."
    )

    @classmethod
    def quick(cls, **changes: Any) -> ClipsConfig:
        """The tests' size: 24 train and 8 val clips."""
        return cls(**{**QUICK_SIZES, **changes})

    def validate(self) -> None:
        """Raise ConfigError naming the first field out of range (the CLI names its option)."""
        limits = {
            "min_frames": (8, 64),
            "max_frames": (8, 64),
            "fps": (1, 120),
            "image_size": (32, 256),
            "captions_per_clip": (1, 20),
            "workers": (1, 256),
        }
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name == "order":
                if value not in ORDERS:
                    raise ConfigError(
                        ClipsConfig, "order", f"must be one of {', '.join(ORDERS)}, got {value!r}"
                    )
                continue
            low, high = limits.get(spec.name, (0, None))
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(ClipsConfig, spec.name, f"must be an integer, got {value!r}")
            if value < low or (high is not None and value > high):
                bounds = f"at least {low}" if high is None else f"between {low} and {high}"
                raise ConfigError(ClipsConfig, spec.name, f"must be {bounds}, got {value}")
        if self.max_frames < self.min_frames:
            raise ConfigError(
                ClipsConfig,
                "max_frames",
                f"must be at least min_frames ({self.min_frames}), got {self.max_frames}",
            )
        if self.image_size % 2:
            raise ConfigError(
                ClipsConfig, "image_size", f"must be even (H.264 in yuv420p), got {self.image_size}"
            )


@dataclass
class ClipTruth:
    """The exact ground truth of one clip: the objects of every frame and the events, in order."""

    frames: list[list[FrameObject]]
    events: list[ClipEvent]
    split: str
    frame_order: list[int]  # frame t of the file is frame frame_order[t] of the clip as planned

    def to_json(self) -> dict[str, Any]:
        return {
            "frames": [[obj.to_json() for obj in frame] for frame in self.frames],
            "events": [event.to_json() for event in self.events],
            "split": self.split,
            "frame_order": self.frame_order,
        }

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> ClipTruth:
        frames = [
            [
                FrameObject(
                    colour=o["colour"],
                    shape=o["shape"],
                    size=o.get("size", "small"),
                    box=tuple(int(v) for v in o["box"]),
                )
                for o in frame
            ]  # type: ignore[arg-type]
            for frame in record["frames"]
        ]
        events = [ClipEvent.from_json(event) for event in record["events"]]
        order = [int(t) for t in record.get("frame_order", range(len(frames)))]
        return cls(frames=frames, events=events, split=str(record["split"]), frame_order=order)


@dataclass
class ClipsSummary:
    """What `make_clips` wrote."""

    out_dir: Path
    n_train: int
    n_val: int
    n_captions: int
    stories: dict[str, int]
    seconds: float


# ----------------------------------------------------------------------------------------------- one clip


def clip_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one clip: independent of every other clip's and of the shapes world's."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SPLIT_STREAMS[split], index)))


@dataclass(frozen=True)
class _Job:
    root: str
    split: str
    start: int
    stop: int
    config: ClipsConfig


def _run_job(job: _Job) -> list[dict[str, Any]]:
    """Plan, draw, caption and encode clips [start, stop) of a split; their records, in order."""
    config, records = job.config, []
    for index in range(job.start, job.stop):
        rng = clip_rng(config.seed, job.split, index)
        plan = plan_clip(rng, config.image_size, config.min_frames, config.max_frames)
        frames, objects = render_clip(plan, rng, config.image_size)
        captions = write_clip_captions(plan.events, rng, config.captions_per_clip)
        truth = ClipTruth(
            frames=objects, events=plan.events, split=job.split, frame_order=list(range(plan.n_frames))
        )
        # Drawn after the captions, so that each order gives the original clip the same captions.
        permutation = _shuffle_order(rng, plan.n_frames)
        if config.order == "reversed":
            truth = reverse_truth(truth)
            captions = write_clip_captions(truth.events, rng, config.captions_per_clip)
        elif config.order == "shuffled":
            truth = shuffle_truth(truth, permutation)
        frames = [frames[t] for t in truth.frame_order]
        stem = f"{job.split}_{index:05d}"
        write_video(Path(job.root) / job.split / "videos" / f"{stem}.mp4", frames, fps=config.fps)
        records.append(
            {
                "stem": stem,
                "index": index,
                "n_frames": plan.n_frames,
                "story": plan.story,
                "truth": truth,
                "captions": captions,
            }
        )
    return records


def _shuffle_order(rng: np.random.Generator, n_frames: int) -> list[int]:
    """A permutation of the frames that moves most of them (never the identity)."""
    order = [int(t) for t in rng.permutation(n_frames)]
    return order if order != sorted(order) else order[1:] + order[:1]


def reverse_truth(truth: ClipTruth) -> ClipTruth:
    """The ground truth of the clip played backwards: frames in reverse, the opposite events in reverse."""
    n_frames = len(truth.frames)
    return ClipTruth(
        frames=truth.frames[::-1],
        events=reverse_events(truth.events, n_frames),
        split=truth.split,
        frame_order=truth.frame_order[::-1],
    )


def shuffle_truth(truth: ClipTruth, permutation: Sequence[int]) -> ClipTruth:
    """The ground truth of the clip with frame t showing its frame `permutation[t]`. The events stay those of
    the clip as it was: what a model that reads order can no longer see."""
    if sorted(permutation) != list(range(len(truth.frames))):
        raise VlkitError(f"permutation {list(permutation)} is not one of {len(truth.frames)} frames")
    return ClipTruth(
        frames=[truth.frames[t] for t in permutation],
        events=list(truth.events),
        split=truth.split,
        frame_order=[truth.frame_order[t] for t in permutation],
    )


# ------------------------------------------------------------------------------------------------ folder


def make_clips(out: str | os.PathLike[str], config: ClipsConfig) -> ClipsSummary:
    """Generate the clips into `out`, replacing clips already there.

    Args:
        out: the folder; absent, empty, or earlier clips (a world.json with "clips_generator_version"). It is
            built in a hidden sibling and renamed into place, so a failed run leaves the old clips whole.
        config: what to generate (validated here; VlkitError names the option at fault).
    """
    config.validate()
    out = Path(out)
    _check_replaceable(out)
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    staging.chmod(0o755)
    try:
        jobs = [
            _Job(root=str(staging), split=split, start=s, stop=min(s + CHUNK, n), config=config)
            for split, n in (("train", config.n_train), ("val", config.n_val))
            for s in range(0, n, CHUNK)
        ]
        by_split: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}
        for job, records in zip(jobs, _run_jobs(jobs, config.workers), strict=True):
            by_split[job.split].extend(records)
        n_captions = 0
        for split, records in by_split.items():
            (staging / split / "videos").mkdir(parents=True, exist_ok=True)
            n_captions += _write_annotations(staging / split / "annotations.json", records)
        everything = [record for records in by_split.values() for record in records]
        write_json_atomic(
            staging / TRUTH_FILE,
            {"clips": {r["stem"]: r["truth"].to_json() for r in everything}},
            indent=None,
        )
        stories = {story: sum(r["story"] == story for r in everything) for story in CLIP_KINDS}
        settings = {name: value for name, value in asdict(config).items() if name != "workers"}
        write_json_atomic(
            staging / WORLD_FILE,
            {
                "clips_generator_version": CLIPS_GENERATOR_VERSION,
                **settings,
                "n_captions": n_captions,
                "stories": stories,
            },
        )
        _replace_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    seconds = time.perf_counter() - started
    logger.info("%d clips written to %s in %.1f s", config.n_train + config.n_val, out, seconds)
    return ClipsSummary(
        out_dir=out,
        n_train=config.n_train,
        n_val=config.n_val,
        n_captions=n_captions,
        stories=stories,
        seconds=seconds,
    )


def load_clip_truth(clips_dir: str | os.PathLike[str]) -> dict[str, ClipTruth]:
    """The ground truth of every clip of a folder (its truth.json), by file stem."""
    path = Path(clips_dir) / TRUTH_FILE
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("clips"), dict):
        raise VlkitError(f"{path}: expected an object with 'clips' (stem -> ground truth)")
    truth = {}
    for stem, record in data["clips"].items():
        try:
            truth[stem] = ClipTruth.from_json(record)
        except (KeyError, TypeError, ValueError) as exc:
            raise VlkitError(f"{path}: clips[{stem!r}]: malformed ground truth ({exc!r})") from exc
    return truth


def _run_jobs(jobs: list[_Job], workers: int) -> Iterator[list[dict[str, Any]]]:
    if workers == 1 or len(jobs) <= 1:
        yield from track(map(_run_job, jobs), "shapes clips", total=len(jobs))
        return
    with multiprocessing.get_context().Pool(min(workers, len(jobs))) as pool:
        yield from track(pool.imap(_run_job, jobs), "shapes clips", total=len(jobs))


def _write_annotations(path: Path, records: list[dict[str, Any]]) -> int:
    videos = [{"id": r["index"], "file_name": f"{r['stem']}.mp4", "frames": r["n_frames"]} for r in records]
    annotations = [{"video_id": r["index"], "caption": caption} for r in records for caption in r["captions"]]
    for number, annotation in enumerate(annotations):
        annotation["id"] = number
    write_json_atomic(path, {"videos": videos, "annotations": annotations}, indent=None)
    return len(annotations)


def _check_replaceable(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise VlkitError(f"{out}: exists and is not a folder; choose another --out")
    if not any(out.iterdir()):
        return
    try:
        is_clips = "clips_generator_version" in read_json(out / WORLD_FILE)
    except (VlkitError, TypeError):
        is_clips = False
    if not is_clips:
        raise VlkitError(
            f"{out}: folder is not empty and holds no generated clips (no {WORLD_FILE} with a "
            "clips_generator_version); refusing to overwrite it"
        )


def _replace_folder(new: Path, target: Path) -> None:
    """Put `new` at `target`; an old `target` is moved aside first and deleted only after the swap."""
    if not target.exists():
        os.replace(new, target)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, trash / "clips")
    os.replace(new, target)
    shutil.rmtree(trash, ignore_errors=True)
