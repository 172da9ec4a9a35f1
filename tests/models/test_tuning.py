"""Every tuning method, timm-style: forward + backward on a tiny captioner, exactly which weights train."""

from __future__ import annotations

import re

import pytest
import torch
from transformers.modeling_outputs import BaseModelOutput

from tests.models.tiny_captioner import save_tiny_parts
from vlkit.errors import VlkitError
from vlkit.models.captioner.model import CaptionerSpec, build_captioner
from vlkit.models.tuning import TUNING_METHODS, tuning_method

NEW = r"(\.crossattention\.|\.ln_cross_attn\.|^enc_to_dec_proj\.)"
# What each method must train besides the new weights, written from the methods' definitions, not from
# the code's requires_grad flags.
EXTRA = {
    "cross-attn": None,
    "lora": r"\.lora_[AB]\.",
    "ia3": r"\.ia3_l\.",
    "prefix": r"^decoder\.prefix\.",
    "adapter": r"(\.attn_adapter\.|\.mlp_adapter\.|\.ln_1\.|\.ln_2\.|transformer\.ln_f\.)",
    "full": r".",
}
# Weights no caption loss reaches: CLIP's post-layernorm only feeds its pooled output.
UNUSED = r"^encoder\.post_layernorm\."


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    clip, vit, gpt2 = save_tiny_parts(tmp_path_factory.mktemp("parts"))
    return {"clip": clip, "vit": vit, "gpt2": gpt2}


def _build(parts, encoder: str, method: str, **spec):
    return build_captioner(
        CaptionerSpec(str(parts[encoder]), str(parts["gpt2"]), method, max_caption_tokens=16, **spec)
    )


def _expected_trainable(names: list[str], method: str) -> set[str]:
    extra = EXTRA[method]
    return {n for n in names if re.search(NEW, n) or (extra and re.search(extra, n))}


def test_every_method_is_registered_under_its_own_name():
    assert list(TUNING_METHODS) == ["cross-attn", "lora", "ia3", "prefix", "adapter", "full"]
    assert all(name == method.name for name, method in TUNING_METHODS.items())
    with pytest.raises(VlkitError, match="tuning: unknown method 'qlora'"):
        tuning_method("qlora")


@pytest.mark.parametrize("encoder", ["clip", "vit"])  # CLIP (width 32) gets a projection, ViT (24) none
@pytest.mark.parametrize("method", list(TUNING_METHODS))
def test_backward_reaches_exactly_the_weights_the_method_trains(parts, encoder, method):
    captioner = _build(parts, encoder, method)
    model = captioner.model
    names = [name for name, _ in model.named_parameters()]
    expected = _expected_trainable(names, method)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == expected
    assert any(name.startswith("enc_to_dec_proj.") for name in names) == (encoder == "clip")
    if method != "full":
        assert not any(name.startswith("encoder.") for name in expected)

    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    torch.manual_seed(0)
    ids = torch.randint(0, len(captioner.tokenizer), (2, 8))
    loss = model(pixel_values=torch.randn(2, 3, 32, 32), decoder_input_ids=ids, labels=ids).loss
    loss.backward()

    # Reached, not necessarily non-zero: LoRA's A and an adapter's down-projection get exactly zero gradient
    # on the first step, because LoRA's B and the adapter's up-projection start at zero.
    reached = {n for n, p in model.named_parameters() if p.grad is not None}
    assert reached == {n for n in expected if not re.search(UNUSED, n)}
    assert any(model.get_parameter(n).grad.abs().sum() > 0 for n in reached if not re.search(NEW, n)) == (
        method != "cross-attn"
    )
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert changed == reached


@pytest.mark.parametrize("method", ["lora", "ia3", "adapter"])
def test_methods_that_start_as_the_identity_leave_the_untuned_captioner_unchanged(parts, method):
    untuned = _build(parts, "clip", "cross-attn").model.eval()
    tuned = _build(parts, "clip", method).model.eval()
    pixels, ids = torch.randn(2, 3, 32, 32), torch.randint(0, 100, (2, 6))
    with torch.no_grad():
        expected = untuned(pixel_values=pixels, decoder_input_ids=ids).logits
        assert torch.allclose(tuned(pixel_values=pixels, decoder_input_ids=ids).logits, expected, atol=1e-6)


def test_prefix_generation_with_the_cache_equals_recomputing_every_step(parts):
    """The reason `prefix.py` exists: peft's prefix model loses the cache inside an encoder-decoder."""
    captioner = _build(parts, "clip", "prefix", tuning_config=TUNING_METHODS["prefix"].config_class(4))
    model = captioner.model.eval()
    with torch.no_grad():
        for parameter in model.decoder.parameters():  # away from a random model's near-uniform logits
            parameter.add_(torch.randn_like(parameter) * 0.3)
    features = captioner.encode_images(torch.randn(3, 3, 32, 32))
    encoded = BaseModelOutput(last_hidden_state=features)
    eos = captioner.tokenizer.eos_token_id
    with torch.no_grad():
        generated = model.generate(encoder_outputs=encoded, max_new_tokens=6, min_new_tokens=6)
        sequence = generated[:, :1]
        for _ in range(6):
            logits = model(encoder_outputs=encoded, decoder_input_ids=sequence).logits[:, -1]
            logits[:, eos] = -torch.inf  # as min_new_tokens does
            sequence = torch.cat([sequence, logits.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(generated, sequence)


def test_tuning_options_are_typed_by_the_config_fields():
    lora = TUNING_METHODS["lora"]
    config = lora.config_from_options(["rank=4", "alpha=8", "target_modules=attn.c_attn, mlp.c_fc"])
    assert (config.rank, config.alpha, config.target_modules) == (4, 8.0, ["attn.c_attn", "mlp.c_fc"])
    prefix = TUNING_METHODS["prefix"].config_from_options(["prefix_projection=true", "projection-width=none"])
    assert prefix.prefix_projection is True and prefix.projection_width is None
    with pytest.raises(VlkitError, match="'lora' has no option 'bottleneck'"):
        lora.config_from_options(["bottleneck=8"])
    with pytest.raises(VlkitError, match="--tuning-option rank: 'four' is not a valid int"):
        lora.config_from_options(["rank=four"])
    with pytest.raises(VlkitError, match="expected KEY=VALUE"):
        lora.config_from_options(["rank"])


def test_ia3_rejects_feedforward_modules_outside_its_targets(parts):
    config = TUNING_METHODS["ia3"].config_class(
        target_modules=["attn.c_attn"], feedforward_modules=["mlp.c_fc"]
    )
    with pytest.raises(VlkitError, match="feedforward_modules: 'mlp.c_fc' is not one of target_modules"):
        _build(parts, "vit", "ia3", tuning_config=config)
