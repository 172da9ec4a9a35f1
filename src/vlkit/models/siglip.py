"""SigLIP and SigLIP 2 behind vlkit's `Clip` interface: sigmoid scores with the model's own logit bias, and
texts tokenized as the model was trained.

transformers does the models (`SiglipModel`, and `Siglip2Model` for the NaFlex checkpoints), their
tokenizers and image processors; `vlkit.models.clip.load_clip` picks them by config.json's `model_type`
("siglip" also covers the fixed-resolution SigLIP 2 checkpoints, google/siglip2-base-patch16-224 and
kin). This module only holds the two conventions a caller of the bare models easily gets wrong:

- Texts are padded to the context (`max_length`, 64 for the released models), on the right, and encoded
  without an attention mask. SigLIP's text tower pools its *last* position, so CLIP's habit of padding to
  the longest text of the batch changes every shorter text's embedding ("make sure to pass
  padding="max_length" because that is how the model was trained", transformers' SigLIP docs), and so does
  masking the pads: big_vision trains without a mask (open_clip #984; transformers #39283), while
  transformers 5's SigLIP tokenizers return one that `model(**inputs)` would apply. open_clip's SigLIP 2
  tokenizer pads on the right too, whatever side Gemma's tokenizer config names.
- Probabilities are sigmoid(logit_scale * cos + logit_bias), one per (image, text) pair, never a softmax
  over the texts (open_clip #716, #736): `scoring = "sigmoid"`, applied by `clip.class_probabilities`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from vlkit.models.clip import HFClip


class HFSiglip(HFClip):
    """A transformers `SiglipModel` (SigLIP, or a fixed-resolution SigLIP 2) with its tokenizer and image
    processor."""

    scoring = "sigmoid"

    def __init__(
        self, name: str, model, tokenizer, image_processor, device: torch.device, dtype: torch.dtype
    ):
        self._logit_bias = float(model.logit_bias.detach().float())  # before HFClip casts the weights
        super().__init__(name, model, tokenizer, image_processor, device, dtype)

    @property
    def logit_bias(self) -> float:
        return self._logit_bias

    def tokenize(self, texts: Sequence[str]) -> Any:
        """The model's input: each text cut to the context and padded on the right to exactly the context,
        as SigLIP was trained (the tokenizer's own end-token and lower-casing settings kept)."""
        return self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            padding_side="right",
            return_tensors="pt",
        )

    def _text_features(self, texts: Sequence[str]) -> torch.Tensor:
        input_ids = self.tokenize(texts)["input_ids"].to(self.device)  # no attention mask: as trained
        return self.model.get_text_features(input_ids=input_ids).pooler_output  # (N, D)


class Siglip2Clip(HFSiglip):
    """A NaFlex SigLIP 2 (`Siglip2Model`): each image is resized to keep its aspect ratio within a patch
    budget, so its processor returns patches (B, N, 3 P^2), their mask (B, N) and each image's patch grid
    (B, 2). `preprocess` packs the three into one tensor (B, N, 3 P^2 + 3), so that every caller keeps
    passing one tensor from `preprocess` to `encode_images`; `encode_images` unpacks it before casting
    only the patches to the model's precision (the grid stays an exact integer)."""

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        out = self.image_processor(images=list(images), return_tensors="pt")
        patches, mask, grid = out["pixel_values"].float(), out["pixel_attention_mask"], out["spatial_shapes"]
        grid_per_patch = grid[:, None, :].expand(-1, patches.shape[1], -1)  # (B, N, 2)
        return torch.cat([patches, mask[..., None].float(), grid_per_patch.float()], dim=-1)

    @torch.inference_mode()
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        patches = pixel_values[..., :-3].to(self.device, self.dtype)  # (B, N, 3 P^2)
        mask = pixel_values[..., -3].to(self.device).long()  # (B, N)
        grid = pixel_values[:, 0, -2:].to(self.device).long()  # (B, 2)
        features = self.model.get_image_features(
            pixel_values=patches, pixel_attention_mask=mask, spatial_shapes=grid
        ).pooler_output  # (B, D)
        return torch.nn.functional.normalize(features.float(), dim=-1)
