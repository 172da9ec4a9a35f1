"""Tiny models built from config objects and saved in the HF layout, loaded back through vlkit's loaders."""

from __future__ import annotations

from pathlib import Path

from vlkit.models.architectures import ClipArchitecture
from vlkit.models.clip_scratch import build_clip, image_processor_for
from vlkit.models.text_tokenizer import train_bpe_tokenizer

TINY_CLIP = ClipArchitecture(
    image_size=32,
    patch_size=8,
    vision_width=32,
    vision_layers=1,
    text_width=32,
    text_layers=1,
    heads=2,
    projection_dim=16,
    vocab_size=300,
    max_text_length=16,
)

CORPUS = [
    f"a {size} {colour} {shape} in the {place}"
    for size in ("small", "large")
    for colour in ("red", "green", "blue", "yellow")
    for shape in ("circle", "square", "star")
    for place in ("middle", "top left", "bottom right")
]


def save_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A random tiny CLIP with a BPE tokenizer and an image processor, saved like a hub checkpoint."""
    tokenizer = train_bpe_tokenizer(CORPUS, TINY_CLIP.vocab_size, True, TINY_CLIP.max_text_length)
    model = build_clip(TINY_CLIP, tokenizer.eos_token_id, tokenizer.bos_token_id, seed)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    image_processor_for(TINY_CLIP).save_pretrained(folder)
    return folder
