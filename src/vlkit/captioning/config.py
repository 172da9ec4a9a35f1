"""How captions are decoded, as plain data (torch-free: the CLI builds `--beams` and the rest from it)."""

from __future__ import annotations

from dataclasses import dataclass

from vlkit.runtime.options import option, positive


@dataclass
class DecodingConfig:
    """How to decode. `num_beams=1` is greedy search."""

    num_beams: int = option(1, "--beams", "Beam width; 1 is greedy search.")
    max_new_tokens: int | None = option(
        None, "--max-length", "Longest caption in tokens (default: the captioner's training length)."
    )
    length_penalty: float = option(
        1.0, "--length-penalty", "Beam score = log-prob / length ** X (beam search only)."
    )
    batch_size: int = option(32, "--batch-size", "Images per generate call.")

    def __post_init__(self) -> None:
        positive(self, "num_beams", "batch_size")
        positive(self, "max_new_tokens", allow_none=True)
