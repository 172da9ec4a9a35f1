"""What a ViLBERT run starts from: its data (a shapes world's batches over cached region features), its model
(a `ViLBertConfig` made from the run's size and variant fields) and, for a saved run, its folder read back.

The data side (`vlkit.train.vilbert_data`) does the regions, the features, the tasks and the batches; the
model side (`vlkit.models.vilbert`) the model and its variants; this module only joins the run's config to
them, so that the trainer, the evaluation and a study load a world in one call and share it between runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vlkit.data.regions import RegionRecipe
from vlkit.errors import ConfigError, VlkitError
from vlkit.models.vilbert.config import ViLBertConfig
from vlkit.models.vilbert.tokenizer import load_tokenizer
from vlkit.models.vilbert.variants import VARIANTS, variant_config
from vlkit.models.vilbert.vl_models import load_vl_model
from vlkit.runtime.distributed import process_state
from vlkit.runtime.precision import cache_dir
from vlkit.train.region_features import load_region_encoder
from vlkit.train.vilbert_data import ViLBertData, load_detection_data, load_world_data
from vlkit.train.vilbert_train_config import TRAIN_CONFIG_FILE, VilbertTrainConfig

# The fields of a run's config that describe its model and inputs: a fine-tuning run from an `--init`
# folder takes them from that folder's config, whatever it was given.
MODEL_FIELDS = (
    "variant", "regions", "encoder", "hidden_size", "attention_heads", "text_layers", "vision_layers",
    "coattention_layers", "ffn_size", "dropout",
)  # fmt: skip


def feature_cache_root(config: VilbertTrainConfig) -> Path:
    """Where the region features are cached: `feature_cache_dir`, else $VLKIT_CACHE_DIR/region_features
    (named by content hashes, so every run and every world can share it)."""
    return Path(config.feature_cache_dir) if config.feature_cache_dir else cache_dir() / "region_features"


def check_world(world_dir: str | os.PathLike[str] | None) -> Path:
    """`world_dir` if it looks like a shapes world (meta.json, train.json, val.json), else one error line."""
    if world_dir is None:
        raise VlkitError("--world: required (`vlkit data shapes --out DIR` makes a world)")
    world = Path(world_dir)
    if not world.is_dir():
        raise VlkitError(f"--world {world}: folder not found (`vlkit data shapes --out DIR` makes a world)")
    for name in ("meta.json", "train.json", "val.json"):
        if not (world / name).is_file():
            raise VlkitError(
                f"--world {world}: no {name}, so not a shapes world (`vlkit data shapes` makes one)"
            )
    return world


def load_data(
    config: VilbertTrainConfig,
    world_dir: str | os.PathLike[str],
    tokenizer: Any = None,
    with_val: bool = True,
) -> ViLBertData:
    """The world's train (and val) batches for `config`: its regions, encoder, batch settings and task seed.
    `tokenizer` None trains the world's WordPiece (the same ids every time for the same world)."""
    world = check_world(world_dir)
    encoder = load_region_encoder(config.encoder, str(process_state().device))
    return load_world_data(
        world,
        encoder,
        feature_cache_root(config),
        config.data,
        RegionRecipe(source=config.regions),
        tokenizer,
        config.task_seed,
        with_val=with_val,
        pooling=config.region_pooling,
    )


