"""ViLBERT (Lu et al., 2019): a BERT over the words and a transformer over the image regions, joined by
co-attention layers; its task heads; saved and loaded as an HF-layout folder.

`ViLBertModel` holds the reference's modules under the reference's names (facebookresearch/vilbert-multi-task,
vilbert/vilbert.py): `bert` (its `BertModel`: `embeddings`, `v_embeddings`, `encoder`, `t_pooler`,
`v_pooler`), `cls` (its pre-training heads) and the fine-tuning heads, so a reference checkpoint loads key
for key once `vilbert.convert` has dropped what its forward never used. `forward` runs the encoder and
returns one `ViLBertOutput`; each head is a method over that output. transformers does the BERT parts
(`BertEmbeddings`, `BertLayer`, the head transforms); the two-stream model around them is written here,
because no library has ViLBERT.

A folder is config.json (`ViLBertConfig`), model.safetensors (the tied output matrix of the masked-word head
stored once, as the word embeddings) and, when given, the tokenizer's files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from vlkit.errors import VlkitError
from vlkit.models.vilbert.coattention import CoAttentionProbs
from vlkit.models.vilbert.config import ViLBertConfig
from vlkit.models.vilbert.embeddings import (
    BertEmbeddings,
    RegionEmbeddings,
    prepend_image_token,
    text_bert_config,
)
from vlkit.models.vilbert.encoder import ViLBertEncoder
from vlkit.models.vilbert.heads import FUSION_DROPOUT, AnswerHead, PreTrainingHeads, fuse_pooled
from vlkit.models.vilbert.inputs import check_inputs
from vlkit.runtime.files import write_bytes_atomic

WEIGHTS_FILE = "model.safetensors"
TIED_KEYS = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight"}


@dataclass
class ViLBertOutput:
    """What the encoder gives the heads. The visual sequence starts with the whole-image token."""

    text_sequence: torch.Tensor  # (B, T, D)
    vision_sequence: torch.Tensor  # (B, 1+R, Dv): the whole-image token, then the regions in input order
    text_pooled: torch.Tensor  # (B, C): the first word's ([CLS]) state, projected and ReLU'd
    vision_pooled: torch.Tensor  # (B, C): the whole-image token's, likewise
    vision_mask: torch.Tensor  # (B, 1+R) bool: True for the image token and each real region
    coattention: tuple[CoAttentionProbs, ...] | None  # one per co-attention layer, if asked; () if none ran

    @property
    def region_sequence(self) -> torch.Tensor:
        return self.vision_sequence[:, 1:]  # (B, R, Dv): the regions alone

    @property
    def region_mask(self) -> torch.Tensor:
        return self.vision_mask[:, 1:]  # (B, R)


class Pooler(nn.Module):
    """The first token's state, projected to the co-attention width and ReLU'd (the reference's poolers)."""

    def __init__(self, width: int, pooled_width: int):
        super().__init__()
        self.dense = nn.Linear(width, pooled_width)
        self.activation = nn.ReLU()

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(sequence[:, 0]))  # (B, L, W) -> (B, C)


class ViLBertBackbone(nn.Module):
    """The reference's `BertModel`: both streams' embeddings, the encoder and the two poolers."""

    def __init__(self, config: ViLBertConfig):
        super().__init__()
        self.embeddings = BertEmbeddings(text_bert_config(config))
        self.v_embeddings = RegionEmbeddings(config)
        self.encoder = ViLBertEncoder(config)
        self.t_pooler = Pooler(config.hidden_size, config.bi_hidden_size)
        self.v_pooler = Pooler(config.v_hidden_size, config.bi_hidden_size)


