"""Building, saving and loading captioners: pretrained parts kept, new parts seeded, folders round-trip."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import CLIPModel, CLIPVisionModel, GPT2LMHeadModel, ViTModel

from tests.models.tiny_captioner import save_tiny_parts
from vlkit.errors import VlkitError
from vlkit.models.captioner.model import TUNING_FILE, CaptionerSpec, build_captioner, load_captioner
from vlkit.models.tuning import TUNING_METHODS


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    clip, vit, gpt2 = save_tiny_parts(tmp_path_factory.mktemp("parts"))
    return {"clip": clip, "vit": vit, "gpt2": gpt2}


def _spec(parts, method="lora", encoder="clip", **options):
    return CaptionerSpec(str(parts[encoder]), str(parts["gpt2"]), method, max_caption_tokens=16, **options)


def test_a_clip_checkpoint_gives_its_vision_tower_and_gpt2_keeps_its_weights(parts):
    captioner = build_captioner(_spec(parts, "cross-attn"))
    model = captioner.model
    assert isinstance(model.encoder, CLIPVisionModel)
    clip_vision = CLIPModel.from_pretrained(parts["clip"]).vision_model.state_dict()
    encoder = model.encoder.state_dict()
    assert encoder.keys() == clip_vision.keys() and all(
        torch.equal(encoder[k], clip_vision[k]) for k in encoder
    )
    gpt2 = GPT2LMHeadModel.from_pretrained(parts["gpt2"]).state_dict()
    decoder = model.decoder.state_dict()
    assert set(decoder) - set(gpt2) == {k for k in decoder if "crossattention" in k or "ln_cross_attn" in k}
    assert all(torch.equal(decoder[k], gpt2[k]) for k in gpt2)
    assert model.decoder.lm_head.weight is model.decoder.transformer.wte.weight  # still tied
    assert model.enc_to_dec_proj.in_features == 32 and model.enc_to_dec_proj.out_features == 24
    tokenizer = captioner.tokenizer
    assert model.config.decoder_start_token_id == tokenizer.eos_token_id == model.config.pad_token_id
    assert isinstance(build_captioner(_spec(parts, "cross-attn", encoder="vit")).model.encoder, ViTModel)


def test_the_same_spec_gives_the_same_weights_and_another_seed_other_new_weights(parts):
    first = build_captioner(_spec(parts)).model.state_dict()
    second = build_captioner(_spec(parts)).model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = build_captioner(_spec(parts, seed=1)).model.state_dict()
    assert not torch.equal(first["enc_to_dec_proj.weight"], other["enc_to_dec_proj.weight"])
    assert torch.equal(first["encoder.pre_layrnorm.weight"], other["encoder.pre_layrnorm.weight"])


@pytest.mark.parametrize("method", list(TUNING_METHODS))
def test_a_saved_captioner_reloads_with_identical_outputs(parts, tmp_path, method):
    captioner = build_captioner(_spec(parts, method))
    with torch.no_grad():  # trained-looking weights, so a reload that re-initialized anything would show
        for parameter in captioner.model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.05)
    folder = captioner.save(tmp_path / method)
    for name in (
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "preprocessor_config.json",
        TUNING_FILE,
    ):
        assert (folder / name).is_file(), name
    assert json.loads((folder / TUNING_FILE).read_text())["method"] == method
    loaded = load_captioner(folder)
    assert loaded.tuning == method and loaded.tuning_config == captioner.tuning_config
    assert loaded.max_caption_tokens == 16
    pixels, ids = torch.randn(2, 3, 32, 32), torch.randint(0, 100, (2, 7))
    captioner.model.eval()
    with torch.no_grad():
        expected = captioner.model(pixel_values=pixels, decoder_input_ids=ids).logits
        assert torch.equal(loaded.model(pixel_values=pixels, decoder_input_ids=ids).logits, expected)
    assert loaded.model.decoder.lm_head.weight is loaded.model.decoder.transformer.wte.weight


def test_the_weights_file_stores_the_tied_output_layer_once(parts, tmp_path):
    folder = build_captioner(_spec(parts, "cross-attn")).save(tmp_path / "c")
    names = set(load_file(str(folder / "model.safetensors")))
    assert ("decoder.lm_head.weight" in names) != ("decoder.transformer.wte.weight" in names)


def test_parts_of_the_wrong_kind_are_refused_naming_the_option(parts):
    with pytest.raises(VlkitError, match="--decoder .*model type 'clip' is not GPT-2-family"):
        build_captioner(CaptionerSpec(str(parts["clip"]), str(parts["clip"])))
    with pytest.raises(VlkitError, match="--encoder .*model type 'gpt2' is not a supported vision encoder"):
        build_captioner(CaptionerSpec(str(parts["gpt2"]), str(parts["gpt2"])))


def test_a_caption_longer_than_the_decoder_positions_is_refused(parts):
    reserved = "CaptionerSpec.max_caption_tokens: 35 caption tokens \\+ 10 positions reserved"
    with pytest.raises(VlkitError, match=reserved):
        build_captioner(CaptionerSpec(str(parts["vit"]), str(parts["gpt2"]), "prefix", max_caption_tokens=35))


def test_loading_a_folder_that_is_not_a_captioner_names_what_is_missing(parts, tmp_path):
    with pytest.raises(VlkitError, match="captioner folder not found"):
        load_captioner(tmp_path / "nothing")
    with pytest.raises(VlkitError, match="not a captioner folder \\(no tuning_config.json\\)"):
        load_captioner(parts["vit"])  # a model folder, but no tuning method
    folder = build_captioner(_spec(parts, "lora", encoder="vit")).save(tmp_path / "lora")
    (folder / TUNING_FILE).write_text(json.dumps({"method": "lora", "config": {"rank": 8, "beta": 1}}))
    with pytest.raises(VlkitError, match="tuning_config.json: unknown field 'beta' for tuning method 'lora'"):
        load_captioner(folder)


@pytest.mark.parametrize("kind", ["attention", "local"])
@pytest.mark.parametrize("method", list(TUNING_METHODS))
def test_a_connector_trains_with_every_method_feeds_the_cross_attention_and_reloads(
    parts, tmp_path, method, kind
):
    captioner = build_captioner(_spec(parts, method, connector_layers=2, connector=kind))
    model = captioner.model
    assert len(model.connector.layers) == 2 and model.config.connector_layers == 2
    assert all(p.requires_grad for p in model.connector.parameters())
    assert method == "full" or not any(p.requires_grad for p in model.encoder.parameters())
    pixels, ids = torch.randn(2, 3, 32, 32), torch.randint(0, 100, (2, 7))
    model.eval()
    with torch.no_grad():
        before = model(pixel_values=pixels, decoder_input_ids=ids).logits
        captions = model.generate(pixel_values=pixels, max_new_tokens=5, do_sample=False)
        for parameter in model.connector.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.5)
        after = model(pixel_values=pixels, decoder_input_ids=ids).logits
        assert not torch.allclose(before, after)  # the decoder reads the image through the connector
        model.connector.layers = torch.nn.ModuleList()  # no layers left: the tokens pass unchanged
        plain = model(pixel_values=pixels, decoder_input_ids=ids).logits
        assert not torch.allclose(plain, after)
    spec = _spec(parts, method, connector_layers=2, connector=kind)
    model.connector = build_captioner(spec).model.connector
    with torch.no_grad():
        assert torch.equal(model.generate(pixel_values=pixels, max_new_tokens=5, do_sample=False), captions)
        for parameter in model.connector.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
        expected = model(pixel_values=pixels, decoder_input_ids=ids).logits
    folder = captioner.save(tmp_path / method)
    saved = json.loads((folder / "config.json").read_text())
    assert (saved["connector_layers"], saved["connector_kind"]) == (2, kind)
    loaded = load_captioner(folder)
    with torch.no_grad():
        assert torch.equal(loaded.model(pixel_values=pixels, decoder_input_ids=ids).logits, expected)


def test_a_captioner_without_a_connector_has_none(parts, tmp_path):
    captioner = build_captioner(_spec(parts, "cross-attn"))
    assert not hasattr(captioner.model, "connector") and captioner.model.config.connector_layers == 0
    assert not hasattr(load_captioner(captioner.save(tmp_path / "c")).model, "connector")


def test_a_bad_connector_depth_is_refused_naming_the_field_or_file(parts, tmp_path):
    with pytest.raises(VlkitError, match="CaptionerSpec.connector_layers: must be between 0 and 8, got -1"):
        build_captioner(_spec(parts, "cross-attn", connector_layers=-1))
    with pytest.raises(VlkitError, match="CaptionerSpec.connector: must be one of attention, local, got"):
        build_captioner(_spec(parts, "cross-attn", connector_layers=1, connector="conv"))
    folder = build_captioner(_spec(parts, "cross-attn")).save(tmp_path / "c")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "connector_layers": 99}))
    with pytest.raises(VlkitError, match="config.json: connector: .* got 99"):
        load_captioner(folder)


def test_a_local_connector_mixes_each_patch_token_with_its_neighbours_only(parts):
    model = build_captioner(_spec(parts, "cross-attn", connector_layers=1, connector="local")).model
    rows, columns = model.connector.layers[0].grid
    width = model.decoder.config.n_embd
    tokens = torch.randn(1, 1 + rows * columns, width)  # CLS, then the patch grid row by row
    far = tokens.clone()
    far[0, 1 + (rows - 1) * columns + columns - 1] += 5.0  # the bottom-right patch token
    with torch.no_grad():
        before, after = model.connector(tokens), model.connector(far)
    cells = range(rows * columns)
    changed = {divmod(i, columns) for i in cells if not torch.equal(before[0, 1 + i], after[0, 1 + i])}
    assert changed == {(r, c) for r in (rows - 2, rows - 1) for c in (columns - 2, columns - 1)}
    assert torch.equal(before[0, 0], tokens[0, 0])  # CLS passes unchanged
