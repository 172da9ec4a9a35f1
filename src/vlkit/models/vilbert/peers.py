"""ViLBERT's peers from transformers, wrapped to the VL model interface: `LxmertModel` (two streams joined by
cross-modality layers) and `VisualBertModel` (one stream over words and regions), with ViLBERT's own heads.

Both read what ViLBERT reads (`ViLBertModel.forward`'s arguments) and return a `ViLBertOutput`, so every
trainer and evaluation that drives a ViLBERT drives them unchanged:

- the whole-image token comes first, as ViLBERT's (`prepend_image_token`: the mean of the real regions at
  the whole-image box), so `vision_sequence[:, 0]` is pooled the same way and the regions follow;
- LXMERT takes the regions' 4-d boxes (x1, y1, x2, y2) as its `visual_pos`, the layout its paper uses;
- VisualBERT has no box input: each region's `visual_embeds` is its feature and its 5-d box concatenated, so
  its `visual_projection` is a feature linear and a box linear summed, ViLBERT's region embedding;
- `text_pooled` is the model's own pooler ([CLS], dense, tanh); `vision_pooled` is a ViLBERT `Pooler` over
  the whole-image token (neither model pools its visual side);
- the heads are `vilbert.heads`' modules over these outputs, under ViLBERT's names (`cls`, `vil_prediction`,
  `vision_logit`, `vil_logit`), the masked-word decoder tied to the model's word embeddings.
`coattention` is () when asked: the study's attention maps are ViLBERT's co-attention.

A folder is config.json (`PeerConfig` and the `vlkit_vl_model` key) and model.safetensors; the backbone's
weights sit under transformers' own prefix (`lxmert.`, `visual_bert.`), as its task models hold them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import LxmertConfig, LxmertModel, VisualBertConfig, VisualBertModel

from vlkit.errors import VlkitError
from vlkit.models.vilbert.config import BOX_FEATURES, ViLBertConfig
from vlkit.models.vilbert.embeddings import prepend_image_token
from vlkit.models.vilbert.heads import FUSION_DROPOUT, AnswerHead, PreTrainingHeads, fuse_pooled
from vlkit.models.vilbert.inputs import check_inputs
from vlkit.models.vilbert.model import WEIGHTS_FILE, Pooler, ViLBertOutput, read_weights
from vlkit.models.vilbert.peer_config import PeerConfig
from vlkit.runtime.files import write_bytes_atomic

TIED_KEY = "cls.predictions.decoder.weight"


def heads_config(config: PeerConfig) -> ViLBertConfig:
    """The `ViLBertConfig` the shared heads and input checks read: every width the peer's one width."""
    width, heads = config.hidden_size, config.num_attention_heads
    return ViLBertConfig(
        vocab_size=config.vocab_size, hidden_size=width, num_hidden_layers=0, num_attention_heads=heads,
        intermediate_size=config.intermediate_size, max_position_embeddings=config.max_position_embeddings,
        type_vocab_size=config.type_vocab_size, pad_token_id=config.pad_token_id,
        initializer_range=config.initializer_range, v_feature_size=config.v_feature_size,
        v_target_size=config.v_target_size, v_hidden_size=width, v_num_hidden_layers=0,
        v_num_attention_heads=heads, v_intermediate_size=config.intermediate_size, bi_hidden_size=width,
        bi_num_attention_heads=heads, t_biattention_id=[], v_biattention_id=[],
        num_answers=config.num_answers, seed=config.seed,
    )  # fmt: skip


