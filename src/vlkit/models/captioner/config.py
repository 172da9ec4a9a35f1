"""What a captioner is made of, as plain data: `CaptionerSpec` (torch-free, so the CLI builds its options
from these fields without loading a model library)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from vlkit.models.tuning import TUNING_METHODS
from vlkit.runtime.options import option, require

MAX_CONNECTOR_LAYERS = 8
CONNECTOR_KINDS = ("attention", "local")
TEMPORAL_CHOICES = ("meanp", "concat", "seq")  # (models/captioner/temporal.py; "" is an image captioner)
_METHODS_HELP = " | ".join(f"{name}: {method.summary}" for name, method in TUNING_METHODS.items())


@dataclass
class CaptionerSpec:
    """What to build: the two pretrained parts, the tuning method and its settings, the connector."""

    encoder: str = option(
        flag="--encoder",
        help="Vision encoder: hub id or folder of a CLIP, SigLIP, ViT or timm ViT (a CLIP gives its tower; "
        "e.g. timm/vit_large_patch14_clip_224.laion2b), or open_clip:ARCH/PRETRAINED (its vision tower).",
    )
    decoder: str = option(flag="--decoder", help="GPT-2-family decoder: hub id or folder (e.g. gpt2).")
    tuning: str = option("lora", "--tuning", f"What trains. {_METHODS_HELP}.")
    tuning_config: dict[str, Any] = option(
        factory=dict, help="the method's settings as JSON (absent fields: the method's defaults)"
    )
    max_caption_tokens: int = option(
        32, "--max-caption-tokens", "Caption tokens kept, end included (training and generation)."
    )
    seed: int = option(0, help="seed of every new weight")
    connector_layers: int = option(
        0,
        "--connector-layers",
        "New layers between the image tokens and the cross-attention (they train with every method; "
        "0: none).",
    )
    connector: str = option(
        "attention",
        "--connector",
        "The connector's layers: attention (transformer layers over all tokens) or local (each patch token "
        "mixed with its 3x3 neighbours).",
    )

    temporal: str = option(
        "",
        "--temporal",
        "Caption videos: the temporal module over the frames' tokens: meanp (their mean, blind to order), "
        "concat (every frame's tokens with a learned temporal embedding) or seq (a small transformer over "
        "them); empty: an image captioner.",
    )
    frames: int = option(8, "--frames", "Video: frames sampled per clip (the most the captioner reads).")
    frame_sampling: str = option(
        "uniform", "--frame-sampling", "Video: how the frames are sampled: uniform, head or tail."
    )
    frame_pool: int = option(
        2,
        "--frame-pool",
        "Video: tokens kept per frame: CLS plus the patch grid average-pooled to N x N (0: CLS only).",
    )
    temporal_layers: int = option(1, "--temporal-layers", "Video: transformer layers of --temporal seq.")

    def __post_init__(self) -> None:
        require(
            self,
            "tuning",
            self.tuning in TUNING_METHODS,
            f"unknown method {self.tuning!r} (choose {', '.join(TUNING_METHODS)})",
        )
        if self.tuning_config is None:
            self.tuning_config = {}
        elif not isinstance(self.tuning_config, dict):  # a method's config object, from Python
            self.tuning_config = dataclasses.asdict(self.tuning_config)
        require(
            self,
            "max_caption_tokens",
            self.max_caption_tokens >= 1,
            f"must be at least 1, got {self.max_caption_tokens}",
        )
        layers = self.connector_layers
        require(
            self,
            "connector_layers",
            isinstance(layers, int) and not isinstance(layers, bool) and 0 <= layers <= MAX_CONNECTOR_LAYERS,
            f"must be between 0 and {MAX_CONNECTOR_LAYERS}, got {layers!r}",
        )
        require(
            self,
            "connector",
            self.connector in CONNECTOR_KINDS,
            f"must be one of {', '.join(CONNECTOR_KINDS)}, got {self.connector!r}",
        )

        if self.temporal:
            self._check_video()

    def _check_video(self) -> None:
        require(
            self,
            "temporal",
            self.temporal in TEMPORAL_CHOICES,
            f"must be one of {', '.join(TEMPORAL_CHOICES)} (or empty), got {self.temporal!r}",
        )
        require(self, "frames", 1 <= self.frames <= 256, f"must be between 1 and 256, got {self.frames}")
        require(
            self,
            "frame_sampling",
            self.frame_sampling in ("uniform", "head", "tail"),
            f"must be uniform, head or tail, got {self.frame_sampling!r}",
        )
        require(
            self, "frame_pool", 0 <= self.frame_pool <= 8, f"must be between 0 and 8, got {self.frame_pool}"
        )
        require(
            self,
            "temporal_layers",
            1 <= self.temporal_layers <= 4,
            f"must be between 1 and 4, got {self.temporal_layers}",
        )
        require(
            self,
            "connector",
            self.connector_layers == 0 or self.connector == "attention",
            "a video captioner's connector must be attention (its tokens are frames, not one patch grid)",
        )

    def method_config(self) -> Any:
        """The tuning method's config object: its defaults overridden by `tuning_config`."""
        from vlkit.models.tuning import tuning_method

        return tuning_method(self.tuning).config_from_dict(self.tuning_config, "tuning_config")
