"""vlkit: one CLI and one Python API for studying vision-language models.

CLIP zero-shot classification with prompt analysis, parameter-efficient image captioning, caption metrics
(CIDEr-D, CLIPScore) and attention maps, on real weights or on the embedded shapes world.

The names below are imported on first use (PEP 562, as peft does for its optional backends): `import vlkit`
loads neither torch nor transformers, so the CLI's help and a script that only reads data start fast.

    import vlkit

    clip = vlkit.load_clip("openai/clip-vit-base-patch32")
    analysis = vlkit.analyse_prompts(clip, paths, labels, class_names, vlkit.resolve_templates("seed"))
    captioner = vlkit.load_captioner("my_captioner")
    captions = vlkit.caption_images(captioner, images)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_API: dict[str, str] = {
    # errors
    "VlkitError": "vlkit.errors",
    # data in and out
    "CaptionDataset": "vlkit.data.captions",
    "load_caption_dataset": "vlkit.data.captions",
    "ClassificationDataset": "vlkit.data.classification",
    "load_classification_dataset": "vlkit.data.classification",
    "read_image": "vlkit.data.images",
    "ShardSet": "vlkit.data.shards",
    "ShardSource": "vlkit.data.shards",
    "read_shards": "vlkit.data.shards",
    "write_shards": "vlkit.data.shards",
    "VideoSampling": "vlkit.data.video",
    "read_video": "vlkit.data.video",
    "write_video": "vlkit.data.video",
    "load_video_captions": "vlkit.data.video_captions",
    # the shapes world
    "ShapesConfig": "vlkit.shapes.world",
    "generate_world": "vlkit.shapes.world",
    "ClipsConfig": "vlkit.shapes.clips",
    "make_clips": "vlkit.shapes.clips",
    # CLIP and zero-shot
    "Clip": "vlkit.models.clip",
    "ClipSpec": "vlkit.models.clip",
    "load_clip": "vlkit.models.clip",
    "class_probabilities": "vlkit.models.clip",
    "PromptAnalysis": "vlkit.zeroshot.classifier",
    "analyse_prompts": "vlkit.zeroshot.classifier",
    "score_templates": "vlkit.zeroshot.classifier",
    "resolve_templates": "vlkit.zeroshot.classifier",
    "RetrievalResult": "vlkit.zeroshot.retrieval",
    "retrieve_files": "vlkit.zeroshot.retrieval",
    "retrieve_shards": "vlkit.zeroshot.retrieval",
    "RetrievalRanks": "vlkit.metrics.retrieval",
    "retrieval_ranks": "vlkit.metrics.retrieval",
    "ProbeConfig": "vlkit.probe.config",
    "LinearProbe": "vlkit.probe.logistic",
    "fit_logistic_regression": "vlkit.probe.logistic",
    "train_probe": "vlkit.probe.protocol",
    "score_probe": "vlkit.probe.protocol",
    "ClipTrainConfig": "vlkit.train.config",
    "train_clip": "vlkit.train.clip_trainer",
    # captioning
    "CaptionerSpec": "vlkit.models.captioner.config",
    "Captioner": "vlkit.models.captioner.model",
    "build_captioner": "vlkit.models.captioner.model",
    "load_captioner": "vlkit.models.captioner.model",
    "CaptionTrainConfig": "vlkit.train.config",
    "LoopConfig": "vlkit.train.config",
    "train_captioner": "vlkit.train.caption_trainer",
    "DecodingConfig": "vlkit.captioning.config",
    "CaptionOutput": "vlkit.captioning.generate",
    "caption_images": "vlkit.captioning.generate",
    "Aggregation": "vlkit.captioning.attention",
    "attention_maps": "vlkit.captioning.attention",
    # evaluation
    "CaptionScores": "vlkit.captioning.scores",
    "evaluate_captions": "vlkit.captioning.scores",
    "cider_d": "vlkit.metrics.cider",
    "order_accuracy": "vlkit.metrics.order",
}

__all__ = sorted([*_API, "__version__"])


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'vlkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from vlkit.captioning.attention import Aggregation, attention_maps
    from vlkit.captioning.config import DecodingConfig
    from vlkit.captioning.generate import CaptionOutput, caption_images
    from vlkit.captioning.scores import CaptionScores, evaluate_captions
    from vlkit.data.captions import CaptionDataset, load_caption_dataset
    from vlkit.data.classification import ClassificationDataset, load_classification_dataset
    from vlkit.data.images import read_image
    from vlkit.data.shards import ShardSet, ShardSource, read_shards, write_shards
    from vlkit.data.video import VideoSampling, read_video, write_video
    from vlkit.data.video_captions import load_video_captions
    from vlkit.errors import VlkitError
    from vlkit.metrics.cider import cider_d
    from vlkit.metrics.order import order_accuracy
    from vlkit.models.captioner.config import CaptionerSpec
    from vlkit.models.captioner.model import Captioner, build_captioner, load_captioner
    from vlkit.models.clip import Clip, ClipSpec, class_probabilities, load_clip
    from vlkit.probe.config import ProbeConfig
    from vlkit.probe.logistic import LinearProbe, fit_logistic_regression
    from vlkit.probe.protocol import score_probe, train_probe
    from vlkit.shapes.clips import ClipsConfig, make_clips
    from vlkit.shapes.world import ShapesConfig, generate_world
    from vlkit.train.caption_trainer import train_captioner
    from vlkit.train.clip_trainer import train_clip
    from vlkit.train.config import CaptionTrainConfig, ClipTrainConfig, LoopConfig
    from vlkit.zeroshot.classifier import PromptAnalysis, analyse_prompts, resolve_templates, score_templates