class PeerModel(nn.Module):
    """What both peers share: ViLBERT's heads over a `ViLBertOutput`, the folder, the parameter count."""

    config: PeerConfig

    def _build_heads(self, word_embeddings: nn.Embedding) -> None:
        self.heads_config = heads_config(self.config)
        self.v_pooler = Pooler(self.config.hidden_size, self.config.hidden_size)
        self.cls = PreTrainingHeads(self.heads_config, word_embeddings)
        self.vil_prediction = AnswerHead(self.heads_config) if self.config.num_answers else None
        self.vision_logit = nn.Linear(self.config.hidden_size, 1)
        self.vil_logit = nn.Linear(self.config.hidden_size, 1)
        self.dropout = nn.Dropout(FUSION_DROPOUT)
        for module in (self.v_pooler, self.cls, self.vil_prediction, self.vision_logit, self.vil_logit):
            if module is not None:
                module.apply(self._init_head)

    def _init_head(self, module: nn.Module) -> None:
        """ViLBERT's init for the heads; the tied decoder is the word embeddings, initialized already."""
        if module is self.cls.predictions.decoder:
            return
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()

    def _inputs(
        self, input_ids, attention_mask, token_type_ids, region_features, region_boxes, region_mask
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The checked inputs with the whole-image token first: features, boxes, vision mask, token types."""
        check_inputs(
            self.heads_config, input_ids, attention_mask, token_type_ids, region_features, region_boxes,
            region_mask,
        )  # fmt: skip
        features, boxes, vision_mask = prepend_image_token(region_features, region_boxes, region_mask)
        types = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
        return features, boxes, vision_mask, types

    def _output(self, text, vision, text_pooled, vision_mask, coattention: bool) -> ViLBertOutput:
        return ViLBertOutput(
            text_sequence=text,  # (B, T, D)
            vision_sequence=vision,  # (B, 1+R, D)
            text_pooled=text_pooled,  # (B, D)
            vision_pooled=self.v_pooler(vision),  # (B, D)
            vision_mask=vision_mask.bool(),  # (B, 1+R)
            coattention=() if coattention else None,
        )

    # The heads: ViLBertModel's, over the same output.

    def fused_pooled(self, output: ViLBertOutput) -> torch.Tensor:
        return self.dropout(fuse_pooled(output.text_pooled, output.vision_pooled, "mul"))

    def masked_word_logits(self, output: ViLBertOutput) -> torch.Tensor:
        return self.cls.predictions(output.text_sequence)  # (B, T, V)

    def masked_region_logits(self, output: ViLBertOutput) -> torch.Tensor:
        return self.cls.imagePredictions(output.region_sequence)  # (B, R, K)

    def alignment_logits(self, output: ViLBertOutput) -> torch.Tensor:
        return self.cls.bi_seq_relationship(self.fused_pooled(output))  # (B, 2)

    def answer_logits(self, output: ViLBertOutput) -> torch.Tensor:
        if self.vil_prediction is None:
            raise VlkitError("PeerConfig.num_answers: 0, so this model has no VQA answer head")
        return self.vil_prediction(self.fused_pooled(output))  # (B, A)

    def referring_logits(self, output: ViLBertOutput) -> torch.Tensor:
        scores = self.vision_logit(self.dropout(output.region_sequence)).squeeze(-1)  # (B, R)
        return scores.masked_fill(~output.region_mask, torch.finfo(scores.dtype).min)

    def retrieval_scores(self, output: ViLBertOutput) -> torch.Tensor:
        return self.vil_logit(self.fused_pooled(output)).squeeze(-1)  # (B,)

    # The folder and the count.

    def count_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # a tied tensor once

    def save_pretrained(self, folder: str | os.PathLike[str], tokenizer: Any = None) -> Path:
        """Write config.json and model.safetensors (and the tokenizer's files, if given), each whole or not at
        all."""
        from safetensors.torch import save

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items() if k != TIED_KEY}
        write_bytes_atomic(folder / WEIGHTS_FILE, save(state, metadata={"format": "pt"}))
        self.config.save_pretrained(folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str]) -> PeerModel:
        """Load a folder `save_pretrained` wrote; a missing, unexpected or misshapen weight is a `VlkitError`
        naming the file and the key."""
        folder = Path(folder)
        config = PeerConfig.from_pretrained(folder)
        model = PEERS[config.kind](config)
        source = str(folder / WEIGHTS_FILE)
        state, expected = read_weights(folder / WEIGHTS_FILE), model.state_dict()
        for name, tensor in state.items():
            if name not in expected or tuple(tensor.shape) != tuple(expected[name].shape):
                raise VlkitError(f"{source}: weight {name!r} is not one of this {config.kind} config's")
        missing = [name for name in expected if name not in state and name != TIED_KEY]
        if missing:
            raise VlkitError(f"{source}: lacks {missing[0]!r} ({len(missing)} weights missing)")
        model.load_state_dict(state, strict=False)
        return model


def _seeded(seed: int, build: Callable[[], None]) -> None:
    with torch.random.fork_rng(devices=[]):  # seeded weights, the caller's random state untouched
        torch.manual_seed(seed)
        build()


class LxmertVL(PeerModel):
    """transformers' `LxmertModel` with ViLBERT's heads (the VL model interface)."""

    def __init__(self, config: PeerConfig):
        super().__init__()
        self.config = config

        def build() -> None:
            self.lxmert = LxmertModel(lxmert_config(config))
            self._build_heads(self.lxmert.embeddings.word_embeddings)

        _seeded(config.seed, build)
        self.eval()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, region_features: torch.Tensor,
        region_boxes: torch.Tensor, region_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None,
        output_coattention: bool = False,
    ) -> ViLBertOutput:  # fmt: skip
        """`ViLBertModel.forward`'s arguments and output; LXMERT reads the 4-d boxes."""
        features, boxes, vision_mask, types = self._inputs(
            input_ids, attention_mask, token_type_ids, region_features, region_boxes, region_mask
        )  # (B, 1+R, F), (B, 1+R, 5), (B, 1+R)
        out = self.lxmert(
            input_ids=input_ids,
            visual_feats=features,
            visual_pos=boxes[..., :4],  # (B, 1+R, 4)
            attention_mask=attention_mask,
            visual_attention_mask=vision_mask,
            token_type_ids=types,
            return_dict=True,
        )
        return self._output(out.language_output, out.vision_output, out.pooled_output, vision_mask,
                            output_coattention)  # fmt: skip


class VisualBertVL(PeerModel):
    """transformers' `VisualBertModel` with a box input and ViLBERT's heads (the VL model interface)."""

    def __init__(self, config: PeerConfig):
        super().__init__()
        self.config = config

        def build() -> None:
            self.visual_bert = VisualBertModel(visualbert_config(config))
            self._build_heads(self.visual_bert.embeddings.word_embeddings)

        _seeded(config.seed, build)
        self.eval()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, region_features: torch.Tensor,
        region_boxes: torch.Tensor, region_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None,
        output_coattention: bool = False,
    ) -> ViLBertOutput:  # fmt: skip
        """`ViLBertModel.forward`'s arguments and output; one sequence: the words, then the visual tokens."""
        features, boxes, vision_mask, types = self._inputs(
            input_ids, attention_mask, token_type_ids, region_features, region_boxes, region_mask
        )
        visual = torch.cat([features, boxes], dim=-1)  # (B, 1+R, F+5): feature and box, one linear
        out = self.visual_bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=types,
            visual_embeds=visual,
            visual_attention_mask=vision_mask,
            visual_token_type_ids=torch.ones_like(vision_mask),  # VisualBERT's authors: type 1 for the image
            return_dict=True,
        )
        words = input_ids.shape[1]
        sequence = out.last_hidden_state  # (B, T+1+R, D)
        return self._output(sequence[:, :words], sequence[:, words:], out.pooler_output, vision_mask,
                            output_coattention)  # fmt: skip


