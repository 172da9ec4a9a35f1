"""What a ViLBERT is made of, as plain data: `ViLBertConfig` (torch-free, so the CLI builds its options from
these fields without loading a model library), saved as config.json beside the weights.

The defaults are the reference's 6-layer base (facebookresearch/vilbert-multi-task,
config/bert_base_6layer_6conect.json), and the fields keep the reference's names (`v_hidden_size`,
`t_biattention_id`, ...) so that its JSON reads field for field (`vilbert.convert`). Every ablation of the
study is an edit of this one class (`vilbert.variants`): which layers connect (`t_biattention_id`,
`v_biattention_id`), `with_coattention`, `coattention_order` and `architecture`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlkit.runtime.files import read_json, write_json_atomic
from vlkit.runtime.options import config_from_dict, option, positive, require

CONFIG_FILE = "config.json"
# config.json's key naming the VL model class a folder holds (`vilbert.vl_models.load_vl_model` reads it).
VL_MODEL_KEY = "vlkit_vl_model"
VL_MODEL_NAME = "vilbert"
ARCHITECTURES = ("two_stream", "single_stream")
COATTENTION_ORDERS = ("parallel", "sequential")
FUSION_METHODS = ("mul", "sum")
ACTIVATIONS = ("gelu", "relu", "silu")
BOX_FEATURES = 5  # x1, y1, x2, y2, area: each region's location, all normalized to [0, 1]


@dataclass
class ViLBertConfig:
    """A two-stream (or single-stream) vision-and-language BERT over words and image regions."""

    # The text stream: a BERT.
    vocab_size: int = option(30522, "--vocab-size", "Word pieces of the tokenizer.")
    hidden_size: int = option(768, "--hidden-size", "Width of the text stream.")
    num_hidden_layers: int = option(
        12, "--text-layers", "Standard (self-attention) layers of the text stream."
    )
    num_attention_heads: int = option(12, "--text-heads", "Attention heads of the text stream.")
    intermediate_size: int = option(3072, "--text-ffn", "Feed-forward width of the text stream.")
    hidden_act: str = option("gelu", help="activation of the text stream's feed-forward layers")
    hidden_dropout_prob: float = option(0.1, "--dropout", "Dropout of the text stream and the embeddings.")
    attention_probs_dropout_prob: float = option(0.1, help="dropout of the text stream's attention weights")
    max_position_embeddings: int = option(512, "--max-words", "Word positions the model embeds.")
    type_vocab_size: int = option(2, help="token types (segments) the text embeddings know")
    pad_token_id: int = option(0, help="the padding word piece (its embedding row is BERT's padding_idx)")
    layer_norm_eps: float = option(1e-12, help="epsilon of every LayerNorm (BERT's)")
    initializer_range: float = option(0.02, help="std of the normal init of every new weight")
    # The visual stream: regions (feature + 5-d box), a whole-image token first.
    v_feature_size: int = option(2048, "--region-feature-size", "Size of each region's feature vector.")
    v_target_size: int = option(1601, "--region-classes", "Classes K of the masked-region head's target.")
    v_hidden_size: int = option(1024, "--vision-hidden-size", "Width of the visual stream.")
    v_num_hidden_layers: int = option(6, "--vision-layers", "Standard layers of the visual stream.")
    v_num_attention_heads: int = option(8, "--vision-heads", "Attention heads of the visual stream.")
    v_intermediate_size: int = option(1024, "--vision-ffn", "Feed-forward width of the visual stream.")
    v_hidden_act: str = option("gelu", help="activation of the visual stream's feed-forward layers")
    v_hidden_dropout_prob: float = option(0.1, help="dropout of the visual stream")
    v_attention_probs_dropout_prob: float = option(
        0.1, help="dropout of the visual stream's attention weights"
    )
    # Co-attention: which layers connect and how.
    bi_hidden_size: int = option(1024, "--coattention-size", "Width of co-attention's queries, keys, values.")
    bi_num_attention_heads: int = option(8, "--coattention-heads", "Heads of each co-attention layer.")
    t_biattention_id: list[int] = option(
        factory=lambda: [6, 7, 8, 9, 10, 11],
        help="before co-attention layer k the text stream runs its standard layers [0, t_biattention_id[k])",
    )
    v_biattention_id: list[int] = option(
        factory=lambda: [0, 1, 2, 3, 4, 5],
        help="before co-attention layer k the visual stream runs its layers [0, v_biattention_id[k])",
    )
    with_coattention: bool = option(
        True, "--coattention/--no-coattention", "Co-attention layers (off: the streams never meet)."
    )
    coattention_order: str = option(
        "parallel",
        "--coattention-order",
        "parallel: both streams attend to each other's inputs (the paper); sequential: text reads vision, "
        "then vision reads the updated text.",
    )
    architecture: str = option(
        "two_stream",
        "--architecture",
        "two_stream (the paper) or single_stream: one transformer (the text stream's layers) over the words "
        "and regions concatenated.",
    )
    # Heads.
    fusion_method: str = option(
        "mul", help="how the pooled text and image combine: mul or sum (the paper: mul)"
    )
    num_answers: int = option(0, "--answers", "Answers of the VQA classifier head (0: no such head).")
    seed: int = option(0, help="seed of every new weight")

    def __post_init__(self) -> None:
        self.t_biattention_id = [int(i) for i in self.t_biattention_id]
        self.v_biattention_id = [int(i) for i in self.v_biattention_id]
        positive(
            self, "vocab_size", "hidden_size", "num_attention_heads", "intermediate_size",
            "max_position_embeddings", "type_vocab_size", "v_feature_size", "v_target_size", "v_hidden_size",
            "v_num_attention_heads", "v_intermediate_size", "bi_hidden_size", "bi_num_attention_heads",
            "layer_norm_eps", "initializer_range",
        )  # fmt: skip
        for name in ("num_hidden_layers", "v_num_hidden_layers", "num_answers", "pad_token_id"):
            value = getattr(self, name)
            require(self, name, value >= 0, f"must be at least 0, got {value}")
        require(self, "pad_token_id", self.pad_token_id < self.vocab_size, "must be a word piece id")
        for width, heads in (
            ("hidden_size", "num_attention_heads"),
            ("v_hidden_size", "v_num_attention_heads"),
            ("bi_hidden_size", "bi_num_attention_heads"),
        ):
            size, count = getattr(self, width), getattr(self, heads)
            require(self, heads, size % count == 0, f"{count} heads do not divide {width} {size}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "v_hidden_dropout_prob",
                     "v_attention_probs_dropout_prob"):  # fmt: skip
            value = getattr(self, name)
            require(self, name, 0.0 <= value < 1.0, f"must be in [0, 1), got {value}")
        for name in ("hidden_act", "v_hidden_act"):
            value = getattr(self, name)
            require(
                self, name, value in ACTIVATIONS, f"must be one of {', '.join(ACTIVATIONS)}, got {value!r}"
            )
        self._check_choice("architecture", ARCHITECTURES)
        self._check_choice("coattention_order", COATTENTION_ORDERS)
        self._check_choice("fusion_method", FUSION_METHODS)
        self._check_connections()
        if self.architecture == "single_stream":
            require(
                self,
                "v_hidden_size",
                self.v_hidden_size == self.hidden_size,
                f"a single stream has one width: must equal hidden_size {self.hidden_size}",
            )
            require(self, "v_num_hidden_layers", self.v_num_hidden_layers == 0, "a single stream has none")
            require(
                self, "t_biattention_id", not self.t_biattention_id, "a single stream has no co-attention"
            )

    def _check_choice(self, name: str, choices: tuple[str, ...]) -> None:
        value = getattr(self, name)
        require(self, name, value in choices, f"must be one of {', '.join(choices)}, got {value!r}")

    def _check_connections(self) -> None:
        """Co-attention layer k comes after the text's standard layers [0, t_biattention_id[k]) and the
        vision's [0, v_biattention_id[k]): the ids never decrease and never pass their stream's depth."""
        text, vision = self.t_biattention_id, self.v_biattention_id
        require(
            self,
            "v_biattention_id",
            len(text) == len(vision),
            f"{len(vision)} ids, but t_biattention_id has {len(text)} (one of each per co-attention layer)",
        )
        for name, ids, depth in (
            ("t_biattention_id", text, self.num_hidden_layers),
            ("v_biattention_id", vision, self.v_num_hidden_layers),
        ):
            require(self, name, all(0 <= i <= depth for i in ids), f"ids must be in [0, {depth}], got {ids}")
            require(self, name, ids == sorted(ids), f"ids must not decrease, got {ids}")

    @property
    def num_coattention_layers(self) -> int:
        """Co-attention layers the model holds (none when `with_coattention` is off or in a single stream)."""
        return len(self.t_biattention_id) if self.with_coattention else 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "ViLBertConfig") -> ViLBertConfig:
        """From the JSON form; an unknown field is an error naming `source`."""
        return config_from_dict(cls, data, source)

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """Write `folder/config.json` (atomically), the VL model key first; returns its path."""
        path = Path(folder) / CONFIG_FILE
        write_json_atomic(path, {VL_MODEL_KEY: VL_MODEL_NAME, **self.to_dict()})
        return path

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str]) -> ViLBertConfig:
        """Read `folder/config.json` (or a config file given directly); the VL model key, if there, is the
        folder's and not a field."""
        path = Path(folder)
        path = path / CONFIG_FILE if path.is_dir() else path
        data = read_json(path)
        if isinstance(data, dict):
            data = {key: value for key, value in data.items() if key != VL_MODEL_KEY}
        return cls.from_dict(data, str(path))
