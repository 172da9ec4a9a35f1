"""vlkit: one CLI and one Python API for studying vision-language models.

CLIP zero-shot classification with prompt analysis, parameter-efficient image captioning, caption metrics
(CIDEr-D, CLIPScore) and attention maps, on real weights or on the embedded shapes world.
"""

from __future__ import annotations

from vlkit.data.captions import CaptionDataset, load_caption_dataset
from vlkit.data.classification import ClassificationDataset, load_classification_dataset
from vlkit.data.images import read_image
from vlkit.data.shapes import ShapesConfig, generate_world
from vlkit.data.shards import ShardSet, ShardSource, read_shards, write_shards
from vlkit.errors import VlkitError
from vlkit.models.clip import Clip, ClipSpec, load_clip
from vlkit.train.clip_trainer import ClipTrainConfig, train_clip
from vlkit.zeroshot import PromptAnalysis, analyse_prompts, resolve_templates, score_templates

__version__ = "0.1.0"

__all__ = [
    "CaptionDataset",
    "ClassificationDataset",
    "Clip",
    "ClipSpec",
    "ClipTrainConfig",
    "PromptAnalysis",
    "ShapesConfig",
    "ShardSet",
    "ShardSource",
    "VlkitError",
    "__version__",
    "analyse_prompts",
    "generate_world",
    "load_caption_dataset",
    "load_classification_dataset",
    "load_clip",
    "read_image",
    "read_shards",
    "resolve_templates",
    "score_templates",
    "train_clip",
    "write_shards",
]