PEERS: dict[str, type[PeerModel]] = {"lxmert": LxmertVL, "visualbert": VisualBertVL}


def _common(config: PeerConfig) -> dict[str, Any]:
    return {
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "num_attention_heads": config.num_attention_heads,
        "intermediate_size": config.intermediate_size,
        "hidden_dropout_prob": config.hidden_dropout_prob,
        "attention_probs_dropout_prob": config.attention_probs_dropout_prob,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "initializer_range": config.initializer_range,
        "pad_token_id": config.pad_token_id,
    }


def lxmert_config(config: PeerConfig) -> LxmertConfig:
    """transformers' `LxmertConfig` of the backbone (its heads' sizes unused: no heads)."""
    return LxmertConfig(
        **_common(config),
        l_layers=config.text_layers,
        r_layers=config.vision_layers,
        x_layers=config.cross_layers,
        visual_feat_dim=config.v_feature_size,
        visual_pos_dim=4,
    )


def visualbert_config(config: PeerConfig) -> VisualBertConfig:
    """transformers' `VisualBertConfig` of the backbone; `visual_embedding_dim`: the feature and the box."""
    return VisualBertConfig(
        **_common(config),
        num_hidden_layers=config.text_layers,
        visual_embedding_dim=config.v_feature_size + BOX_FEATURES,
    )


