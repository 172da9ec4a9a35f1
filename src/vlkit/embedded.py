"""The embedded default: the shapes world, the CLIP trained on it and the GPT-2 trained on its captions.

`vlkit demo` and `vlkit caption sweep` (run without data arguments) both need these three; each is made once
under a folder and reused when already complete there, so a run stopped half way continues where it stopped
(the CLIP and the LM resume from their newest checkpoints).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from vlkit.data.captions import CaptionDataset, load_caption_dataset
from vlkit.data.shapes import ShapesConfig, WorldSummary, generate_world, load_world_meta
from vlkit.models.lm import LmTrainConfig, train_lm
from vlkit.train.clip_trainer import ClipTrainConfig, train_clip

log = logging.getLogger(__name__)


@dataclass
class EmbeddedPlan:
    """Sizes of the embedded default; `quick` shrinks everything for a smoke test of the whole path."""

    world: ShapesConfig
    clip: ClipTrainConfig
    lm: LmTrainConfig
    captioner_steps: int


def embedded_plan(seed: int, quick: bool) -> EmbeddedPlan:
    world = ShapesConfig(seed=seed)
    clip = ClipTrainConfig()
    clip.loop.seed, clip.group_size = seed, world.contrast_group
    lm = LmTrainConfig()
    lm.loop.seed, captioner_steps = seed, 1000
    if quick:
        world = ShapesConfig(seed=seed, n_train=64, n_val=16, per_class_train=1, per_class_val=1, workers=1)
        clip.loop.steps, clip.loop.checkpoint_every, clip.batch_size = 4, 2, 16
        lm.loop.steps, lm.batch_size, captioner_steps = 4, 16, 4
    return EmbeddedPlan(world, clip, lm, captioner_steps)


def world_is_current(world: Path, config: ShapesConfig) -> bool:
    if not (world / "meta.json").is_file():
        return False
    meta = load_world_meta(world)
    return (meta["seed"], meta["n_train"], meta["n_val"]) == (config.seed, config.n_train, config.n_val)


def ensure_world(
    config: ShapesConfig, folder: Path
) -> tuple[CaptionDataset, CaptionDataset, WorldSummary | None]:
    """Generate the world into `folder` unless it is already there; return its (train, val) caption sets and
    the summary of the generation (None when the world was reused)."""
    summary = None
    if world_is_current(folder, config):
        log.info("reusing %s", folder)
    else:
        summary = generate_world(config, folder)
    return (
        load_caption_dataset(folder / "train.json", folder / "images"),
        load_caption_dataset(folder / "val.json", folder / "images"),
        summary,
    )


def ensure_clip(config: ClipTrainConfig, train: CaptionDataset, val: CaptionDataset, folder: Path) -> bool:
    """Train the CLIP into `folder` unless it is complete there; True when it was reused."""
    if (folder / "model.safetensors").is_file():
        return True
    train_clip(config, train, val, folder, resume=True)
    return False


def ensure_lm(config: LmTrainConfig, train: CaptionDataset, val: CaptionDataset, folder: Path) -> bool:
    """Train the caption LM (the embedded default's "pretrained GPT-2") unless complete; True when reused."""
    if (folder / "model.safetensors").is_file():
        return True
    train_lm(config, train.all_captions(), folder, val.all_captions(), resume=True)
    return False
