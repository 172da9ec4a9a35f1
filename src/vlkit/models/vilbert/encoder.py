"""The encoder: the text stream's BERT layers, the visual stream's, and the co-attention layers between them,
run in the reference's order; or, for the single-stream variant, the text stream's layers over both.

Standard layers are transformers' `BertLayer` (the visual ones built from a `BertConfig` of the visual
widths); co-attention is `vilbert.coattention`. The schedule is the reference's `BertEncoder.forward`: before
co-attention layer k the text stream runs its layers up to `t_biattention_id[k]` and the visual stream its
layers up to `v_biattention_id[k]`; after the last, each runs its remaining layers. With the reference's
6-layer base that is 6 text layers, then rounds of (text layer, visual layer, co-attention), the streams
being independent inside a round. Names mirror the reference's (`layer`, `v_layer`, `c_layer`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.models.bert.modeling_bert import BertLayer

from vlkit.models.vilbert.coattention import CoAttentionLayer, CoAttentionProbs
from vlkit.models.vilbert.config import ViLBertConfig
from vlkit.models.vilbert.embeddings import text_bert_config, vision_bert_config


@dataclass
class EncodedStreams:
    text: torch.Tensor  # (B, T, D)
    vision: torch.Tensor  # (B, N, Dv)
    coattention: tuple[CoAttentionProbs, ...]  # one per co-attention layer run (empty when not asked)


def key_mask(mask: torch.Tensor) -> torch.Tensor:
    """(B, K) of 1 for real tokens -> the boolean (B, 1, 1, K) mask `BertLayer`'s SDPA attention takes."""
    return mask.bool()[:, None, None, :]


class ViLBertEncoder(nn.Module):
    """All the layers of both streams (the reference's `BertEncoder`)."""

    def __init__(self, config: ViLBertConfig):
        super().__init__()
        self.config = config
        text, vision = text_bert_config(config), vision_bert_config(config)
        self.layer = nn.ModuleList(BertLayer(text) for _ in range(config.num_hidden_layers))
        self.v_layer = nn.ModuleList(BertLayer(vision) for _ in range(config.v_num_hidden_layers))
        self.c_layer = nn.ModuleList(CoAttentionLayer(config) for _ in range(config.num_coattention_layers))

    def forward(
        self,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        vision: torch.Tensor,
        vision_mask: torch.Tensor,
        output_coattention: bool = False,
    ) -> EncodedStreams:
        # text (B, T, D), text_mask (B, T), vision (B, N, Dv), vision_mask (B, N); masks 1 for real tokens
        if self.config.architecture == "single_stream":
            return self._single_stream(text, text_mask, vision, vision_mask)
        text_keys, vision_keys = key_mask(text_mask), key_mask(vision_mask)  # (B, 1, 1, T), (B, 1, 1, N)
        text_bool, vision_bool = text_mask.bool(), vision_mask.bool()
        probs: list[CoAttentionProbs] = []
        t_start = v_start = 0
        for k, (t_end, v_end) in enumerate(
            zip(self.config.t_biattention_id, self.config.v_biattention_id, strict=True)
        ):
            for layer in self.layer[t_start:t_end]:
                text = layer(text, text_keys)  # (B, T, D)
            for layer in self.v_layer[v_start:v_end]:
                vision = layer(vision, vision_keys)  # (B, N, Dv)
            t_start, v_start = t_end, v_end
            if self.config.with_coattention:
                vision, text, layer_probs = self.c_layer[k](vision, vision_bool, text, text_bool)
                if output_coattention:
                    probs.append(layer_probs)
        for layer in self.v_layer[v_start:]:
            vision = layer(vision, vision_keys)  # (B, N, Dv)
        for layer in self.layer[t_start:]:
            text = layer(text, text_keys)  # (B, T, D)
        return EncodedStreams(text, vision, tuple(probs))

    def _single_stream(
        self, text: torch.Tensor, text_mask: torch.Tensor, vision: torch.Tensor, vision_mask: torch.Tensor
    ) -> EncodedStreams:
        words = text.shape[1]
        tokens = torch.cat([text, vision], dim=1)  # (B, T+N, D)
        keys = key_mask(torch.cat([text_mask, vision_mask], dim=1))  # (B, 1, 1, T+N)
        for layer in self.layer:
            tokens = layer(tokens, keys)  # (B, T+N, D)
        return EncodedStreams(tokens[:, :words], tokens[:, words:], ())