def build_peer(config: PeerConfig) -> PeerModel:
    """A new peer of `config.kind`, its weights seeded by `config.seed`."""
    return PEERS[config.kind](config)


def count_peer_parameters(config: PeerConfig) -> int:
    """The peer's parameters (heads included, the tied decoder once), counted on the meta device."""
    with torch.device("meta"):
        model = build_peer(config)
    return model.count_parameters()


def peer_like(kind: str, base: ViLBertConfig, target: int | None = None) -> PeerConfig:
    """A peer of `kind` at `base`'s widths, inputs and heads, sized to about `target` parameters (default:
    `base`'s own count, `variants.count_parameters`).

    LXMERT mirrors ViLBERT's schedule: a cross-modality layer per co-attention layer (it holds each stream's
    self-attention too), the text layers left over as language layers, the visual ones as relationship
    layers; VisualBERT takes as many layers as bring it closest. Then the feed-forward width of every layer
    is set to bring the count closest to `target`."""
    from vlkit.models.vilbert.variants import count_parameters

    cross = max(base.num_coattention_layers, 1)
    layers = (
        {"text_layers": max(base.num_hidden_layers - cross, 0), "vision_layers": max(base.v_num_hidden_layers
         - cross, 0), "cross_layers": cross}
        if kind == "lxmert"
        else {"text_layers": max(base.num_hidden_layers, 1), "vision_layers": 0, "cross_layers": 0}
    )  # fmt: skip
    config = PeerConfig(
        kind=kind, vocab_size=base.vocab_size, hidden_size=base.hidden_size,
        num_attention_heads=base.num_attention_heads, intermediate_size=base.intermediate_size,
        max_position_embeddings=base.max_position_embeddings, type_vocab_size=base.type_vocab_size,
        pad_token_id=base.pad_token_id, hidden_dropout_prob=base.hidden_dropout_prob,
        attention_probs_dropout_prob=base.attention_probs_dropout_prob,
        initializer_range=base.initializer_range, v_feature_size=base.v_feature_size,
        v_target_size=base.v_target_size, num_answers=base.num_answers, seed=base.seed, **layers,
    )  # fmt: skip
    target = target if target is not None else count_parameters(base)
    if kind == "visualbert":
        depth = _closest(lambda n: count_peer_parameters(replace(config, text_layers=n)), 1, target)
        config = replace(config, text_layers=depth)
    width = _closest(lambda n: count_peer_parameters(replace(config, intermediate_size=n)), 1, target)
    return replace(config, intermediate_size=width)


def _closest(count: Callable[[int], int], low: int, target: int) -> int:
    """The n >= low whose count(n) (increasing in n) is closest to target: doubling, then bisection."""
    high = low
    while count(high) < target:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if count(middle) < target else (low, middle)
    return min((low, high), key=lambda n: (abs(count(n) - target), n))
