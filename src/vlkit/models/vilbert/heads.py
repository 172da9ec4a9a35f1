"""ViLBERT's task heads, each a few layers over the encoder's outputs, and the masked-region loss.

The pre-training heads keep the reference's names (`cls.predictions`, `cls.imagePredictions`,
`cls.bi_seq_relationship`) and so do its fine-tuning heads (`vil_prediction` for VQA answers,
`vision_logit` for referring expressions, `vil_logit` for retrieval), so that a reference checkpoint's heads
load too. transformers' `BertPredictionHeadTransform` is the dense + activation + LayerNorm of the first two;
the rest is a linear layer or two, written here because no library has ViLBERT's heads.

    masked words     MaskedWordHead (B, T, D) -> (B, T, V), its output matrix the word embeddings (tied)
    masked regions   MaskedRegionHead (B, N, Dv) -> (B, N, K), trained towards the detector's class
                     distribution with `masked_region_loss` (KL divergence, the reference's visual_target 0)
    alignment        bi_seq_relationship (B, C) -> (B, 2): is the caption this image's (1) or not (0)
    VQA              AnswerHead (B, C) -> (B, A): one logit per answer (trained with soft-score BCE)
    referring        vision_logit (B, N, Dv) -> (B, N, 1): one score per region
    retrieval        vil_logit (B, C) -> (B, 1): how well the caption matches the image
The pooled inputs (B, C) are the text and image pooled outputs fused by `fuse_pooled`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.bert.modeling_bert import BertPredictionHeadTransform

from vlkit.models.vilbert.config import ViLBertConfig
from vlkit.models.vilbert.embeddings import text_bert_config, vision_bert_config

FUSION_DROPOUT = 0.1  # the reference's dropout of the fused pooled output


def fuse_pooled(text_pooled: torch.Tensor, vision_pooled: torch.Tensor, method: str) -> torch.Tensor:
    """(B, C) and (B, C) -> (B, C): their product (`mul`, the paper) or their sum (`sum`)."""
    return text_pooled * vision_pooled if method == "mul" else text_pooled + vision_pooled


class MaskedWordHead(nn.Module):
    """Masked-word prediction (the reference's `BertLMPredictionHead`): its decoder is the word embeddings."""

    def __init__(self, config: ViLBertConfig, word_embeddings: nn.Embedding):
        super().__init__()
        self.transform = BertPredictionHeadTransform(text_bert_config(config))
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.decoder.weight = word_embeddings.weight  # tied, as BERT's
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, text_sequence: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(text_sequence)) + self.bias  # (B, T, D) -> (B, T, V)


class MaskedRegionHead(nn.Module):
    """Masked-region classification over K classes (the reference's `BertImagePredictionHead`)."""

    def __init__(self, config: ViLBertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(vision_bert_config(config))
        self.decoder = nn.Linear(config.v_hidden_size, config.v_target_size)

    def forward(self, vision_sequence: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(vision_sequence))  # (B, N, Dv) -> (B, N, K)


class PreTrainingHeads(nn.Module):
    """The three pre-training heads under the reference's names (its `BertPreTrainingHeads`)."""

    def __init__(self, config: ViLBertConfig, word_embeddings: nn.Embedding):
        super().__init__()
        self.predictions = MaskedWordHead(config, word_embeddings)
        self.bi_seq_relationship = nn.Linear(config.bi_hidden_size, 2)
        self.imagePredictions = MaskedRegionHead(config)


class AnswerHead(nn.Module):
    """The VQA classifier (the reference's `SimpleClassifier`): linear, GELU, LayerNorm, linear."""

    def __init__(self, config: ViLBertConfig):
        super().__init__()
        width = config.bi_hidden_size
        self.logit_fc = nn.Sequential(
            nn.Linear(width, 2 * width),
            nn.GELU(),
            nn.LayerNorm(2 * width, eps=config.layer_norm_eps),
            nn.Linear(2 * width, config.num_answers),
        )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.logit_fc(pooled)  # (B, C) -> (B, A)


def masked_region_loss(logits: torch.Tensor, target: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """KL(target || softmax(logits)) per masked region, averaged over the masked regions (0 when none is).

    logits (B, R, K), target (B, R, K) a class distribution per region (each row sums to 1), masked (B, R)
    bool: the regions whose features were masked out of the input."""
    per_region = F.kl_div(F.log_softmax(logits.float(), dim=-1), target.float(), reduction="none").sum(-1)
    masked = masked.bool()
    return (per_region * masked).sum() / masked.sum().clamp(min=1)  # (B, R) -> ()
