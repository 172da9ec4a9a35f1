"""Everything a ViLBERT run reads, made in one call: a shapes world's splits (regions, their cached
features, captions, tasks) or a real dataset's images with a detector's boxes, batched, and the sizes the
model's config must agree with.

    data = load_world_data(world_dir, load_region_encoder("vlkit:shapes-clip"), cache_root)
    model = ViLBertModel(dataclasses.replace(ViLBertConfig(...), **data.model_fields()))
    run_training(model, model.parameters(), data.train.pretraining, loss_fn, loop_config, out_dir)

The training split's tasks leave out every item that involves a held-out colour x shape combination; the
validation split keeps them, flagged (`heldout` in every task batch), to be reported apart. The tokenizer,
unless given, is a WordPiece trained on the training split's captions and task texts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlkit.data.captions import load_caption_dataset
from vlkit.data.detections import MAX_REGIONS, detection_region_set, image_sizes, read_detection_boxes
from vlkit.data.regions import RegionRecipe, region_classes
from vlkit.data.scene_tasks import WorldSplit, load_world_split
from vlkit.models.vilbert.tokenizer import train_wordpiece_tokenizer
from vlkit.shapes.questions import ANSWERS, QUESTIONS_PER_TYPE, SceneTasks, scene_tasks
from vlkit.train.region_features import RegionEncoder, encode_regions, world_region_set
from vlkit.train.vilbert_batches import ViLBertBatches
from vlkit.train.vilbert_data_config import ViLBertDataConfig

VOCAB_SIZE = 1000  # word pieces of a tokenizer trained on a world (its closed vocabulary needs ~250)


@dataclass
class ViLBertData:
    """The batches of a training split (and a validation split) and the tokenizer they share."""

    train: ViLBertBatches
    val: ViLBertBatches | None
    tokenizer: Any
    num_region_classes: int  # K of the region labels (0: the regions have none, no masked-region target)

    def model_fields(self) -> dict[str, int]:
        """The `ViLBertConfig` fields these batches fix: vocabulary, text length, feature size, classes,
        answers (`dataclasses.replace(config, **data.model_fields())`)."""
        fields = {
            "vocab_size": len(self.tokenizer),
            "max_position_embeddings": self.train.config.max_text_tokens,
            "v_feature_size": self.train.regions.feature_size,
            "num_answers": len(ANSWERS) if self.train.vqa_items else 0,
        }
        if self.num_region_classes:
            fields["v_target_size"] = self.num_region_classes
        return fields


def world_tasks(split: WorldSplit, seed: int, questions_per_type: int = QUESTIONS_PER_TYPE) -> SceneTasks:
    """A split's VQA and referring items: held-out ones dropped from "train", kept and flagged in "val"."""
    return scene_tasks(split.scenes, seed, split.heldout, split.split != "train", questions_per_type)


def world_corpus(split: WorldSplit, tasks: SceneTasks) -> list[str]:
    """The texts a tokenizer for the world learns from: the split's captions, questions and phrases."""
    questions = [item.question for item in tasks.vqa]
    return split.dataset.all_captions() + questions + [item.text for item in tasks.referring]


def world_batches(
    split: WorldSplit,
    encoder: RegionEncoder,
    tokenizer: Any,
    cache_root: str | os.PathLike[str],
    config: ViLBertDataConfig,
    recipe: RegionRecipe,
    tasks: SceneTasks,
    feature_dtype: str = "float32",
    pooling: str = "cells",
) -> ViLBertBatches:
    """One split's batches: its regions by `recipe`, their features (cached, by `pooling`), captions and
    `tasks`."""
    regions = world_region_set(encoder, split.scenes, recipe)
    paths = split.dataset.image_paths()
    features = encode_regions(encoder, paths, regions, cache_root, dtype=feature_dtype, pooling=pooling)
    captions = [image.captions for image in split.dataset.images]
    return ViLBertBatches(features, captions, tokenizer, config, split.scenes, tasks, split.heldout)


def load_world_data(
    world_dir: str | os.PathLike[str],
    encoder: RegionEncoder,
    cache_root: str | os.PathLike[str],
    config: ViLBertDataConfig | None = None,
    recipe: RegionRecipe | None = None,
    tokenizer: Any = None,
    task_seed: int = 0,
    questions_per_type: int = QUESTIONS_PER_TYPE,
    with_val: bool = True,
    pooling: str = "cells",
) -> ViLBertData:
    """A shapes world's train (and val) batches over `encoder`'s region features, cached in `cache_root`.

    Args:
        world_dir: a folder `vlkit data shapes` wrote.
        encoder: the frozen encoder of the region features (`load_region_encoder`).
        cache_root: the folder of the feature caches (shared by runs and processes).
        config: the batches' settings (default `ViLBertDataConfig()`).
        recipe: the regions (default `RegionRecipe()`: 12 boxes per image).
        tokenizer: a WordPiece (e.g. `models.vilbert.tokenizer.load_tokenizer(run)`); None trains one on the
            training split's texts (`VOCAB_SIZE`).
        task_seed: seed of the questions and referring expressions.
        questions_per_type: VQA questions per image and question type.
        with_val: also build the validation split's batches.
        pooling: how each region's feature is made (`region_features.POOLINGS`: "cells" or "crop").
    """
    config, recipe = config or ViLBertDataConfig(), recipe or RegionRecipe()
    train = load_world_split(world_dir, "train")
    train_tasks = world_tasks(train, task_seed, questions_per_type)
    if tokenizer is None:
        corpus = world_corpus(train, train_tasks)
        tokenizer = train_wordpiece_tokenizer(corpus, VOCAB_SIZE, model_max_length=config.max_text_tokens)
    val = None
    if with_val:
        val_split = load_world_split(world_dir, "val")
        val_tasks = world_tasks(val_split, task_seed, questions_per_type)
        val = world_batches(
            val_split, encoder, tokenizer, cache_root, config, recipe, val_tasks, pooling=pooling
        )
    train_batches = world_batches(
        train, encoder, tokenizer, cache_root, config, recipe, train_tasks, pooling=pooling
    )
    return ViLBertData(train_batches, val, tokenizer, len(region_classes()))


def load_detection_data(
    annotations: str | os.PathLike[str],
    image_root: str | os.PathLike[str],
    boxes_file: str | os.PathLike[str],
    encoder: RegionEncoder,
    tokenizer: Any,
    cache_root: str | os.PathLike[str],
    config: ViLBertDataConfig | None = None,
    max_regions: int = MAX_REGIONS,
    pooling: str = "cells",
) -> ViLBertData:
    """Real images: a COCO-caption dataset, a detector's boxes for its images (`--boxes`) and any encoder.
    The regions have no class labels, so the batches hold masked words, alignment and retrieval.
    `tokenizer` None trains a WordPiece on the captions (`VOCAB_SIZE`)."""
    config = config or ViLBertDataConfig()
    dataset = load_caption_dataset(annotations, image_root)
    if tokenizer is None:
        tokenizer = train_wordpiece_tokenizer(
            dataset.all_captions(), VOCAB_SIZE, model_max_length=config.max_text_tokens
        )
    ids = [image.id for image in dataset.images]
    boxes = read_detection_boxes(Path(boxes_file), ids, image_sizes(dataset))
    regions = detection_region_set(boxes, ids, max_regions)
    features = encode_regions(encoder, dataset.image_paths(), regions, cache_root, pooling=pooling)
    captions = [image.captions for image in dataset.images]
    batches = ViLBertBatches(features, captions, tokenizer, config)
    return ViLBertData(batches, None, tokenizer, 0)
