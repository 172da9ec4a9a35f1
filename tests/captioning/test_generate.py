"""Decoding: greedy and beam search through transformers' generate, batching, and cross-attention capture."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from transformers.modeling_outputs import BaseModelOutput

from tests.models.tiny_captioner import save_tiny_parts
from vlkit.captioning.generate import DecodingConfig, caption_features, caption_images
from vlkit.errors import VlkitError
from vlkit.models.captioner.model import CaptionerSpec, build_captioner
from vlkit.models.tuning import TUNING_METHODS


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    clip, vit, gpt2 = save_tiny_parts(tmp_path_factory.mktemp("parts"))
    return {"clip": clip, "vit": vit, "gpt2": gpt2}


def _captioner(parts, method="lora", encoder="clip"):
    captioner = build_captioner(
        CaptionerSpec(str(parts[encoder]), str(parts["gpt2"]), method, max_caption_tokens=10)
    )
    torch.manual_seed(1)
    with torch.no_grad():  # away from a random model's near-uniform logits, so captions differ by image
        for parameter in captioner.model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    return captioner


def _features(captioner, count=5):
    torch.manual_seed(2)
    return captioner.encode_images(torch.randn(count, 3, 32, 32))


@pytest.mark.parametrize("method", list(TUNING_METHODS))
def test_greedy_equals_beam_search_with_one_beam_and_batching_changes_nothing(parts, method):
    captioner = _captioner(parts, method)
    features = _features(captioner)
    greedy = caption_features(captioner, features, DecodingConfig(num_beams=1, batch_size=5))
    assert len(set(greedy.captions)) > 1  # the images get different captions
    one_beam = caption_features(captioner, features, DecodingConfig(num_beams=1, batch_size=5), False)
    assert one_beam.token_ids == greedy.token_ids
    for batch_size in (1, 2):
        batched = caption_features(captioner, features, DecodingConfig(batch_size=batch_size))
        assert batched.captions == greedy.captions and batched.token_ids == greedy.token_ids
    beams = caption_features(captioner, features, DecodingConfig(num_beams=3, batch_size=2))
    assert len(beams.captions) == 5 and all(1 <= len(ids) <= 10 for ids in beams.token_ids)


def test_greedy_is_the_argmax_chain_of_the_model(parts):
    captioner = _captioner(parts)
    features = _features(captioner, 3)
    greedy = caption_features(captioner, features)
    eos, start = captioner.tokenizer.eos_token_id, captioner.model.config.decoder_start_token_id
    sequence = torch.full((3, 1), start)
    with torch.no_grad():
        for _ in range(10):
            logits = captioner.model(
                encoder_outputs=BaseModelOutput(last_hidden_state=features), decoder_input_ids=sequence
            ).logits[:, -1]
            sequence = torch.cat([sequence, logits.argmax(-1, keepdim=True)], dim=1)
    for row, ids in zip(sequence[:, 1:].tolist(), greedy.token_ids, strict=True):
        assert ids == (row[: row.index(eos) + 1] if eos in row else row)


@pytest.mark.parametrize("encoder", ["clip", "vit"])
def test_attentions_cover_every_token_and_sum_to_one_over_image_tokens(parts, encoder):
    captioner = _captioner(parts, "prefix", encoder)
    features = _features(captioner, 3)
    out = caption_features(captioner, features, DecodingConfig(num_beams=2), return_attentions=True)
    assert out.patch_grid == (4, 4) and out.prefix_tokens == 1  # 32 px / 8 px patches, after a CLS token
    config = captioner.model.decoder.config
    for ids, tokens, attention in zip(out.token_ids, out.tokens, out.attentions, strict=True):
        assert len(tokens) == len(ids)
        assert attention.shape == (len(ids), config.n_layer, config.n_head, 17)
        assert torch.allclose(attention.sum(-1), torch.ones(attention.shape[:-1]), atol=1e-5)


def test_captured_attention_is_the_attention_generate_used(parts):
    captioner = _captioner(parts, "cross-attn")
    features = _features(captioner, 2)
    ours = caption_features(captioner, features, return_attentions=True)
    model = captioner.model
    model.decoder.set_attn_implementation("eager")
    with torch.no_grad():
        out = model.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=features),
            max_new_tokens=10,
            output_attentions=True,
            return_dict_in_generate=True,
        )
    for image, attention in enumerate(ours.attentions):
        for step in range(len(ours.token_ids[image])):
            per_layer = torch.stack([layer[image, :, -1] for layer in out.cross_attentions[step]])
            assert torch.allclose(attention[step], per_layer, atol=1e-5)


def test_images_and_their_features_give_the_same_captions(parts):
    captioner = _captioner(parts, encoder="vit")
    images = [Image.new("RGB", (40, 30), colour) for colour in ("red", "navy", "white")]
    from_images = caption_images(captioner, images, DecodingConfig(batch_size=2))
    features = captioner.encode_images(captioner.preprocess(images))
    assert from_images.captions == caption_features(captioner, features).captions
    assert from_images.attentions is None


def test_bad_decoding_settings_are_refused_naming_the_field(parts):
    captioner = _captioner(parts, "prefix")
    features = _features(captioner, 1)
    with pytest.raises(VlkitError, match="DecodingConfig.num_beams: must be positive, got 0"):
        caption_features(captioner, features, DecodingConfig(num_beams=0))
    limit = "DecodingConfig.max_new_tokens: 35 tokens is over this captioner's limit of 30"
    with pytest.raises(VlkitError, match=limit):
        caption_features(captioner, features, DecodingConfig(max_new_tokens=35))
