"""What a ViLBERT peer is made of, as plain data: `PeerConfig` (torch-free), saved as config.json beside the
weights with the `vlkit_vl_model` key naming the peer ("lxmert" or "visualbert").

The peers are transformers' own models (`LxmertModel`, `VisualBertModel`, `vilbert.peers`) over the same
inputs as ViLBERT (region features + boxes, the whole-image token first) with ViLBERT's heads, so that the
study compares layouts, not data or heads. One width serves both streams, as in both papers:

    lxmert      `text_layers` language layers, `vision_layers` object-relationship layers, then
                `cross_layers` cross-modality layers (cross-attention both ways, each stream's
                self-attention and feed-forward)
    visualbert  `text_layers` layers of one transformer over the words and the regions concatenated
                (`vision_layers` and `cross_layers` must be 0)
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlkit.models.vilbert.config import CONFIG_FILE, VL_MODEL_KEY
from vlkit.runtime.files import read_json, write_json_atomic
from vlkit.runtime.options import config_from_dict, option, positive, require

PEER_KINDS = ("lxmert", "visualbert")


@dataclass
class PeerConfig:
    """A ViLBERT peer from transformers: its layers, widths and the heads' sizes."""

    kind: str = option(
        "lxmert", help="lxmert (two streams, cross-modality layers) or visualbert (one stream)"
    )
    vocab_size: int = option(30522, help="word pieces of the tokenizer")
    hidden_size: int = option(768, help="width of both streams")
    num_attention_heads: int = option(12, help="attention heads of every layer")
    intermediate_size: int = option(3072, help="feed-forward width of every layer")
    text_layers: int = option(9, help="LXMERT: language layers; VisualBERT: the one transformer's layers")
    vision_layers: int = option(5, help="LXMERT: object-relationship layers (VisualBERT: 0)")
    cross_layers: int = option(5, help="LXMERT: cross-modality layers (VisualBERT: 0)")
    max_position_embeddings: int = option(512, help="word positions the model embeds")
    type_vocab_size: int = option(2, help="token types (segments)")
    pad_token_id: int = option(0, help="the padding word piece")
    hidden_dropout_prob: float = option(0.1, help="dropout of every layer and the embeddings")
    attention_probs_dropout_prob: float = option(0.1, help="dropout of the attention weights")
    initializer_range: float = option(0.02, help="std of the normal init of every new weight")
    v_feature_size: int = option(2048, help="size of each region's feature vector")
    v_target_size: int = option(1601, help="classes K of the masked-region head's target")
    num_answers: int = option(0, help="answers of the VQA head (0: no such head)")
    seed: int = option(0, help="seed of every new weight")

    def __post_init__(self) -> None:
        require(self, "kind", self.kind in PEER_KINDS, f"must be one of {', '.join(PEER_KINDS)}")
        positive(
            self, "vocab_size", "hidden_size", "num_attention_heads", "intermediate_size",
            "max_position_embeddings", "type_vocab_size", "v_feature_size", "v_target_size",
            "initializer_range",
        )  # fmt: skip
        for name in ("text_layers", "vision_layers", "cross_layers", "num_answers", "pad_token_id"):
            require(self, name, getattr(self, name) >= 0, f"must be at least 0, got {getattr(self, name)}")
        require(
            self,
            "num_attention_heads",
            self.hidden_size % self.num_attention_heads == 0,
            f"{self.num_attention_heads} heads do not divide hidden_size {self.hidden_size}",
        )
        if self.kind == "visualbert":
            require(self, "text_layers", self.text_layers >= 1, "VisualBERT's one stream needs a layer")
            for name in ("vision_layers", "cross_layers"):
                require(self, name, getattr(self, name) == 0, "VisualBERT is one stream: must be 0")
        else:
            require(self, "cross_layers", self.cross_layers >= 1, "LXMERT's streams meet there: at least 1")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            require(self, name, 0.0 <= value < 1.0, f"must be in [0, 1), got {value}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "PeerConfig") -> PeerConfig:
        """From the JSON form (the `vlkit_vl_model` key, if there, must agree with `kind`)."""
        data = dict(data)
        named = data.pop(VL_MODEL_KEY, None)
        config = config_from_dict(cls, data, source)
        require(
            cls, VL_MODEL_KEY, named in (None, config.kind), f"{named!r} disagrees with kind {config.kind!r}"
        )
        return config

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """Write `folder/config.json` (atomically), the `vlkit_vl_model` key first; returns its path."""
        path = Path(folder) / CONFIG_FILE
        write_json_atomic(path, {VL_MODEL_KEY: self.kind, **self.to_dict()})
        return path

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str]) -> PeerConfig:
        path = Path(folder)
        path = path / CONFIG_FILE if path.is_dir() else path
        return cls.from_dict(read_json(path), str(path))
