"""The vision-and-language models a ViLBERT run may train, by name, and `load_vl_model(folder)`.

A "VL model" is a `torch.nn.Module` with ViLBERT's interface: `forward(**model_inputs(batch))` returning an
object with ViLBERT's output fields, the head methods (`masked_word_logits`, `masked_region_logits`,
`alignment_logits`, `answer_logits`, `referring_logits`, `retrieval_scores`), `count_parameters()`,
`save_pretrained(folder, tokenizer=None)` and a classmethod `from_pretrained(folder)`. Its folder's
config.json names its class under `VL_MODEL_KEY`; `VL_MODELS` maps that name to the module and class, a plain
dict imported on use (so a folder of one kind never imports the others), extended by adding a line.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from vlkit.errors import VlkitError
from vlkit.models.vilbert.config import CONFIG_FILE, VL_MODEL_KEY
from vlkit.runtime.files import read_json

VL_MODELS: dict[str, tuple[str, str]] = {
    "vilbert": ("vlkit.models.vilbert.model", "ViLBertModel"),
    "lxmert": ("vlkit.models.vilbert.peers", "LxmertVL"),
    "visualbert": ("vlkit.models.vilbert.peers", "VisualBertVL"),
    "blinded": ("vlkit.models.vilbert.baselines", "BlindedModel"),
}


def vl_model_kind(folder: str | os.PathLike[str]) -> str:
    """The name in `folder/config.json` of the VL model the folder holds; a folder that holds none is a
    `VlkitError` naming it."""
    path = Path(folder)
    if not path.is_dir():
        raise VlkitError(f"{path}: model folder not found")
    config = path / CONFIG_FILE
    if not config.is_file():
        raise VlkitError(
            f"{path}: no {CONFIG_FILE}, so not a VL model folder (vlkit vilbert pretrain writes one)"
        )
    data = read_json(config)
    kind = data.get(VL_MODEL_KEY) if isinstance(data, dict) else None
    if kind is None:
        raise VlkitError(f"{config}: no {VL_MODEL_KEY!r} key, so not a vlkit VL model (ViLBERT or a peer)")
    if kind not in VL_MODELS:
        raise VlkitError(f"{config}: {VL_MODEL_KEY} {kind!r} is unknown (known: {', '.join(VL_MODELS)})")
    return kind


def vl_model_class(kind: str) -> Any:
    """The class registered under `kind` (a key of `VL_MODELS`)."""
    if kind not in VL_MODELS:
        raise VlkitError(f"VL model {kind!r}: unknown (known: {', '.join(VL_MODELS)})")
    module, name = VL_MODELS[kind]
    return getattr(importlib.import_module(module), name)


def load_vl_model(folder: str | os.PathLike[str]) -> Any:
    """The VL model saved in `folder`, by the class its config.json names, in eval mode."""
    return vl_model_class(vl_model_kind(folder)).from_pretrained(folder).eval()
