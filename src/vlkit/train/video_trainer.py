"""Train a video captioner: `vlkit caption train --data DIR --temporal seq --frames 8`.

The image trainer's pieces with clips for images (`vlkit.train.caption_trainer`): the loop (`vlkit.train.
loop`: accelerate, AdamW, warm-up and cosine decay, checkpoints, exact resume), the step-indexed batches
(`CaptionBatches`: epoch e a seeded permutation of the clips, each with one caption picked per batch), the
teacher-forcing loss, the validation CIDEr-D after every epoch with the best weights kept in OUT/best/. A
frozen encoder's pooled frame tokens come from the feature cache keyed by the sampling settings
(`vlkit.train.video_features`), so the encoder runs once per clip, never during training.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vlkit.captioning.generate import DecodingConfig, caption_features
from vlkit.data.video import read_video
from vlkit.data.video_captions import VideoCaptionData
from vlkit.errors import VlkitError
from vlkit.models.captioner.model import Captioner, build_captioner
from vlkit.runtime.distributed import process_state
from vlkit.runtime.files import write_json_atomic
from vlkit.train.caption_batches import CachedFeatures, CaptionBatches, tokenize_captions
from vlkit.train.caption_trainer import (
    RESULT_FILE,
    TRAIN_CONFIG_FILE,
    CaptionTrainResult,
    _result_json,
    _Validator,
    make_caption_loss,
)
from vlkit.train.config import CaptionTrainConfig
from vlkit.train.feature_cache import FeatureCache, build_feature_cache
from vlkit.train.loop import run_training
from vlkit.train.video_features import VideoPixels, captioner_sampling, captioner_video_parts

log = logging.getLogger(__name__)


@dataclass
class _Clip:
    """A validation clip as the validator reads it (an image's fields: id, path, captions)."""

    id: int | str
    path: Path
    captions: list[str]


def train_video_captioner(
    config: CaptionTrainConfig,
    train: VideoCaptionData,
    val: VideoCaptionData | None,
    out_dir: Path,
    resume: bool = False,
    allow_pickle: bool = False,
) -> CaptionTrainResult:
    """Build the video captioner `config.captioner` asks for (it must name a `temporal` module), train it on
    `train`'s clips with CIDEr-D on `val` every epoch, and save it to `out_dir`."""
    if not config.captioner.temporal:
        raise VlkitError("--temporal: a video dataset needs a temporal module (meanp, concat or seq)")
    out_dir.mkdir(parents=True, exist_ok=True)
    captioner = build_captioner(config.spec(), allow_pickle=allow_pickle)
    captioner.model.to(process_state().device)
    count = captioner.parameter_count()
    trains_encoder = captioner.method.trains_encoder
    use_cache = config.feature_cache and not trains_encoder
    cache_root = Path(config.feature_cache_dir) if config.feature_cache_dir else out_dir / "feature_cache"
    paths = [path for _, path in train.videos]
    train_cache = _cache(captioner, paths, cache_root, config) if use_cache else None
    images = CachedFeatures(train_cache) if train_cache else VideoPixels(captioner, paths)
    length = config.captioner.max_caption_tokens
    tokens = [tokenize_captions(captioner, train.captions[key], length) for key, _ in train.videos]
    batches = CaptionBatches(images, tokens, config.batch_size, config.loop.seed)
    loop = dataclasses.replace(config.loop)
    if config.epochs is not None:
        loop.steps = config.epochs * batches.per_epoch
    if process_state().is_main_process:
        write_json_atomic(out_dir / TRAIN_CONFIG_FILE, asdict(config))
    epoch_ends = set(range(batches.per_epoch, loop.steps + 1, batches.per_epoch)) | {loop.steps}
    validator = None
    if val is not None and len(val.videos) > 0:
        clips = [_Clip(key, path, val.captions[key]) for key, path in val.videos]
        validator = _VideoValidator(captioner, clips, out_dir, config, cache_root if use_cache else None)
        validator.steps = epoch_ends
    result = run_training(
        captioner.model,
        captioner.model.parameters(),
        batches,
        make_caption_loss(trains_encoder, process_state().num_processes),
        loop,
        out_dir,
        resume,
        validator,
        extra_log_steps=epoch_ends,
    )
    if process_state().is_main_process:
        captioner.save(out_dir)
    outcome = CaptionTrainResult(
        out_dir=out_dir,
        parameters=count,
        final_loss=result.final_loss,
        feature_cache=train_cache.folder if train_cache else None,
        step_seconds=result.step_seconds,
    )
    if validator is not None and validator.best_step is not None:
        outcome.best_dir, outcome.best_cider = out_dir / "best", validator.best
        outcome.best_step = validator.best_step
    if process_state().is_main_process:
        write_json_atomic(out_dir / RESULT_FILE, _result_json(outcome, loop.steps))
    return outcome


def _cache(captioner: Captioner, paths: list[Path], root: Path, config: CaptionTrainConfig) -> FeatureCache:
    parts = captioner_video_parts(captioner, paths)
    return build_feature_cache(captioner, parts, root, config.eval_batch_size, config.feature_dtype)


class _VideoValidator(_Validator):
    """The image trainer's validator over clips: their cached pooled frame tokens, or the clips decoded."""

    def __init__(
        self,
        captioner: Captioner,
        clips: list[_Clip],
        out_dir: Path,
        config: CaptionTrainConfig,
        cache_root: Path | None,
    ):
        self.captioner, self.out_dir, self.steps = captioner, out_dir, set()
        self.images = clips[: config.val_limit] if config.val_limit else clips
        paths = [clip.path for clip in self.images]
        self.cache = _cache(captioner, paths, cache_root, config) if cache_root else None
        self.batch_size = config.eval_batch_size
        self.best, self.best_step, self._read_best = None, None, False
        self.sampling = captioner_sampling(captioner)

    def _captions(self) -> list[str]:
        decoding = DecodingConfig(num_beams=1, batch_size=self.batch_size)
        captions: list[str] = []
        for start in range(0, len(self.images), self.batch_size):
            chunk = range(start, min(start + self.batch_size, len(self.images)))
            if self.cache is not None:
                features = self.cache.rows(np.arange(chunk.start, chunk.stop))
            else:
                clips = [read_video(self.images[i].path, self.sampling).frames for i in chunk]
                features = self.captioner.encode_videos(clips)
            captions += caption_features(self.captioner, features, decoding).captions
        return captions


def load_video_splits(data: Path) -> tuple[VideoCaptionData, VideoCaptionData | None]:
    """DATA/train (annotations.json and videos/) and, when there, DATA/val: the video caption layout."""
    from vlkit.data.video_captions import load_video_captions

    splits = []
    for split in ("train", "val"):
        annotations = data / split / "annotations.json"
        if not annotations.is_file():
            if split == "train":
                raise VlkitError(f"--data {data}: {split}/annotations.json not found (the video layout)")
            splits.append(None)
            continue
        splits.append(load_video_captions(annotations, data / split / "videos"))
    return splits[0], splits[1]
