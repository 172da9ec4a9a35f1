"""What each trainer is told, as plain data: the shared loop settings and one config per trainable thing.

Each config is saved as JSON beside the weights it made and read back with `from_dict`; its fields carry
their CLI flag and help (`vlkit.runtime.options`), so a new option is one field here. Torch-free: the CLI
builds its options from these classes without loading torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from vlkit.models.architectures import ClipArchitecture, LmArchitecture
from vlkit.models.captioner.config import CaptionerSpec
from vlkit.runtime.options import config_from_dict, option, positive, require

MIXED_PRECISIONS = ("no", "bf16", "fp16", "auto")


@dataclass
class LoopConfig:
    """How long and how fast to train; shared by every trainer's own config (`vlkit.train.loop`)."""

    steps: int = option(1000, "--steps", "Optimizer steps.")
    learning_rate: float = option(1e-3, "--learning-rate", "Peak learning rate.")
    weight_decay: float = option(0.05, help="AdamW's weight decay")
    warmup_steps: int = option(50, "--warmup-steps", "Linear warm-up steps before the cosine decay.")
    max_grad_norm: float | None = option(1.0, help="gradient clipping norm (None: no clipping)")
    checkpoint_every: int = option(200, "--checkpoint-every", "Steps between checkpoints.")
    log_every: int = option(10, "--log-every", "Steps between loss log records.")
    mixed_precision: str = option(
        "auto", "--mixed-precision", "no, bf16, fp16 or auto (bf16 where the hardware has it natively)."
    )
    seed: int = option(0, "--seed", "Seed of the new weights, the data order and dropout.")

    def __post_init__(self) -> None:
        positive(self, "steps", "learning_rate", "checkpoint_every", "log_every")
        require(self, "warmup_steps", self.warmup_steps >= 0, f"must be 0 or more, got {self.warmup_steps}")
        require(
            self,
            "mixed_precision",
            self.mixed_precision in MIXED_PRECISIONS,
            f"must be one of {', '.join(MIXED_PRECISIONS)}, got {self.mixed_precision!r}",
        )


@dataclass
class ClipTrainConfig:
    """`vlkit clip train`: architecture, batch and loop settings."""

    architecture: ClipArchitecture = option(factory=ClipArchitecture)
    loop: LoopConfig = option(
        factory=lambda: LoopConfig(steps=3000, learning_rate=1e-3, warmup_steps=100, checkpoint_every=300)
    )
    batch_size: int = option(64, "--batch-size", "Images (each with one of its captions) per step.")
    group_size: int = option(
        1, help="consecutive images batched together (the shapes world's contrast groups)"
    )
    eval_every: int = option(250, help="steps between validation losses")
    swap_groups: list[list[str]] = option(
        factory=list,
        help="groups of interchangeable words (e.g. the shape names): each caption gets one hard negative "
        "caption with one of its group words swapped for another of the same group (NegCLIP)",
    )

    def __post_init__(self) -> None:
        require(
            self,
            "batch_size",
            self.batch_size >= 2,
            f"must be at least 2 for a contrastive loss, got {self.batch_size}",
        )
        require(
            self,
            "swap_groups",
            all(len(group) >= 2 for group in self.swap_groups),
            "each group needs at least two words",
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "ClipTrainConfig") -> ClipTrainConfig:
        return config_from_dict(cls, data, source)


@dataclass
class LmTrainConfig:
    """`vlkit lm train`: architecture, batch and loop settings."""

    architecture: LmArchitecture = option(factory=LmArchitecture)
    loop: LoopConfig = option(
        factory=lambda: LoopConfig(
            steps=600, learning_rate=1e-3, weight_decay=0.01, warmup_steps=40, checkpoint_every=100
        )
    )
    batch_size: int = option(64, "--batch-size", "Captions per step.")
    eval_every: int = option(100, help="steps between validation losses")

    def __post_init__(self) -> None:
        positive(self, "batch_size", "eval_every")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "LmTrainConfig") -> LmTrainConfig:
        return config_from_dict(cls, data, source)


# The captioner's fields that configs written before `CaptionTrainConfig.captioner` held at its top level.
_FLAT_CAPTIONER_FIELDS = (
    "encoder",
    "decoder",
    "tuning",
    "tuning_config",
    "max_caption_tokens",
    "connector_layers",
    "connector",
)


@dataclass
class CaptionTrainConfig:
    """`vlkit caption train`: the captioner to build (`CaptionerSpec`) and how to train it."""

    captioner: CaptionerSpec
    batch_size: int = option(32, "--batch-size", "Images (one caption each) per step.")
    epochs: int | None = option(None, "--epochs", "Train for this many epochs (overrides --steps).")
    loop: LoopConfig = option(
        factory=lambda: LoopConfig(
            steps=1000, learning_rate=1e-3, weight_decay=0.01, warmup_steps=50, checkpoint_every=200
        )
    )
    feature_cache: bool = option(
        True, "--feature-cache/--no-feature-cache", "Cache a frozen encoder's features on disk."
    )
    feature_cache_dir: str | None = option(
        None,
        "--feature-cache-dir",
        "Folder of feature caches, shareable between runs (default: OUT/feature_cache).",
    )
    feature_dtype: str = option("float32", help="cached features' dtype: float32, float16")
    val_limit: int | None = option(None, "--val-limit", "Validate CIDEr-D on the first N val images.")
    eval_batch_size: int = option(64, help="images per encoder or generate call")

    def __post_init__(self) -> None:
        positive(self, "batch_size", "eval_batch_size")
        positive(self, "epochs", "val_limit", allow_none=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "CaptionTrainConfig") -> CaptionTrainConfig:
        """From the JSON `dataclasses.asdict` writes, or the flat layout of earlier versions (the captioner's
        fields at the top level)."""
        if "captioner" not in data and "encoder" in data:
            data = dict(data)
            data["captioner"] = {name: data.pop(name) for name in _FLAT_CAPTIONER_FIELDS if name in data}
        return config_from_dict(cls, data, source)

    def spec(self) -> CaptionerSpec:
        """The captioner to build: new weights seeded by the loop's seed."""
        return dataclasses.replace(self.captioner, seed=self.loop.seed)
