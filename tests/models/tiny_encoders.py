"""Tiny timm and open_clip vision encoders, made by the libraries themselves and saved as users get them: a
timm ViT in the layout of the hub's `timm/` repositories, an open_clip architecture registered by its config
file (as open_clip's own model configs are) with its weights in a safetensors file."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

# 32 px images, 8 px patches: a 4x4 grid after the class token (and the registers, when asked for).
TINY_TIMM_VIT = dict(img_size=32, patch_size=8, embed_dim=24, depth=1, num_heads=2, num_classes=0)
OPEN_CLIP_ARCH = "vlkit-tiny-vit"
TINY_OPEN_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 24, "head_width": 12, "patch_size": 8},
    "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}


def save_tiny_timm_vit(folder: Path, reg_tokens: int = 0, seed: int = 0) -> Path:
    """A random tiny timm ViT written by timm's own `save_for_hf`: config.json (architecture, model_args,
    pretrained_cfg with its preprocessing) and model.safetensors, as a `timm/` hub repository holds them."""
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(seed)
    model = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, reg_tokens=reg_tokens, **TINY_TIMM_VIT
    )
    save_for_hf(model, str(folder), safe_serialization=True)
    return folder


def register_tiny_open_clip(root: Path) -> str:
    """Register the tiny architecture with open_clip, its config file under `root` (once per process: the
    registry is open_clip's own, global), and return its name."""
    import open_clip

    if open_clip.get_model_config(OPEN_CLIP_ARCH) is None:
        root.mkdir(parents=True, exist_ok=True)
        path = root / f"{OPEN_CLIP_ARCH}.json"
        path.write_text(json.dumps(TINY_OPEN_CLIP))
        open_clip.add_model_config(path)
    return OPEN_CLIP_ARCH


def save_tiny_open_clip_weights(root: Path, seed: int = 0) -> Path:
    """Random weights of the whole tiny open_clip CLIP as a safetensors file, which the name
    `open_clip:ARCH/FILE` loads."""
    import open_clip

    arch = register_tiny_open_clip(root)
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = open_clip.create_model(arch, pretrained=None)
    path = root / f"{arch}-seed{seed}.safetensors"
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, str(path))
    return path
