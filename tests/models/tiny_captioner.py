"""Tiny captioner parts built from config objects and saved like hub checkpoints: a GPT-2 with a BPE
tokenizer, a ViT with its image processor (the tiny CLIP of `tiny.py` serves as the CLIP encoder)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel, ViTConfig, ViTImageProcessor, ViTModel

from tests.models.tiny import CORPUS, save_tiny_clip
from vlkit.models.text_tokenizer import train_bpe_tokenizer

TINY_GPT2 = dict(n_embd=24, n_layer=2, n_head=2, n_positions=40)


def save_tiny_gpt2(
    folder: Path, captions: list[str] | None = None, seed: int = 0, dropout: float = 0.1
) -> Path:
    """A random tiny GPT-2 whose BPE was trained on `captions` (default: the tiny corpus)."""
    tokenizer = train_bpe_tokenizer(captions or CORPUS, 300, wrap_with_bos_eos=False, model_max_length=40)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        **TINY_GPT2,
    )
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_vit(folder: Path, seed: int = 0) -> Path:
    """A random tiny ViT (32 px, 8 px patches: a CLS token + 16 patches) with its image processor."""
    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=24,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=48,
    )
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def save_tiny_parts(root: Path) -> tuple[Path, Path, Path]:
    """(tiny CLIP folder, tiny ViT folder, tiny GPT-2 folder) under `root`."""
    return save_tiny_clip(root / "clip"), save_tiny_vit(root / "vit"), save_tiny_gpt2(root / "gpt2")
