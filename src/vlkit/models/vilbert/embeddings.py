"""The two streams' inputs: BERT's word embeddings (transformers' `BertEmbeddings`) and the reference's
region embeddings, with the whole-image token the paper puts first.

A region is its feature vector (linear) plus its 5-d location (x1, y1, x2, y2, area, all normalized; linear),
summed, LayerNorm'd and dropped out, as the reference's `BertImageEmbeddings`, whose parameter names
(`image_embeddings`, `image_location_embeddings`, `LayerNorm`) this keeps. The whole-image token is the mean
of the real regions' features at the box (0, 0, 1, 1, 1), as the reference's feature reader builds it.
Hand-written because no library embeds regions this way (transformers' VisualBERT has no box input).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertConfig
from transformers.models.bert.modeling_bert import BertEmbeddings

from vlkit.models.vilbert.config import BOX_FEATURES, ViLBertConfig

__all__ = [
    "BertEmbeddings",
    "RegionEmbeddings",
    "prepend_image_token",
    "text_bert_config",
    "vision_bert_config",
]

WHOLE_IMAGE_BOX = (0.0, 0.0, 1.0, 1.0, 1.0)


def text_bert_config(config: ViLBertConfig) -> BertConfig:
    """The transformers `BertConfig` of the text stream's embeddings and standard layers."""
    return _bert_config(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        hidden_act=config.hidden_act,
        hidden_dropout_prob=config.hidden_dropout_prob,
        attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        max_position_embeddings=config.max_position_embeddings,
        type_vocab_size=config.type_vocab_size,
        pad_token_id=config.pad_token_id,
        layer_norm_eps=config.layer_norm_eps,
    )


def vision_bert_config(config: ViLBertConfig) -> BertConfig:
    """The `BertConfig` of the visual stream's standard layers (BERT layers of the visual widths)."""
    return _bert_config(
        hidden_size=config.v_hidden_size,
        num_attention_heads=config.v_num_attention_heads,
        intermediate_size=config.v_intermediate_size,
        hidden_act=config.v_hidden_act,
        hidden_dropout_prob=config.v_hidden_dropout_prob,
        attention_probs_dropout_prob=config.v_attention_probs_dropout_prob,
        layer_norm_eps=config.layer_norm_eps,
    )


def _bert_config(**fields: object) -> BertConfig:
    bert = BertConfig(**fields)
    # SDPA with a boolean mask: the same weights as eager attention, for any dtype, and fast kernels on GPUs.
    bert._attn_implementation = "sdpa"
    return bert


class RegionEmbeddings(nn.Module):
    """Region features and boxes -> the visual stream's input (the reference's `BertImageEmbeddings`)."""

    def __init__(self, config: ViLBertConfig):
        super().__init__()
        self.image_embeddings = nn.Linear(config.v_feature_size, config.v_hidden_size)
        self.image_location_embeddings = nn.Linear(BOX_FEATURES, config.v_hidden_size)
        self.LayerNorm = nn.LayerNorm(config.v_hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)  # the reference's: the text's dropout

    def forward(self, features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        # features (B, N, F), boxes (B, N, 5) -> (B, N, Dv)
        embeddings = self.image_embeddings(features) + self.image_location_embeddings(boxes)
        return self.dropout(self.LayerNorm(embeddings))


def prepend_image_token(
    features: torch.Tensor, boxes: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Put the whole-image token first: the mean of the real regions' features, at the whole-image box.

    features (B, R, F), boxes (B, R, 5), mask (B, R) of 1 for a real region -> (B, 1+R, ...) each; the mean
    is over real regions only, so padding and the regions' order never change it."""
    real = mask.bool().unsqueeze(-1)  # (B, R, 1)
    total = torch.where(real, features, 0.0).sum(1, keepdim=True)  # (B, 1, F): padding adds nothing
    image_feature = total / real.sum(1, keepdim=True).to(features.dtype)  # (B, 1, F)
    image_box = boxes.new_tensor(WHOLE_IMAGE_BOX).expand(boxes.shape[0], 1, BOX_FEATURES)  # (B, 1, 5)
    image_mask = mask.new_ones(mask.shape[0], 1)  # (B, 1)
    return (
        torch.cat([image_feature, features], dim=1),
        torch.cat([image_box, boxes], dim=1),
        torch.cat([image_mask, mask], dim=1),
    )