class ViLBertModel(nn.Module):
    """ViLBERT and its heads. Build it from a config (new weights, seeded by `config.seed`) or load a folder
    with `from_pretrained`; it comes in eval mode either way."""

    def __init__(self, config: ViLBertConfig):
        super().__init__()
        self.config = config
        with torch.random.fork_rng(devices=[]):  # seeded weights, the caller's random state untouched
            torch.manual_seed(config.seed)
            self.bert = ViLBertBackbone(config)
            self.cls = PreTrainingHeads(config, self.bert.embeddings.word_embeddings)
            self.vil_prediction = AnswerHead(config) if config.num_answers else None
            self.vision_logit = nn.Linear(config.v_hidden_size, 1)
            self.vil_logit = nn.Linear(config.bi_hidden_size, 1)
            self.dropout = nn.Dropout(FUSION_DROPOUT)
            self.apply(self._init_weights)
        self.eval()

    def _init_weights(self, module: nn.Module) -> None:
        """The reference's init: normal(0, initializer_range) weights, zero biases, LayerNorms at identity."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        region_features: torch.Tensor,
        region_boxes: torch.Tensor,
        region_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        output_coattention: bool = False,
    ) -> ViLBertOutput:
        """Encode a batch of texts and images.

        Args:
            input_ids: (B, T) word piece ids, [CLS] first (its state is the pooled text).
            attention_mask: (B, T), 1 for a real word and 0 for padding.
            region_features: (B, R, F) one feature vector per region, F = `v_feature_size`.
            region_boxes: (B, R, 5) each region's x1, y1, x2, y2 and area, normalized to [0, 1].
            region_mask: (B, R), 1 for a real region and 0 for padding; at least one real region each.
            token_type_ids: (B, T) segment ids (default: all 0).
            output_coattention: also return every co-attention layer's attention weights.
        """
        check_inputs(
            self.config, input_ids, attention_mask, token_type_ids, region_features, region_boxes, region_mask
        )
        features, boxes, vision_mask = prepend_image_token(region_features, region_boxes, region_mask)
        text = self.bert.embeddings(input_ids, token_type_ids)  # (B, T, D)
        vision = self.bert.v_embeddings(features, boxes)  # (B, 1+R, Dv)
        streams = self.bert.encoder(text, attention_mask, vision, vision_mask, output_coattention)
        return ViLBertOutput(
            text_sequence=streams.text,  # (B, T, D)
            vision_sequence=streams.vision,  # (B, 1+R, Dv)
            text_pooled=self.bert.t_pooler(streams.text),  # (B, C)
            vision_pooled=self.bert.v_pooler(streams.vision),  # (B, C)
            vision_mask=vision_mask.bool(),  # (B, 1+R)
            coattention=streams.coattention if output_coattention else None,
        )

    # The heads, each over the encoder's output.

    def fused_pooled(self, output: ViLBertOutput) -> torch.Tensor:
        """(B, C): the pooled text and image fused (`config.fusion_method`), then dropout (in training)."""
        return self.dropout(fuse_pooled(output.text_pooled, output.vision_pooled, self.config.fusion_method))

    def masked_word_logits(self, output: ViLBertOutput) -> torch.Tensor:
        """(B, T, V): each position's scores over the vocabulary (masked-language-model head)."""
        return self.cls.predictions(output.text_sequence)

    def masked_region_logits(self, output: ViLBertOutput) -> torch.Tensor:
        """(B, R, K): each region's scores over the K detector classes (the image token left out)."""
        return self.cls.imagePredictions(output.region_sequence)

    def alignment_logits(self, output: ViLBertOutput) -> torch.Tensor:
        """(B, 2): [not aligned, aligned] scores of each caption-image pair (pre-training's alignment)."""
        return self.cls.bi_seq_relationship(self.fused_pooled(output))

    def answer_logits(self, output: ViLBertOutput) -> torch.Tensor:
        """(B, A): one score per answer of the VQA head (`config.num_answers` > 0)."""
        if self.vil_prediction is None:
            raise VlkitError("ViLBertConfig.num_answers: 0, so this model has no VQA answer head")
        return self.vil_prediction(self.fused_pooled(output))

    def referring_logits(self, output: ViLBertOutput) -> torch.Tensor:
        """(B, R): each region's score as the referent of the text; padded regions get the lowest score."""
        scores = self.vision_logit(self.dropout(output.region_sequence)).squeeze(-1)  # (B, R)
        return scores.masked_fill(~output.region_mask, torch.finfo(scores.dtype).min)

    def retrieval_scores(self, output: ViLBertOutput) -> torch.Tensor:
        """(B,): how well each caption matches its image (retrieval ranks images or captions by it)."""
        return self.vil_logit(self.fused_pooled(output)).squeeze(-1)

    def count_parameters(self) -> int:
        """The model's parameters, heads included (the tied output matrix counted once)."""
        return sum(p.numel() for p in self.parameters())

    # The folder.

    def save_pretrained(self, folder: str | os.PathLike[str], tokenizer: Any = None) -> Path:
        """Write config.json and model.safetensors (and the tokenizer's files, if given) into `folder`; each
        file is written whole or not at all."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {
            name: tensor.detach().contiguous().cpu()
            for name, tensor in self.state_dict().items()
            if name not in TIED_KEYS
        }
        write_bytes_atomic(folder / WEIGHTS_FILE, save(state, metadata={"format": "pt"}))
        self.config.save_pretrained(folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str]) -> ViLBertModel:
        """Load a folder `save_pretrained` (or `vlkit convert vilbert`) wrote; a missing, unexpected or
        misshapen weight is a `VlkitError` naming the file and the key."""
        folder = Path(folder)
        model = cls(ViLBertConfig.from_pretrained(folder))
        model.load_weights(read_weights(folder / WEIGHTS_FILE), str(folder / WEIGHTS_FILE))
        return model

    def load_weights(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Load a complete state dict (the tied output matrix may be absent), checking every key and shape."""
        expected = self.state_dict()
        for name, tensor in state.items():
            if name not in expected:
                raise VlkitError(
                    f"{source}: unexpected weight {name!r} (not a weight of this ViLBERT config)"
                )
            if tuple(tensor.shape) != tuple(expected[name].shape):
                raise VlkitError(
                    f"{source}: {name} has shape {tuple(tensor.shape)}, expected "
                    f"{tuple(expected[name].shape)}"
                )
        missing = [name for name in expected if name not in state and name not in TIED_KEYS]
        if missing:
            raise VlkitError(f"{source}: lacks {missing[0]!r} ({len(missing)} weights missing)")
        self.load_state_dict(state, strict=False)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; an absent or unreadable file is a `VlkitError` naming it."""
    if not path.is_file():
        raise VlkitError(f"{path}: weights file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise VlkitError(f"{path}: cannot read it as safetensors ({str(exc).splitlines()[0]})") from exc