def load_detection_run_data(
    config: VilbertTrainConfig,
    annotations: str | os.PathLike[str],
    images: str | os.PathLike[str],
    boxes: str | os.PathLike[str],
    tokenizer: Any = None,
) -> ViLBertData:
    """Real images for pre-training: a COCO caption file and its image folder, a detector's boxes (COCO
    detection layout), and `config.encoder`'s features of those boxes (pooled by `config.region_pooling`)."""
    for flag, path in (("--annotations", annotations), ("--boxes", boxes)):
        if not Path(path).is_file():
            raise VlkitError(f"{flag} {path}: file not found")
    if not Path(images).is_dir():
        raise VlkitError(f"--images {images}: folder not found")
    encoder = load_region_encoder(config.encoder, str(process_state().device))
    return load_detection_data(
        annotations, images, boxes, encoder, tokenizer, feature_cache_root(config), config.data,
        pooling=config.region_pooling,
    )  # fmt: skip


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with `threads` torch CPU threads (0: leave torch's count), restoring the count after.

    On a CPU shared with other jobs, torch's threads (one per core by default) wait for each other at every
    parallel op whenever one of them is descheduled: a small model's step then takes many times longer than
    on one thread, which is why a run can ask for its thread count."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def coattention_schedule(layers: int, coattention: int) -> list[int]:
    """Before co-attention layer k a stream has run `layers - coattention + k` standard layers (at least 0):
    the reference's layout, its standard layers first and the co-attention in the last rounds."""
    return [max(0, layers - coattention + k) for k in range(coattention)]


def check_variant(config: VilbertTrainConfig) -> None:
    """`config.variant` names a ViLBERT variant (`variants.VARIANTS`), else a `ConfigError` (`--variant`)."""
    if config.variant not in VARIANTS:
        problem = f"unknown variant {config.variant!r} (choose {', '.join(VARIANTS)})"
        raise ConfigError(VilbertTrainConfig, "variant", problem)


def vilbert_config(config: VilbertTrainConfig, data_fields: dict[str, int]) -> ViLBertConfig:
    """The `ViLBertConfig` of `config`'s size and variant, with the sizes the data fixes
    (`ViLBertData.model_fields()`): one width and one head count for both streams and co-attention."""
    check_variant(config)
    width, heads, ffn, dropout = config.hidden_size, config.attention_heads, config.ffn_size, config.dropout
    base = ViLBertConfig(
        hidden_size=width,
        num_hidden_layers=config.text_layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        v_hidden_size=width,
        v_num_hidden_layers=config.vision_layers,
        v_num_attention_heads=heads,
        v_intermediate_size=ffn,
        v_hidden_dropout_prob=dropout,
        v_attention_probs_dropout_prob=dropout,
        bi_hidden_size=width,
        bi_num_attention_heads=heads,
        t_biattention_id=coattention_schedule(config.text_layers, config.coattention_layers),
        v_biattention_id=coattention_schedule(config.vision_layers, config.coattention_layers),
        with_coattention=config.coattention_layers > 0,
        seed=config.loop.seed,
        **data_fields,
    )
    return variant_config(base, config.variant)


def build_model(config: VilbertTrainConfig, data: ViLBertData) -> Any:
    """A new ViLBERT of `config`'s size and variant for `data` (new weights seeded by the loop's seed)."""
    from vlkit.models.vilbert.model import ViLBertModel

    return ViLBertModel(vilbert_config(config, data.model_fields()))


def write_train_config(folder: Path, config: VilbertTrainConfig) -> None:
    from vlkit.runtime.files import write_json_atomic

    write_json_atomic(folder / TRAIN_CONFIG_FILE, config.to_dict())


def read_train_config(folder: str | os.PathLike[str]) -> VilbertTrainConfig | None:
    """The run config saved in a model folder (None for a folder without one, e.g. a converted model)."""
    path = Path(folder) / TRAIN_CONFIG_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise VlkitError(f"{path}: cannot read it as JSON ({exc})") from exc
    return VilbertTrainConfig.from_dict(data, str(path))


def with_model_fields_of(config: VilbertTrainConfig, folder: str | os.PathLike[str]) -> VilbertTrainConfig:
    """`config` with the model and input fields of the run saved in `folder` (its text length too, which
    fixes the model's word positions); unchanged for a folder without a run config."""
    saved = read_train_config(folder)
    if saved is None:
        return config
    data = dataclasses.replace(config.data, max_text_tokens=saved.data.max_text_tokens)
    return dataclasses.replace(config, data=data, **{name: getattr(saved, name) for name in MODEL_FIELDS})


def load_run(folder: str | os.PathLike[str]) -> tuple[Any, Any, VilbertTrainConfig]:
    """A saved run's model (any VL model class), tokenizer and config (the defaults with its model fields
    where the folder has no run config)."""
    model = load_vl_model(folder)
    tokenizer = load_tokenizer(folder)
    return model, tokenizer, read_train_config(folder) or VilbertTrainConfig()
