"""The sizes of the small models vlkit trains from scratch (the embedded default's CLIP and GPT-2), as plain
data: each field maps onto a transformers config (`CLIPConfig`, `GPT2Config`). Torch-free, so the trainers'
configs and the CLI read them without loading a model library."""

from __future__ import annotations

from dataclasses import dataclass

from vlkit.runtime.options import option, require


@dataclass
class ClipArchitecture:
    """A small CLIP for the embedded default (`vlkit.models.clip_scratch`)."""

    image_size: int = 64
    # 16 px patches (a 4x4 grid): on the shapes world a ViT learned shapes several times faster with them
    # than with 8 px (64 tokens) or 4 px patches at the same budget.
    patch_size: int = 16
    vision_width: int = 128
    vision_layers: int = 4
    text_width: int = 128
    text_layers: int = 3
    heads: int = 4
    projection_dim: int = 128
    vocab_size: int = 512
    max_text_length: int = 32


@dataclass
class LmArchitecture:
    """A small GPT-2 (`vlkit.models.lm`)."""

    width: int = option(128, help="embedding width (n_embd)")
    layers: int = option(4, help="transformer blocks (n_layer)")
    heads: int = option(4, help="attention heads (n_head)")
    positions: int = option(40, help="longest token row, both end tokens included")
    vocab_size: int = option(512, help="byte-level BPE vocabulary size")

    def __post_init__(self) -> None:
        require(
            self,
            "positions",
            self.positions >= 3,
            f"must be at least 3 (eos, a token, eos), got {self.positions}",
        )
