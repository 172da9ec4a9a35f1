"""The study's blind baselines: a VL model that never sees one of its two inputs, trained and evaluated as
the full model is, so that the gap to it is what that input is worth.

    question-only  (`hide="regions"`) every region's feature is zeroed and its box is the whole image, and
                   every region counts as real: the whole-image token and the regions are then the same
                   constant for every image, so no output depends on the image (its features, boxes, or how
                   many regions it has); the text stream alone carries the answer
    image-only     (`hide="question"`) the text is [CLS] [SEP] at positions 0 and 1, the rest padding: no
                   output at [CLS] depends on the question's words (or, since the [SEP] moves to position 1,
                   on its length); the text keeps its length T so the batch's other keys still fit

Hiding the input of the same model, rather than training a text-only BERT with a VQA head, keeps
everything else equal: the architecture, the heads, the parameter count, the trainer and its budget.

A folder is config.json (`{"vlkit_vl_model": "blinded", "hide": ...}`) and the wrapped model's own folder in
model/, which `from_pretrained` loads with `load_vl_model`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vlkit.errors import VlkitError
from vlkit.models.vilbert.config import CONFIG_FILE, VL_MODEL_KEY
from vlkit.models.vilbert.embeddings import WHOLE_IMAGE_BOX
from vlkit.runtime.files import read_json, write_json_atomic

HIDDEN = {"regions": "question-only", "question": "image-only"}  # what is hidden -> the baseline's name
BLINDED_NAME = "blinded"  # its `vlkit_vl_model` name
INNER_DIR = "model"  # the wrapped model's folder inside a blinded model's


def hide_regions(
    region_features: torch.Tensor, region_boxes: torch.Tensor, region_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, R, F), (B, R, 5), (B, R) -> the same shapes, equal for every image: zero features, whole-image
    boxes, every region real."""
    features = torch.zeros_like(region_features)
    boxes = region_boxes.new_tensor(WHOLE_IMAGE_BOX).expand_as(region_boxes).clone()
    return features, boxes, torch.ones_like(region_mask)


def hide_question(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) ids and mask -> [CLS] [SEP] then padding, T kept. [CLS] is each text's first id and [SEP] its
    last real one (the tokenizer's `[CLS] text [SEP]`, truncation included)."""
    last = attention_mask.long().sum(1).clamp(min=1) - 1  # (B,) the [SEP]'s position
    ids = torch.full_like(input_ids, pad_token_id)
    ids[:, 0] = input_ids[:, 0]
    ids[:, 1] = input_ids.gather(1, last[:, None])[:, 0]
    mask = torch.zeros_like(attention_mask)
    mask[:, :2] = 1
    return ids, mask


class BlindedModel(nn.Module):
    """A VL model with one input hidden (`hide`: "regions" or "question"); its heads are the model's."""

    def __init__(self, model: nn.Module, hide: str):
        super().__init__()
        if hide not in HIDDEN:
            raise VlkitError(f"hide {hide!r}: unknown (choose {', '.join(HIDDEN)})")
        self.model, self.hide = model, hide
        self.config = model.config

    @property
    def name(self) -> str:
        return HIDDEN[self.hide]

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, region_features: torch.Tensor,
        region_boxes: torch.Tensor, region_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None,
        output_coattention: bool = False,
    ) -> Any:  # fmt: skip
        if input_ids.shape[1] < 2:
            raise VlkitError("input_ids: a text of one id has no [CLS] [SEP] pair to keep")
        if self.hide == "regions":
            region_features, region_boxes, region_mask = hide_regions(
                region_features, region_boxes, region_mask
            )
        else:
            input_ids, attention_mask = hide_question(input_ids, attention_mask, self.config.pad_token_id)
            token_type_ids = None
        return self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            region_features=region_features,
            region_boxes=region_boxes,
            region_mask=region_mask,
            token_type_ids=token_type_ids,
            output_coattention=output_coattention,
        )

    # The heads read the output, which is already blind: the model's own.

    def masked_word_logits(self, output: Any) -> torch.Tensor:
        return self.model.masked_word_logits(output)

    def masked_region_logits(self, output: Any) -> torch.Tensor:
        return self.model.masked_region_logits(output)

    def alignment_logits(self, output: Any) -> torch.Tensor:
        return self.model.alignment_logits(output)

    def answer_logits(self, output: Any) -> torch.Tensor:
        return self.model.answer_logits(output)

    def referring_logits(self, output: Any) -> torch.Tensor:
        return self.model.referring_logits(output)

    def retrieval_scores(self, output: Any) -> torch.Tensor:
        return self.model.retrieval_scores(output)

    def count_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def save_pretrained(self, folder: str | os.PathLike[str], tokenizer: Any = None) -> Path:
        """config.json naming this class and what it hides; the wrapped model in `folder/model` (the
        tokenizer's files in both, so the folder reads as any VL model run's)."""
        folder = Path(folder)
        self.model.save_pretrained(folder / INNER_DIR, tokenizer)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        write_json_atomic(folder / CONFIG_FILE, {VL_MODEL_KEY: BLINDED_NAME, "hide": self.hide})
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str]) -> BlindedModel:
        from vlkit.models.vilbert.vl_models import load_vl_model

        path = Path(folder) / CONFIG_FILE
        config = read_json(path)
        if not isinstance(config, dict) or config.get("hide") not in HIDDEN:
            raise VlkitError(f"{path}: 'hide' must be one of {', '.join(HIDDEN)}")
        return cls(load_vl_model(Path(folder) / INNER_DIR), config["hide"])
