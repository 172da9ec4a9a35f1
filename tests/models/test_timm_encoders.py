"""timm ViTs and open_clip towers as captioner encoders: loaded by the names users pass, their tokens, prefix
tokens and grid as the libraries lay them out, their own preprocessing, and save -> load round trips."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import TimmWrapperModel, VisionEncoderDecoderConfig

from tests.models.tiny_captioner import save_tiny_gpt2
from tests.models.tiny_encoders import (
    register_tiny_open_clip,
    save_tiny_open_clip_weights,
    save_tiny_timm_vit,
)
from vlkit.captioning.attention import Aggregation, token_maps
from vlkit.captioning.generate import caption_images
from vlkit.cli.main import main
from vlkit.data.images import read_image
from vlkit.errors import VlkitError
from vlkit.models.captioner.model import CaptionerSpec, build_captioner, load_captioner
from vlkit.models.captioner.open_clip_tower import (
    OpenClipVisionConfig,
    OpenClipVisionModel,
    register_open_clip_config,
)

IMAGES = [
    Image.new("RGB", (64, 64), (200, 30, 30)),
    Image.effect_noise((48, 80), 60).convert("RGB"),  # not square: the resize and the crop both matter
]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    weights = save_tiny_open_clip_weights(root / "open_clip")
    return {
        "timm": save_tiny_timm_vit(root / "timm"),
        "timm-registers": save_tiny_timm_vit(root / "timm-reg", reg_tokens=4),
        "open_clip": f"open_clip:{register_tiny_open_clip(root / 'open_clip')}/{weights}",
        "open_clip_weights": weights,
        "gpt2": save_tiny_gpt2(root / "gpt2"),
    }


def _captioner(parts, encoder, method="cross-attn", **options):
    return build_captioner(CaptionerSpec(str(parts[encoder]), str(parts["gpt2"]), method, None, 8, **options))


def test_timm_s_own_export_records_num_classes_which_the_loader_takes_out(parts):
    # What timm 1.0's save_for_hf writes; TimmWrapperModel alone would refuse it (num_classes twice).
    assert json.loads((parts["timm"] / "config.json").read_text())["model_args"]["num_classes"] == 0
    with pytest.raises(TypeError, match="num_classes"):
        TimmWrapperModel.from_pretrained(parts["timm"])
    assert isinstance(_captioner(parts, "timm").model.encoder, TimmWrapperModel)


@pytest.mark.parametrize(("encoder", "prefix"), [("timm", 1), ("timm-registers", 5), ("open_clip", 1)])
def test_the_encoder_gives_its_prefix_tokens_then_its_patch_grid(parts, encoder, prefix):
    captioner = _captioner(parts, encoder)
    assert captioner.prefix_tokens() == prefix and captioner.patch_grid() == (4, 4)
    pixels = captioner.preprocess(IMAGES)
    tokens = captioner.encode_images(pixels)
    assert tokens.shape == (2, prefix + 16, 24)
    with torch.no_grad():
        if encoder.startswith("timm"):  # timm's own token sequence, its final norm applied
            expected = _timm_itself(parts[encoder]).forward_features(pixels)
        else:  # open_clip's patch tokens (output_tokens=True) after the class token, both layer-normed
            visual = captioner.model.encoder.visual
            embedded = visual.transformer(visual._embeds(pixels))
            expected = visual.ln_post(embedded)
            visual.output_tokens = True
            assert torch.allclose(visual(pixels)[1], tokens[:, 1:], atol=1e-6)
            visual.output_tokens = False
    assert torch.allclose(tokens, expected, atol=1e-6)


def test_a_timm_encoder_keeps_its_pretrained_weights(parts):
    encoder = _captioner(parts, "timm-registers").model.encoder.timm_model.state_dict()
    saved = load_file(str(parts["timm-registers"] / "model.safetensors"))
    assert encoder.keys() == saved.keys() and all(torch.equal(encoder[k], saved[k]) for k in saved)
    assert encoder["reg_token"].shape == (1, 4, 24)


def test_an_open_clip_tower_keeps_the_weights_its_name_points_to(parts):
    encoder = _captioner(parts, "open_clip").model.encoder.visual.state_dict()
    saved = load_file(str(parts["open_clip_weights"]))
    visual = {
        k[len("visual.") :]: v for k, v in saved.items() if k.startswith("visual.") and k != "visual.proj"
    }
    assert encoder.keys() == visual.keys() and all(torch.equal(encoder[k], visual[k]) for k in visual)


def _timm_itself(folder):
    """The folder loaded by timm itself, not through transformers."""
    import timm

    return timm.create_model(f"local-dir:{folder}", pretrained=True).eval()


def _library_transform(parts, encoder):
    if encoder.startswith("timm"):
        import timm.data

        return timm.data.create_transform(**timm.data.resolve_data_config(model=_timm_itself(parts[encoder])))
    import open_clip

    return open_clip.create_model_and_transforms(register_tiny_open_clip(parts["open_clip_weights"].parent))[
        2
    ]


@pytest.mark.parametrize("encoder", ["timm", "open_clip"])
def test_the_encoder_s_own_preprocessing_is_saved_and_loaded_with_the_captioner(parts, tmp_path, encoder):
    captioner = _captioner(parts, encoder)
    transform = _library_transform(parts, encoder)
    expected = torch.stack([transform(image) for image in IMAGES])
    assert torch.equal(captioner.preprocess(IMAGES), expected)  # the library's own pixels, exactly
    loaded = load_captioner(captioner.save(tmp_path / encoder))
    assert torch.equal(loaded.preprocess(IMAGES), expected)
    assert json.loads((tmp_path / encoder / "preprocessor_config.json").read_text())["pretrained_cfg"]


@pytest.mark.parametrize("encoder", ["timm-registers", "open_clip"])
@pytest.mark.parametrize("connector", ["attention", "local"])
def test_a_captioner_on_the_encoder_reloads_with_identical_outputs(parts, tmp_path, encoder, connector):
    captioner = _captioner(parts, encoder, "lora", connector_layers=1, connector=connector)
    with torch.no_grad():  # trained-looking weights, so a reload that re-initialized anything would show
        for parameter in captioner.model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    loaded = load_captioner(captioner.save(tmp_path / "c"))
    assert loaded.prefix_tokens() == captioner.prefix_tokens() and loaded.patch_grid() == (4, 4)
    pixels, ids = captioner.preprocess(IMAGES), torch.randint(0, 100, (2, 5))
    captioner.model.eval()
    with torch.no_grad():
        expected = captioner.model(pixel_values=pixels, decoder_input_ids=ids).logits
        assert torch.equal(loaded.model(pixel_values=pixels, decoder_input_ids=ids).logits, expected)


def test_a_local_connector_passes_the_registers_unchanged(parts):
    model = _captioner(parts, "timm-registers", connector_layers=1, connector="local").model
    tokens = torch.randn(1, 5 + 16, model.decoder.config.n_embd)
    with torch.no_grad():
        mixed = model.connector(tokens)
    assert torch.equal(mixed[:, :5], tokens[:, :5]) and not torch.equal(mixed[:, 5:], tokens[:, 5:])
    with pytest.raises(VlkitError, match="20 image tokens, not the encoder's 5 prefix tokens and 4x4 grid"):
        model.connector(tokens[:, 1:])


def test_an_uncached_timm_or_open_clip_name_offline_says_how_to_get_it(monkeypatch, tmp_path, parts):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # read once, at import
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    gpt2 = str(parts["gpt2"])
    name = "timm/vit_nobody_patch14_224.none"
    with pytest.raises(VlkitError, match=rf"cannot load model '{name}'.*`hf download {name}`"):
        build_captioner(CaptionerSpec(name, gpt2))
    name = "open_clip:ViT-B-32/laion2b_s34b_b79k"
    hint = (
        r"cannot load model 'open_clip:ViT-B-32/laion2b_s34b_b79k'.*`hf download laion/CLIP-ViT-B-32-laion2B"
    )
    with pytest.raises(VlkitError, match=hint):
        build_captioner(CaptionerSpec(name, gpt2))


def test_timm_or_open_clip_not_installed_names_the_extra(monkeypatch, parts, tmp_path):
    folder = _captioner(parts, "timm").save(tmp_path / "timm")
    monkeypatch.setitem(sys.modules, "timm", None)  # as if the extra were not installed
    with pytest.raises(
        VlkitError, match=r"--encoder .*: needs timm, which is not installed: .*vlkit\[openclip\]"
    ):
        build_captioner(CaptionerSpec(str(parts["timm"]), str(parts["gpt2"])))
    with pytest.raises(VlkitError, match=r"config.json: needs timm, which is not installed"):
        load_captioner(folder)
    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(VlkitError, match=r"vlkit\[openclip\]"):
        build_captioner(CaptionerSpec(parts["open_clip"], str(parts["gpt2"])))


def test_an_open_clip_tower_is_rebuilt_without_a_download_and_checks_its_architecture(parts, tmp_path):
    captioner = _captioner(parts, "open_clip")
    folder = captioner.save(tmp_path / "c")
    encoder = json.loads((folder / "config.json").read_text())["encoder"]
    assert encoder["model_type"] == "open_clip_vision" and encoder["arch"] == "vlkit-tiny-vit"
    assert (encoder["patch_grid"], encoder["prefix_tokens"], encoder["hidden_size"]) == ([4, 4], 1, 24)
    assert isinstance(load_captioner(folder).model.encoder, OpenClipVisionModel)
    register_open_clip_config()  # what load_captioner does first: AutoConfig then knows the encoder's type
    assert isinstance(VisionEncoderDecoderConfig.from_pretrained(folder).encoder, OpenClipVisionConfig)
    config = json.loads((folder / "config.json").read_text())
    config["encoder"]["vision_cfg"]["layers"] = 2
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(VlkitError, match="defines its vision tower differently from the one saved"):
        load_captioner(folder)


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ["timm-registers", "open_clip"])
def test_train_predict_reload_and_attend_on_the_encoder(parts, shapes_world, tmp_path, encoder):
    out, images = tmp_path / "captioner", tmp_path / "images"
    main(["--quiet", "caption", "train", "--data", str(shapes_world), "--encoder", str(parts[encoder]),
          "--decoder", str(parts["gpt2"]), "--out", str(out), "--steps", "2", "--batch-size", "8",
          "--max-caption-tokens", "12", "--val-limit", "2", "--mixed-precision", "no"])  # fmt: skip
    prefix = 5 if encoder == "timm-registers" else 1
    cached = [np.load(part, mmap_mode="r") for part in (out / "feature_cache").glob("*/part-*.npy")]
    assert cached and all(part.shape[1:] == (prefix + 16, 24) for part in cached)  # trained from the cache
    images.mkdir()
    for name in ("val_00000.png", "val_00001.png", "val_00002.png"):
        (images / name).write_bytes((shapes_world / "images" / name).read_bytes())
    predictions = tmp_path / "pred.json"
    main(["--quiet", "caption", "predict", "--model", str(out), "--images", str(images), "--out",
          str(predictions)])  # fmt: skip
    captions = json.loads(predictions.read_text())
    loaded = load_captioner(load_captioner(out).save(tmp_path / "again"))
    pictures = [read_image(path) for path in sorted(images.iterdir())]
    output = caption_images(loaded, pictures, return_attentions=True)
    assert output.captions == [captions[path.stem] for path in sorted(images.iterdir())]
    assert (output.prefix_tokens, output.patch_grid) == (prefix, (4, 4))
    attend = tmp_path / "attend"
    main(["--quiet", "caption", "attend", "--model", str(out), "--images", str(images), "--out", str(attend),
          "--figures", "1"])  # fmt: skip
    for k, path in enumerate(sorted(images.iterdir())):
        maps = np.load(attend / "maps" / f"{path.stem}.npy")
        assert maps.shape == (len(output.token_ids[k]), 4, 4)
        expected = token_maps(output.attentions[k], (4, 4), prefix, Aggregation()).maps  # registers excluded
        np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-7)
    assert len(list((attend / "figures").glob("*.png"))) == 1


def test_a_timm_architecture_the_installed_timm_lacks_is_one_line_naming_the_file(parts, tmp_path):
    folder = tmp_path / "unknown"
    shutil.copytree(parts["timm"], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architecture": "vit_nobody_patch8"}))
    with pytest.raises(VlkitError, match=r"--encoder .*unknown: The model architecture 'vit_nobody_patch8'"):
        build_captioner(CaptionerSpec(str(folder), str(parts["gpt2"])))
    saved = _captioner(parts, "timm").save(tmp_path / "captioner")
    config = json.loads((saved / "config.json").read_text())
    config["encoder"]["architecture"] = "vit_nobody_patch8"
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(VlkitError, match=r"captioner/config.json: The model architecture 'vit_nobody_"):
        load_captioner(saved)
