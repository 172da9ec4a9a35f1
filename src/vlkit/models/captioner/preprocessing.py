"""The encoder's own preprocessing, kept with the captioner (preprocessor_config.json) so that a loaded
captioner resizes, crops and normalizes images as its encoder was evaluated with.

Hub ViTs, CLIPs and SigLIPs come with a transformers image processor, which saves and loads itself. A timm
checkpoint keeps its preprocessing in config.json's `pretrained_cfg` (input size, interpolation, crop_pct,
crop mode, mean, std), which transformers' `TimmWrapperImageProcessor` turns into timm's own evaluation
transform. open_clip's preprocess config says the same things in other words; it is translated into a
`pretrained_cfg` here, so open_clip towers run timm's transform too, which builds the same torchvision steps
as open_clip's (tested pixel for pixel). `TimmWrapperImageProcessor` does not save itself (it expects to live
in a timm checkpoint's config.json) and reads config.json when loaded, which in a captioner folder is the
encoder-decoder's: `save_image_processor` and `load_saved_image_processor` keep its settings in
preprocessor_config.json instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import AutoImageProcessor

from vlkit.errors import VlkitError
from vlkit.runtime.files import read_json, write_json_atomic

PREPROCESSOR_FILE = "preprocessor_config.json"
TIMM_PROCESSOR = "TimmWrapperImageProcessor"
# open_clip's resize modes as timm's crop modes, with crop_pct 1.0 (nothing cut beyond the target size):
# `shortest` resizes the shorter side and crops the centre, `squash` resizes both sides. `longest` pads with
# open_clip's fill colour where timm's `border` pads with the mean colour: not the same pixels, so refused.
OPEN_CLIP_RESIZE_MODES = {"shortest": "center", "squash": "squash"}


def timm_image_processor(pretrained_cfg: dict[str, Any], architecture: str | None = None) -> Any:
    """transformers' processor running timm's evaluation transform of `pretrained_cfg`."""
    from transformers import TimmWrapperImageProcessor

    return TimmWrapperImageProcessor(pretrained_cfg=pretrained_cfg, architecture=architecture)


def open_clip_image_processor(preprocess_cfg: dict[str, Any], source: str) -> Any:
    """The processor of an open_clip preprocess config (`model.visual.preprocess_cfg`)."""
    mode = preprocess_cfg.get("resize_mode", "shortest")
    if mode not in OPEN_CLIP_RESIZE_MODES:
        raise VlkitError(
            f"{source}: open_clip resize mode {mode!r} is not supported (supported: "
            f"{', '.join(OPEN_CLIP_RESIZE_MODES)})"
        )
    size = preprocess_cfg["size"]
    height, width = (size, size) if isinstance(size, int) else size
    pretrained_cfg = {
        "input_size": [3, int(height), int(width)],
        "interpolation": preprocess_cfg.get("interpolation", "bicubic"),
        "mean": list(preprocess_cfg["mean"]),
        "std": list(preprocess_cfg["std"]),
        "crop_pct": 1.0,
        "crop_mode": OPEN_CLIP_RESIZE_MODES[mode],
    }
    return timm_image_processor(pretrained_cfg, source)


def save_image_processor(processor: Any, folder: Path) -> None:
    """Write `processor` to folder/preprocessor_config.json (a timm one as its resolved settings)."""
    from transformers import TimmWrapperImageProcessor

    if isinstance(processor, TimmWrapperImageProcessor):
        resolved = {k: list(v) if isinstance(v, tuple) else v for k, v in processor.data_config.items()}
        settings = {
            "image_processor_type": TIMM_PROCESSOR,
            "architecture": processor.architecture,
            "pretrained_cfg": resolved,
        }
        write_json_atomic(folder / PREPROCESSOR_FILE, settings)
    else:
        processor.save_pretrained(folder)


def load_saved_image_processor(folder: Path) -> Any:
    """The processor `save_image_processor` wrote to `folder`."""
    path = folder / PREPROCESSOR_FILE
    settings = read_json(path) if path.is_file() else {}
    if isinstance(settings, dict) and settings.get("image_processor_type") == TIMM_PROCESSOR:
        if not isinstance(settings.get("pretrained_cfg"), dict):
            raise VlkitError(f"{path}: a timm image processor without a 'pretrained_cfg' object")
        return timm_image_processor(settings["pretrained_cfg"], settings.get("architecture"))
    try:
        return AutoImageProcessor.from_pretrained(folder, backend="pil")
    except (OSError, ValueError) as exc:
        raise VlkitError(f"{folder}: cannot load its image processor ({exc})".splitlines()[0]) from exc
