"""`vlkit:NAME` model names: the embedded default's stand-in "pretrained" models, shipped inside the package.

The stand-ins are HF-layout folders under `vlkit/models/standins/` (config.json, model.safetensors in fp16,
tokenizer and preprocessor files) with a manifest, `vlkit_standin.json`: the command and seed that made them,
the vlkit version, the digest of the shapes world they were trained on, and their measured figures. Every
loader that takes a hub id or a folder takes these names too, resolved here to the shipped folder, so
`vlkit zeroshot --model vlkit:shapes-clip` and `--encoder vlkit:shapes-clip --decoder vlkit:shapes-gpt2` run
the same code path as `openai/clip-vit-base-patch32` and `gpt2`. Nothing here imports torch.

No library resolves names of this kind (the hub's own resolution would look them up online), hence this
small module; `vlkit standins make` (`vlkit.pipelines.standins`) writes the folders again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlkit.errors import VlkitError
from vlkit.runtime.files import read_json

PREFIX = "vlkit:"
STANDINS_DIR = Path(__file__).resolve().parent / "standins"
MANIFEST_FILE = "vlkit_standin.json"
# name -> what it stands for (shown by `vlkit standins list` and in errors)
STANDINS = {
    "shapes-clip": "the shapes world's CLIP (ViT, 64 px images), made by `vlkit clip train` on its alt text",
    "shapes-gpt2": "the shapes world's GPT-2 (4 layers, 128 wide), made by `vlkit lm train` on its captions",
}


def is_standin_name(name: str) -> bool:
    return name.startswith(PREFIX)


def resolve_model_name(name: str) -> str:
    """`vlkit:NAME` -> the shipped folder's path; any other name (hub id, folder) unchanged."""
    if not is_standin_name(name):
        return name
    short = name[len(PREFIX) :]
    if short not in STANDINS:
        raise VlkitError(f"{name}: no such vlkit model (shipped: {', '.join(PREFIX + n for n in STANDINS)})")
    folder = STANDINS_DIR / short
    if not (folder / "model.safetensors").is_file():
        raise VlkitError(
            f"{name}: its files are missing from {folder} (an incomplete install?); "
            "`vlkit standins make` writes them again"
        )
    return str(folder)


def standin_manifest(name: str) -> dict[str, Any]:
    """The manifest of a shipped stand-in (`vlkit:shapes-clip` or `shapes-clip`)."""
    short = name[len(PREFIX) :] if is_standin_name(name) else name
    folder = Path(resolve_model_name(PREFIX + short))
    manifest = read_json(folder / MANIFEST_FILE)
    if not isinstance(manifest, dict):
        raise VlkitError(f"{folder / MANIFEST_FILE}: expected a JSON object")
    return manifest
