"""Train a captioner by teacher forcing on a caption dataset, with a validation CIDEr-D every epoch.

The model is `vlkit.models.captioner.model` (encoder + GPT-2 with new cross-attention, one tuning method), the
loop is `vlkit.train.loop` (accelerate, AdamW with warm-up and cosine decay, checkpoints, exact resume) and
the metric is `vlkit.metrics.cider_d`. This module lays out the batches: each epoch is a seeded permutation of
the images, each image with one of its captions drawn per batch (`batch_picks`), so batch k is a pure function
of k (as in the CLIP trainer); from WebDataset shards, the epoch is the seeded stream of `vlkit.train.stream`
instead, with the same caption picks. When the encoder is frozen its features come from the on-disk feature
cache (`vlkit.train.feature_cache`, one part per shard) and the encoder never runs during training. After
every epoch the captioner captions the validation images greedily; the best CIDEr-D's weights are kept in
`OUT/best/`, the last ones in `OUT/`.

(Importing the metric makes training depend on a later stage of the data flow; it is a pure function, and a
per-epoch CIDEr-D is what picks the checkpoint, so the dependency is deliberate.)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import extract_model_from_parallel
from transformers.modeling_outputs import BaseModelOutput

from vlkit.captioning.generate import DecodingConfig, caption_features
from vlkit.data.captions import CaptionDataset
from vlkit.data.images import read_image
from vlkit.data.shards import ShardSample, ShardSource
from vlkit.errors import VlkitError
from vlkit.metrics.cider import cider_d
from vlkit.models.captioner.encoders import encoder_kind
from vlkit.models.captioner.model import Captioner, build_captioner
from vlkit.models.captioner.temporal import VideoSettings, encode_frame_pixels
from vlkit.models.tuning import ParameterCount
from vlkit.runtime.distributed import process_state
from vlkit.runtime.files import write_json_atomic
from vlkit.train.caption_batches import (
    CachedFeatures,
    CaptionBatches,
    ImagePixels,
    decoder_tensors,
    tokenize_captions,
)
from vlkit.train.config import CaptionTrainConfig
from vlkit.train.feature_cache import FeatureCache, ImageParts, build_feature_cache
from vlkit.train.loop import LOSS_LOG, run_training
from vlkit.train.stream import StreamBatches, picked_captions

log = logging.getLogger(__name__)

TRAIN_CONFIG_FILE = "vlkit_caption_train.json"
RESULT_FILE = "vlkit_caption_result.json"
BEST_DIR = "best"


@dataclass
class CaptionTrainResult:
    """Where the captioner went and how it did."""

    out_dir: Path
    parameters: ParameterCount
    final_loss: float
    best_dir: Path | None = None
    best_cider: float | None = None
    best_step: int | None = None
    feature_cache: Path | None = None
    step_seconds: float = float("nan")


def make_caption_loss(trains_encoder: bool, processes: int = 1):
    """Teacher-forcing cross-entropy over caption tokens; a frozen encoder runs in eval mode without grad.

    With several processes each holds a share of the global batch, and the mean over its own tokens would
    weigh a token by its share's token count: the loss is instead the share's token sum over the global
    token count, times the process count (DDP averages the gradients), which is the global batch's mean
    token loss exactly, as on one process (what transformers' Trainer does with `num_items_in_batch`)."""

    def caption_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inner = extract_model_from_parallel(model)
        inputs = {
            "decoder_input_ids": batch["decoder_input_ids"],
            "decoder_attention_mask": batch["decoder_attention_mask"],
        }
        if "encoder_hidden_states" in batch:
            inputs["encoder_outputs"] = BaseModelOutput(last_hidden_state=batch["encoder_hidden_states"])
        elif "frame_pixels" in batch:  # a video captioner's clips, (B, F, 3, H, W)
            inputs["encoder_outputs"] = BaseModelOutput(last_hidden_state=_frame_features(inner, batch))
        elif trains_encoder:
            inputs["pixel_values"] = batch["pixel_values"]
        else:
            inner.encoder.eval()
            with torch.no_grad():
                features = inner.encoder(pixel_values=batch["pixel_values"]).last_hidden_state  # (B, N, C)
            inputs["encoder_outputs"] = BaseModelOutput(last_hidden_state=features)
        labels = batch["labels"]
        if processes == 1:
            return model(**inputs, labels=labels).loss
        logits = model(**inputs).logits
        total = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="sum"
        )
        tokens = (labels != -100).sum()
        torch.distributed.all_reduce(tokens)
        return total * processes / tokens.clamp(min=1)

    return caption_loss


