"""SigLIP and SigLIP 2 through `load_clip`: sigmoid scoring with the model's own logit bias, texts padded to
the context as the model was trained, and probabilities equal to transformers' (and open_clip's) own."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from tests.models.tiny import save_tiny_clip
from tests.models.tiny_encoders import register_tiny_open_clip
from tests.models.tiny_siglip import (
    CONTEXT,
    LOGIT_BIAS,
    LOGIT_SCALE,
    register_tiny_open_clip_siglip,
    save_tiny_siglip,
    save_tiny_siglip2,
)
from vlkit.errors import VlkitError
from vlkit.models.clip import ClipSpec, class_probabilities, load_clip

TEXTS = ["a red circle", "a large blue star in the top left", "a small green square"]


def _images() -> list[Image.Image]:
    sizes_and_colours = [((40, 50), (200, 30, 30)), ((32, 32), (30, 30, 200)), ((64, 16), (30, 200, 30))]
    return [Image.new("RGB", size, colour) for size, colour in sizes_and_colours]


@pytest.fixture(scope="module")
def siglip_dir(tmp_path_factory):
    return save_tiny_siglip(tmp_path_factory.mktemp("siglip") / "tiny")


def test_a_siglip_folder_loads_as_a_sigmoid_model_with_its_own_constants(siglip_dir):
    clip = load_clip(str(siglip_dir))
    assert (clip.scoring, clip.precision) == ("sigmoid", "fp32")
    assert clip.logit_scale == pytest.approx(LOGIT_SCALE, rel=1e-6)
    assert clip.logit_bias == pytest.approx(LOGIT_BIAS, rel=1e-6)
    tiny_clip = load_clip(str(save_tiny_clip(siglip_dir.parent / "clip")))
    assert (tiny_clip.scoring, tiny_clip.logit_bias) == ("softmax", None)


def test_the_logit_scale_and_bias_keep_their_fp32_values_in_bf16(siglip_dir):
    clip = load_clip(ClipSpec(str(siglip_dir), precision="bf16"))
    assert clip.model.logit_bias.dtype == torch.bfloat16 and clip.model.logit_bias.item() != LOGIT_BIAS
    assert clip.logit_bias == pytest.approx(LOGIT_BIAS, rel=1e-6)
    assert clip.logit_scale == pytest.approx(LOGIT_SCALE, rel=1e-6)


def test_texts_are_padded_to_the_context_without_a_mask_as_siglip_was_trained(siglip_dir):
    clip = load_clip(str(siglip_dir))
    tokens = clip.tokenizer(
        TEXTS, padding="max_length", max_length=CONTEXT, truncation=True, return_tensors="pt"
    )
    assert tokens["input_ids"].shape[1] == CONTEXT and int(tokens["attention_mask"][0].sum()) < CONTEXT

    def embed(**inputs) -> torch.Tensor:
        with torch.no_grad():
            return torch.nn.functional.normalize(clip.model.get_text_features(**inputs).pooler_output, dim=-1)

    documented = embed(input_ids=tokens["input_ids"])  # transformers' docs: padding="max_length"
    ours = clip.encode_texts(TEXTS)
    assert torch.allclose(ours, documented, atol=1e-6)
    assert torch.allclose(clip.encode_texts(TEXTS[:1]), ours[:1], atol=1e-6)  # whatever else is in the batch
    unpadded = embed(**clip.tokenizer(TEXTS[:1], return_tensors="pt"))
    masked = embed(**tokens)  # the attention mask transformers 5's tokenizer returns, applied
    assert not torch.allclose(unpadded, ours[:1], atol=1e-3)
    assert not torch.allclose(masked, ours, atol=1e-3)


def test_siglip_probabilities_are_the_sigmoid_of_transformers_own_logits(siglip_dir):
    clip = load_clip(str(siglip_dir))
    images = _images()
    cosines = clip.encode_images(clip.preprocess(images)) @ clip.encode_texts(TEXTS).T  # (3 images, 3 texts)
    ours = class_probabilities(cosines, clip)
    tokens = clip.tokenizer(TEXTS, padding="max_length", max_length=CONTEXT, return_tensors="pt")
    pixels = clip.image_processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        logits = clip.model(input_ids=tokens["input_ids"], pixel_values=pixels).logits_per_image
    assert torch.allclose(ours, torch.sigmoid(logits), atol=1e-5)
    assert not torch.allclose(ours.sum(dim=-1), torch.ones(3), atol=1e-2)  # not a softmax over the texts
    assert torch.equal(ours.argsort(dim=-1), cosines.argsort(dim=-1))  # the same ranking as the cosines


def test_a_naflex_siglip2_keeps_each_aspect_ratio_and_matches_transformers(tmp_path):
    clip = load_clip(str(save_tiny_siglip2(tmp_path / "siglip2")))
    assert type(clip).__name__ == "Siglip2Clip" and clip.scoring == "sigmoid"
    images = _images()
    packed = clip.preprocess(images)
    inputs = clip.image_processor(images=images, return_tensors="pt")
    assert inputs["spatial_shapes"].tolist() != [inputs["spatial_shapes"][0].tolist()] * 3  # grids differ
    ours = class_probabilities(clip.encode_images(packed) @ clip.encode_texts(TEXTS).T, clip)
    assert clip.tokenizer.padding_side == "left"  # transformers 5's SigLIP 2 default; trained on the right
    right = dict(padding="max_length", max_length=CONTEXT, padding_side="right", return_tensors="pt")
    with torch.no_grad():
        logits = clip.model(input_ids=clip.tokenizer(TEXTS, **right)["input_ids"], **inputs).logits_per_image
    assert torch.allclose(ours, torch.sigmoid(logits), atol=1e-5)
    halves = torch.cat([clip.encode_images(packed[:1]), clip.encode_images(packed[1:])])
    assert torch.allclose(halves, clip.encode_images(packed), atol=1e-5)  # batches concatenate


def test_open_clip_siglip_scores_with_sigmoids_and_its_bias_and_open_clip_clip_with_softmax(tmp_path):
    pytest.importorskip("open_clip")
    torch.manual_seed(0)
    clip = load_clip(f"open_clip:{register_tiny_open_clip_siglip(tmp_path)}")
    assert (clip.scoring, clip.logit_bias) == ("sigmoid", pytest.approx(LOGIT_BIAS, rel=1e-6))
    images = _images()
    pixels = clip.preprocess(images)
    ours = class_probabilities(clip.encode_images(pixels) @ clip.encode_texts(TEXTS).T, clip)
    with torch.no_grad():
        # open_clip's own forward: unit features, exp(logit_scale) and the bias
        image_features, text_features, scale, bias = clip.model(pixels, clip.tokenizer(TEXTS))
    logits = scale * image_features @ text_features.T + bias
    assert torch.allclose(ours, torch.sigmoid(logits), atol=1e-5)
    assert clip.tokenizer(TEXTS).shape == (3, CONTEXT)  # open_clip's tokenizer pads to the context itself
    plain = load_clip(f"open_clip:{register_tiny_open_clip(tmp_path / 'clip')}")
    assert (plain.scoring, plain.logit_bias) == ("softmax", None)


def test_an_open_clip_siglip_whose_hub_tokenizer_is_missing_offline_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("open_clip")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    arch = register_tiny_open_clip_siglip(tmp_path, tokenizer_repo="vlkit-tests/no-such-siglip-tokenizer")
    with pytest.raises(VlkitError) as error:
        load_clip(f"open_clip:{arch}")
    message = str(error.value)
    assert "\n" not in message and f"open_clip:{arch}" in message
    assert "`hf download vlkit-tests/no-such-siglip-tokenizer`" in message
