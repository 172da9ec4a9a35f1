"""Co-attention, ViLBERT's one new layer: each stream's queries attend to the other stream's keys and values.

Hand-written because no library has it (transformers' cross-attention reads one way only, and LXMERT's
cross-modality layer differs in its parts). It follows the reference's `BertConnectionLayer`
(facebookresearch/vilbert-multi-task, vilbert/vilbert.py) and keeps its parameter names, so that its
checkpoints load key for key:

    biattention  query1/key1/value1 (vision), query2/key2/value2 (text): text queries (query2) attend to the
                 vision's keys/values (key1, value1); vision queries (query1) to the text's (key2, value2)
    biOutput     dense1 + LayerNorm1 (vision), dense2 + LayerNorm2 (text): projection, residual and norm
    v_intermediate, v_output / t_intermediate, t_output: each stream's feed-forward (transformers' BERT parts)

`parallel` (the paper): both attentions read the layer's inputs. `sequential`: text reads vision first and
finishes its residual, norm and feed-forward; then vision reads that updated text. Same parameters, so the
two orders compare at one parameter count. The reference's `biOutput.q_dense1/q_dense2` are built but never
used by its forward, so they are not built here (the conversion drops them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers.models.bert.modeling_bert import BertIntermediate, BertOutput

from vlkit.models.vilbert.config import ViLBertConfig
from vlkit.models.vilbert.embeddings import text_bert_config, vision_bert_config


@dataclass
class CoAttentionProbs:
    """One co-attention layer's attention weights (after the softmax, before dropout)."""

    text_to_vision: torch.Tensor  # (B, H, T, N): each word's weights over the image token and the regions
    vision_to_text: torch.Tensor  # (B, H, N, T): each visual token's weights over the words


def attend(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_mask: torch.Tensor, heads: int,
    dropout: nn.Dropout,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Multi-head scaled dot-product attention that also returns its weights.

    query (B, Q, C), key and value (B, K, C), key_mask (B, K) bool (False: padding, weight exactly 0)
    -> context (B, Q, C), probs (B, H, Q, K)."""
    batch, queries, width = query.shape
    head = width // heads

    def split(x: torch.Tensor) -> torch.Tensor:  # (B, L, C) -> (B, H, L, C/H)
        return x.view(batch, x.shape[1], heads, head).transpose(1, 2)

    scores = split(query) @ split(key).transpose(-1, -2) / math.sqrt(head)  # (B, H, Q, K)
    scores = scores.masked_fill(~key_mask[:, None, None, :], torch.finfo(scores.dtype).min)
    probs = scores.softmax(dim=-1)  # (B, H, Q, K)
    context = dropout(probs) @ split(value)  # (B, H, Q, C/H)
    return context.transpose(1, 2).reshape(batch, queries, width), probs


class BiAttention(nn.Module):
    """The projections of both directions (the reference's `BertBiAttention`)."""

    def __init__(self, config: ViLBertConfig):
        super().__init__()
        self.heads = config.bi_num_attention_heads
        width = config.bi_hidden_size
        self.query1 = nn.Linear(config.v_hidden_size, width)
        self.key1 = nn.Linear(config.v_hidden_size, width)
        self.value1 = nn.Linear(config.v_hidden_size, width)
        self.dropout1 = nn.Dropout(config.v_attention_probs_dropout_prob)
        self.query2 = nn.Linear(config.hidden_size, width)
        self.key2 = nn.Linear(config.hidden_size, width)
        self.value2 = nn.Linear(config.hidden_size, width)
        self.dropout2 = nn.Dropout(config.attention_probs_dropout_prob)

    def text_reads_vision(
        self, text: torch.Tensor, vision: torch.Tensor, vision_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # text (B, T, D), vision (B, N, Dv) -> context (B, T, C), probs (B, H, T, N)
        return attend(
            self.query2(text), self.key1(vision), self.value1(vision), vision_mask, self.heads, self.dropout1
        )

    def vision_reads_text(
        self, vision: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # vision (B, N, Dv), text (B, T, D) -> context (B, N, C), probs (B, H, N, T)
        return attend(
            self.query1(vision), self.key2(text), self.value2(text), text_mask, self.heads, self.dropout2
        )


class BiOutput(nn.Module):
    """Each direction's output projection, residual and LayerNorm (the reference's `BertBiOutput`)."""

    def __init__(self, config: ViLBertConfig):
        super().__init__()
        self.dense1 = nn.Linear(config.bi_hidden_size, config.v_hidden_size)
        self.LayerNorm1 = nn.LayerNorm(config.v_hidden_size, eps=config.layer_norm_eps)
        self.dropout1 = nn.Dropout(config.v_hidden_dropout_prob)
        self.dense2 = nn.Linear(config.bi_hidden_size, config.hidden_size)
        self.LayerNorm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout2 = nn.Dropout(config.hidden_dropout_prob)

    def vision(self, context: torch.Tensor, vision: torch.Tensor) -> torch.Tensor:
        # context (B, N, C), vision (B, N, Dv) -> (B, N, Dv)
        return self.LayerNorm1(self.dropout1(self.dense1(context)) + vision)

    def text(self, context: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        # context (B, T, C), text (B, T, D) -> (B, T, D)
        return self.LayerNorm2(self.dropout2(self.dense2(context)) + text)


class CoAttentionLayer(nn.Module):
    """One co-attention layer: both attentions, then each stream's residual, norm and feed-forward."""

    def __init__(self, config: ViLBertConfig):
        super().__init__()
        self.sequential = config.coattention_order == "sequential"
        self.biattention = BiAttention(config)
        self.biOutput = BiOutput(config)
        vision, text = vision_bert_config(config), text_bert_config(config)
        self.v_intermediate = BertIntermediate(vision)
        self.v_output = BertOutput(vision)
        self.t_intermediate = BertIntermediate(text)
        self.t_output = BertOutput(text)

    def forward(
        self, vision: torch.Tensor, vision_mask: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, CoAttentionProbs]:
        # vision (B, N, Dv), vision_mask (B, N) bool, text (B, T, D), text_mask (B, T) bool
        text_context, text_probs = self.biattention.text_reads_vision(text, vision, vision_mask)  # (B, T, C)
        if self.sequential:
            text = self._text_feed_forward(self.biOutput.text(text_context, text))  # (B, T, D)
        vision_context, vision_probs = self.biattention.vision_reads_text(
            vision, text, text_mask
        )  # (B, N, C)
        if not self.sequential:
            text = self._text_feed_forward(self.biOutput.text(text_context, text))  # (B, T, D)
        vision = self.biOutput.vision(vision_context, vision)  # (B, N, Dv)
        vision = self.v_output(self.v_intermediate(vision), vision)  # (B, N, Dv)
        return vision, text, CoAttentionProbs(text_probs, vision_probs)

    def _text_feed_forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.t_output(self.t_intermediate(text), text)  # (B, T, D)
