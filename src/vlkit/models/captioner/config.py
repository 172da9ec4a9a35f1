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

    def method_config(self) -> Any:
        """The tuning method's config object: its defaults overridden by `tuning_config`."""
        from vlkit.models.tuning import tuning_method

        return tuning_method(self.tuning).config_from_dict(self.tuning_config, "tuning_config")