def _frame_features(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Clips' pooled frame tokens, with the gradient only when the encoder trains (its weights do)."""
    settings = VideoSettings.of(model)
    if settings is None:
        raise VlkitError("frame_pixels in a batch for an image captioner")
    layout = encoder_kind(model.config.encoder.model_type, "captioner encoder").layout(model.encoder)
    trains = any(p.requires_grad for p in model.encoder.parameters())
    was_training = model.encoder.training
    if not trains:
        model.encoder.eval()
    try:
        with torch.set_grad_enabled(trains and torch.is_grad_enabled()):
            return encode_frame_pixels(model, batch["frame_pixels"], layout, settings.frame_pool)
    finally:
        model.encoder.train(was_training)


def train_captioner(
    config: CaptionTrainConfig,
    train: CaptionDataset | ShardSource,
    val: CaptionDataset | None,
    out_dir: Path,
    resume: bool = False,
    allow_pickle: bool = False,
) -> CaptionTrainResult:
    """Build the captioner, train it on `train` (a caption dataset, or WebDataset shards read as a stream)
    with CIDEr-D on `val` every epoch, and save it to `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    captioner = build_captioner(config.spec(), allow_pickle=allow_pickle)
    captioner.model.to(process_state().device)  # before the cache is built, so the encoder runs there
    count = captioner.parameter_count()
    log.info("tuning %s: %s", config.captioner.tuning, count.describe())
    trains_encoder = captioner.method.trains_encoder
    use_cache = config.feature_cache and not trains_encoder
    cache_root = Path(config.feature_cache_dir) if config.feature_cache_dir else out_dir / "feature_cache"
    train_cache = None
    if isinstance(train, ShardSource):
        if use_cache:
            train_cache = _cache(captioner, ImageParts.from_shards(train.shards), cache_root, config)
        batches: CaptionBatches | StreamBatches = _stream_batches(captioner, train, train_cache, config)
    else:
        if use_cache:
            train_cache = _cache(captioner, ImageParts.from_paths(train.image_paths()), cache_root, config)
        images = CachedFeatures(train_cache) if train_cache else ImagePixels(captioner, train.image_paths())
        tokens = [
            tokenize_captions(captioner, image.captions, config.captioner.max_caption_tokens)
            for image in train.images
        ]
        batches = CaptionBatches(images, tokens, config.batch_size, config.loop.seed)
    loop = dataclasses.replace(config.loop)
    if config.epochs is not None:  # (CaptionTrainConfig checks it is positive)
        loop.steps = config.epochs * batches.per_epoch
    if process_state().is_main_process:
        write_json_atomic(out_dir / TRAIN_CONFIG_FILE, asdict(config))
    epoch_ends = set(range(batches.per_epoch, loop.steps + 1, batches.per_epoch)) | {loop.steps}
    validator = None
    if val is not None and len(val) > 0:
        validator = _Validator(captioner, val, out_dir, config, cache_root if use_cache else None, epoch_ends)
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
        batches_are_shares=isinstance(batches, StreamBatches),
    )
    main_process = process_state().is_main_process
    if main_process:
        captioner.save(out_dir)
    outcome = CaptionTrainResult(
        out_dir=out_dir,
        parameters=count,
        final_loss=result.final_loss,
        feature_cache=train_cache.folder if train_cache else None,
        step_seconds=result.step_seconds,
    )
    if validator is not None and validator.best_step is not None:
        outcome.best_dir, outcome.best_cider = out_dir / BEST_DIR, validator.best
        outcome.best_step = validator.best_step
    if main_process:
        write_json_atomic(out_dir / RESULT_FILE, _result_json(outcome, loop.steps))
    return outcome


def prepare_feature_caches(
    config: CaptionTrainConfig, train: CaptionDataset, val: CaptionDataset | None = None
) -> None:
    """Build the feature caches `train_captioner(config, train, val, ...)` would read (its train images, and
    the validation images it scores), so that several runs started next (a sweep's methods trained at
    once) reuse them instead of writing the same cache together. Needs `config.feature_cache_dir`."""
    captioner = build_captioner(config.spec())
    if not config.feature_cache or captioner.method.trains_encoder or not config.feature_cache_dir:
        return
    captioner.model.to(process_state().device)
    root = Path(config.feature_cache_dir)
    _cache(captioner, ImageParts.from_paths(train.image_paths()), root, config)
    if val is not None and len(val) > 0:
        images = val.images[: config.val_limit] if config.val_limit else val.images
        _cache(captioner, ImageParts.from_paths([image.path for image in images]), root, config)


def _cache(captioner: Captioner, images: ImageParts, root: Path, config: CaptionTrainConfig) -> FeatureCache:
    # Under `accelerate launch` every process encodes its share of the parts.
    return build_feature_cache(captioner, images, root, config.eval_batch_size, config.feature_dtype)


def _stream_batches(
    captioner: Captioner, source: ShardSource, cache: FeatureCache | None, config: CaptionTrainConfig
) -> StreamBatches:
    """Batches of a shard stream: features from the cache by ordinal, or the samples' pixels."""

    def collate(samples: list[ShardSample], picks: np.ndarray) -> dict[str, torch.Tensor]:
        tokens = tokenize_captions(
            captioner, picked_captions(samples, picks), config.captioner.max_caption_tokens
        )
        if cache is not None:
            images = {"encoder_hidden_states": cache.rows([sample.ordinal for sample in samples])}
        else:
            images = {"pixel_values": captioner.preprocess([sample.image for sample in samples])}
        return {**images, **decoder_tensors(tokens)}

    return StreamBatches.for_this_process(source, config.batch_size, config.loop.seed, collate)


def _result_json(outcome: CaptionTrainResult, steps: int) -> dict[str, Any]:
    return {
        "steps": steps,
        "final_loss": outcome.final_loss,
        "trainable_parameters": outcome.parameters.trainable,
        "total_parameters": outcome.parameters.total,
        "trainable_share": outcome.parameters.share,
        "best_val_cider_d": outcome.best_cider,
        "best_step": outcome.best_step,
        "step_seconds": None if math.isnan(outcome.step_seconds) else outcome.step_seconds,
    }


class _Validator:
    """The loop's `on_log`: at each epoch's end, caption the validation images greedily, score CIDEr-D, and
    save the captioner to OUT/best/ when it beats the best so far (read back from the log on a resume)."""

    def __init__(
        self,
        captioner: Captioner,
        val: CaptionDataset,
        out_dir: Path,
        config: CaptionTrainConfig,
        cache_root: Path | None,
        steps: set[int],
    ):
        self.captioner, self.out_dir, self.steps = captioner, out_dir, steps
        self.images = val.images[: config.val_limit] if config.val_limit else val.images
        paths = [image.path for image in self.images]
        self.cache = (
            _cache(captioner, ImageParts.from_paths(paths), cache_root, config) if cache_root else None
        )
        self.batch_size = config.eval_batch_size
        self.best: float | None = None
        self.best_step: int | None = None
        self._read_best = False

    def __call__(self, step: int, record: dict[str, Any]) -> dict[str, Any]:
        if step not in self.steps:
            return {}
        if not self._read_best:
            self._best_from_log()
        candidates = dict(zip(self._keys(), self._captions(), strict=True))
        references = {key: image.captions for key, image in zip(self._keys(), self.images, strict=True)}
        score = cider_d(candidates, references).score
        log.info("step %d: validation CIDEr-D %.4f", step, score)
        if self.best is None or score > self.best:
            self.best, self.best_step = score, step
            if process_state().is_main_process:
                self._save_best(step, score)
        return {"val_cider_d": score}

    def _keys(self) -> list[int | str]:
        return [image.id for image in self.images]

    def _captions(self) -> list[str]:
        decoding = DecodingConfig(num_beams=1, batch_size=self.batch_size)
        captions: list[str] = []
        for start in range(0, len(self.images), self.batch_size):
            chunk = range(start, min(start + self.batch_size, len(self.images)))
            if self.cache is not None:
                features = self.cache.rows(np.arange(chunk.start, chunk.stop))
            else:
                pixels = self.captioner.preprocess([read_image(self.images[i].path) for i in chunk])
                features = self.captioner.encode_images(pixels)
            captions += caption_features(self.captioner, features, decoding).captions
        return captions

    def _best_from_log(self) -> None:
        """On a resume, the best score of the steps before it (the loop has cut the log there)."""
        self._read_best = True
        log_path = self.out_dir / LOSS_LOG
        if not log_path.exists():
            return
        for line in log_path.read_text().splitlines():
            record = json.loads(line)
            if "val_cider_d" in record and (self.best is None or record["val_cider_d"] > self.best):
                self.best, self.best_step = record["val_cider_d"], record["step"]

    def _save_best(self, step: int, score: float) -> None:
        final = self.out_dir / BEST_DIR
        tmp = self.out_dir / f".{BEST_DIR}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.captioner.save(tmp)
        write_json_atomic(tmp / "best.json", {"step": step, "val_cider_d": score})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
