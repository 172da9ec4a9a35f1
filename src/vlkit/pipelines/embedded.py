"""The embedded default: the shapes world, the CLIP trained on it and the GPT-2 trained on its captions.

`vlkit demo` and `vlkit caption sweep` (run without data arguments) both need these three; each is made once
under a folder and reused when already complete there and stamped with the world it was made from, so a run
stopped half way continues where it stopped (the CLIP and the LM resume from their newest checkpoints), and a
world made again (another seed, a newer generator) trains them again. The CLIP learns from the world's
alt-text corpus (`alt_text/`), the LM and the captioner from its scene captions.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from vlkit.data.captions import CaptionDataset, load_caption_dataset
from vlkit.errors import VlkitError
from vlkit.runtime.files import read_json, write_json_atomic
from vlkit.shapes.meta import META_FILE, is_world, load_world_meta
from vlkit.shapes.world import (
    ALT_TEXT_DIR,
    GENERATOR_VERSION,
    ShapesConfig,
    WorldSummary,
    generate_world,
)
from vlkit.train.clip_trainer import train_clip
from vlkit.train.config import ClipTrainConfig, LmTrainConfig
from vlkit.train.lm_trainer import train_lm

log = logging.getLogger(__name__)


@dataclass
class EmbeddedPlan:
    """Sizes of the embedded default; `quick` shrinks everything for a smoke test of the whole path."""

    world: ShapesConfig
    clip: ClipTrainConfig
    lm: LmTrainConfig
    # the demo's budget for each tuning method (P2), chosen in docs/embedded-default.md
    captioner_steps: int
    captioner_batch: int = 32
    captioner_learning_rate: float = 1e-3


def embedded_plan(seed: int, quick: bool) -> EmbeddedPlan:
    world = ShapesConfig(seed=seed)
    clip = ClipTrainConfig()
    clip.loop.seed = seed
    lm = LmTrainConfig()
    lm.loop.seed, captioner_steps = seed, 400
    if quick:
        world = ShapesConfig(
            seed=seed, n_train=64, n_val=16, per_class_train=1, per_class_val=1, n_alt_text=64,
            n_alt_text_val=16, workers=1,
        )
        clip.loop.steps, clip.loop.checkpoint_every, clip.batch_size = 4, 2, 16
        lm.loop.steps, lm.batch_size, captioner_steps = 4, 16, 4
    return EmbeddedPlan(world, clip, lm, captioner_steps)


def world_is_current(world: Path, config: ShapesConfig) -> bool:
    if not is_world(world):
        return False
    found = read_json(world / META_FILE)
    if not isinstance(found, dict) or found.get("generator_version") != GENERATOR_VERSION:
        return False  # an older generator's world: made again (load_world_meta would refuse it)
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


WORLD_STAMP = "vlkit_world.json"  # in each model folder: the meta.json digest of the world it was made from


def world_digest(world: Path) -> str:
    """The digest of WORLD/meta.json: the generator is deterministic, so equal digests mean equal worlds."""
    return hashlib.sha256((world / "meta.json").read_bytes()).hexdigest()


def is_made_from(folder: Path, world: Path) -> bool:
    """True when `folder` holds a finished model made from this world."""
    return (folder / "model.safetensors").is_file() and _stamped(folder, world)


def start_from(folder: Path, world: Path) -> bool:
    """Stamp `folder` with the world a model is about to be trained from; True when a stopped run of the same
    world may resume there. Checkpoints of another world (or of an unstamped folder) are deleted: a resume
    would otherwise continue a model of that world, and its finished weights would be reused."""
    if _stamped(folder, world):
        return True
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    (folder / "model.safetensors").unlink(missing_ok=True)
    write_json_atomic(folder / WORLD_STAMP, {"meta_sha256": world_digest(world)})
    return False


def _stamped(folder: Path, world: Path) -> bool:
    try:
        stamp = read_json(folder / WORLD_STAMP)
    except VlkitError:
        return False
    return isinstance(stamp, dict) and stamp.get("meta_sha256") == world_digest(world)


def ensure_clip(config: ClipTrainConfig, world: Path, folder: Path) -> bool:
    """Train the CLIP on the world's alt-text corpus into `folder` unless made there; True when reused."""
    if is_made_from(folder, world):
        return True
    corpus = world / ALT_TEXT_DIR
    train = load_caption_dataset(corpus / "train.json", corpus / "images")
    val = load_caption_dataset(corpus / "val.json", corpus / "images")
    train_clip(config, train, val, folder, resume=start_from(folder, world))
    return False


def ensure_lm(
    config: LmTrainConfig, train: CaptionDataset, val: CaptionDataset, world: Path, folder: Path
) -> bool:
    """Train the caption LM (the embedded default's "pretrained GPT-2") unless made; True when reused."""
    if is_made_from(folder, world):
        return True
    train_lm(config, train.all_captions(), folder, val.all_captions(), resume=start_from(folder, world))
    return False
