"""The model-side checks of a ViLBERT batch: shapes that disagree, an empty region list, a box outside
[0, 1], a word id past the vocabulary. Each is one `VlkitError` line naming the argument at fault, raised
before any layer runs (a wrong shape deep inside attention would say nothing about which input it was).

The value checks cost one device sync per batch: they are computed together and read back once.
"""

from __future__ import annotations

import torch

from vlkit.errors import VlkitError
from vlkit.models.vilbert.config import BOX_FEATURES, ViLBertConfig


def check_inputs(
    config: ViLBertConfig,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    token_type_ids: torch.Tensor | None,
    region_features: torch.Tensor,
    region_boxes: torch.Tensor,
    region_mask: torch.Tensor,
) -> None:
    """Raise `VlkitError` naming the argument unless the model can read the batch (shapes: `forward`)."""
    _check_shapes(
        config, input_ids, attention_mask, token_type_ids, region_features, region_boxes, region_mask
    )
    real_regions, real_words = region_mask.bool(), attention_mask.bool()
    bad_boxes = (~torch.isfinite(region_boxes) | (region_boxes < 0) | (region_boxes > 1)).any(
        -1
    ) & real_regions
    bad_ids = (input_ids < 0) | (input_ids >= config.vocab_size)
    types = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
    bad_types = (types < 0) | (types >= config.type_vocab_size)
    flags = torch.stack(
        [
            bad_boxes.any(),
            ~real_regions.any(1).all(),
            ~real_words.any(1).all(),
            bad_ids.any(),
            bad_types.any(),
        ]
    ).tolist()  # the one sync
    if flags[0]:
        sample, region = (int(i) for i in bad_boxes.nonzero()[0])
        box = [round(float(v), 4) for v in region_boxes[sample, region]]
        raise VlkitError(
            f"region_boxes: sample {sample}, region {region} is {box}, outside [0, 1] (boxes are x1, y1, x2, "
            "y2, area, normalized by the image's size)"
        )
    if flags[1]:
        sample = int((~real_regions.any(1)).nonzero()[0])
        raise VlkitError(f"region_mask: sample {sample} has no region (each image needs at least one)")
    if flags[2]:
        sample = int((~real_words.any(1)).nonzero()[0])
        raise VlkitError(f"attention_mask: sample {sample} has no word (each text needs at least one)")
    if flags[3]:
        word = int(input_ids[bad_ids][0])
        raise VlkitError(f"input_ids: id {word} is outside the vocabulary [0, {config.vocab_size})")
    if flags[4]:
        kind = int(types[bad_types][0])
        raise VlkitError(
            f"token_type_ids: type {kind} is outside [0, type_vocab_size {config.type_vocab_size})"
        )


def _check_shapes(
    config: ViLBertConfig,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    token_type_ids: torch.Tensor | None,
    region_features: torch.Tensor,
    region_boxes: torch.Tensor,
    region_mask: torch.Tensor,
) -> None:
    if input_ids.dim() != 2 or input_ids.is_floating_point():
        raise VlkitError(f"input_ids: expected integer ids (B, T), got {_describe(input_ids)}")
    batch, words = input_ids.shape
    if words == 0:
        raise VlkitError("input_ids: an empty text (T = 0); each text needs at least one word")
    if words > config.max_position_embeddings:
        raise VlkitError(
            f"input_ids: {words} words, more than max_position_embeddings {config.max_position_embeddings}"
        )
    _same_shape("attention_mask", attention_mask, (batch, words), "input_ids")
    if token_type_ids is not None:
        _same_shape("token_type_ids", token_type_ids, (batch, words), "input_ids")
    if region_features.dim() != 3:
        raise VlkitError(f"region_features: expected (B, R, F), got {_describe(region_features)}")
    if region_features.shape[0] != batch:
        raise VlkitError(
            f"region_features: {region_features.shape[0]} images, but input_ids has {batch} texts"
        )
    regions, size = region_features.shape[1:]
    if regions == 0:
        raise VlkitError(
            "region_features: an empty region list (R = 0); each image needs at least one region"
        )
    if size != config.v_feature_size:
        raise VlkitError(
            f"region_features: features of size {size}, but v_feature_size is {config.v_feature_size}"
        )
    _same_shape("region_boxes", region_boxes, (batch, regions, BOX_FEATURES), "region_features (B, R) + 5")
    _same_shape("region_mask", region_mask, (batch, regions), "region_features")


def _same_shape(name: str, tensor: torch.Tensor, shape: tuple[int, ...], like: str) -> None:
    if tuple(tensor.shape) != shape:
        raise VlkitError(f"{name}: shape {tuple(tensor.shape)}, expected {shape} (as {like})")


def _describe(tensor: torch.Tensor) -> str:
    return f"{tensor.dtype} of shape {tuple(tensor.shape)}"
