from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.models.tiny import TINY_CLIP, save_tiny_clip
from vlkit.errors import VlkitError
from vlkit.models.clip import ClipSpec, load_clip


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny")


def test_tiny_clip_loads_through_the_public_loader_and_encodes_unit_vectors(tiny_clip_dir):
    clip = load_clip(str(tiny_clip_dir))
    images = [Image.new("RGB", (40, 50), (200, 30, 30)), Image.new("RGB", (32, 32), (30, 30, 200))]
    pixels = clip.preprocess(images)
    assert pixels.shape == (2, 3, TINY_CLIP.image_size, TINY_CLIP.image_size)
    image_features = clip.encode_images(pixels)
    text_features = clip.encode_texts(["a red circle", "a blue star in the middle"])
    assert image_features.shape == (2, TINY_CLIP.projection_dim)
    assert text_features.shape == (2, TINY_CLIP.projection_dim)
    assert torch.allclose(image_features.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(text_features.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert clip.logit_scale == pytest.approx(torch.tensor(2.6592).exp().item(), rel=1e-4)


def test_text_tower_pools_at_the_end_token(tiny_clip_dir):
    # transformers pools at input_ids.argmax() when the config's eos id is 2; ours must pool at the real end.
    clip = load_clip(str(tiny_clip_dir))
    tokens = clip.tokenizer(
        ["a red circle", "a large blue star in the top left"], padding=True, return_tensors="pt"
    )
    eos = clip.tokenizer.eos_token_id
    assert clip.model.config.text_config.eos_token_id == eos != 2
    out = clip.model.text_model(**tokens)
    expected_positions = (tokens["input_ids"] == eos).int().argmax(dim=-1)
    assert expected_positions.tolist() == [
        len(clip.tokenizer("a red circle")["input_ids"]) - 1,
        tokens["input_ids"].shape[1] - 1,
    ]
    gathered = out.last_hidden_state[torch.arange(2), expected_positions]
    assert torch.allclose(out.pooler_output, gathered)


def test_padding_does_not_change_a_text_embedding(tiny_clip_dir):
    clip = load_clip(str(tiny_clip_dir))
    alone = clip.encode_texts(["a red circle"])
    padded = clip.encode_texts(["a red circle", "a small green square in the bottom right"])[:1]
    assert torch.allclose(alone, padded, atol=1e-5)


def test_bf16_precision_loads_bf16_weights_and_returns_fp32(tiny_clip_dir):
    clip = load_clip(ClipSpec(str(tiny_clip_dir), precision="bf16"))
    assert next(clip.model.parameters()).dtype == torch.bfloat16
    features = clip.encode_texts(["a red circle"])
    assert features.dtype == torch.float32


def test_model_folder_without_weights_is_one_clear_error(tmp_path, tiny_clip_dir):
    folder = tmp_path / "noweights"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_clip_dir / "config.json").read_text())
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(
        VlkitError, match=r"noweights: model folder has no model.safetensors.*pytorch_model.bin"
    ):
        load_clip(str(folder))


def test_unknown_model_offline_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # read once, at import
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(
        VlkitError, match=r"cannot load model 'nobody/no-such-clip'.*hf download nobody/no-such-clip"
    ):
        load_clip("nobody/no-such-clip")


def test_unknown_precision_and_open_clip_without_extra_are_clear_errors(tiny_clip_dir, monkeypatch):
    with pytest.raises(VlkitError, match="--precision"):
        load_clip(ClipSpec(str(tiny_clip_dir), precision="fp8"))
    monkeypatch.setitem(sys.modules, "open_clip", None)  # as if the extra were not installed
    with pytest.raises(VlkitError, match=r"vlkit\[openclip\]"):
        load_clip("open_clip:ViT-B-32/laion2b_s34b_b79k")


def test_open_clip_models_load_behind_the_same_interface():
    import open_clip  # noqa: F401  (the openclip extra, which `make test` installs)

    clip = load_clip("open_clip:ViT-B-32")  # no pretrained tag: random weights, nothing downloaded
    pixels = clip.preprocess([Image.new("RGB", (300, 200), (10, 200, 10))])
    assert pixels.shape == (1, 3, 224, 224)
    assert torch.allclose(clip.encode_images(pixels).norm(dim=-1), torch.ones(1), atol=1e-5)
    assert clip.encode_texts(["a photo of a dog", "a cat"]).shape == (2, 512)
    assert clip.logit_scale == pytest.approx(1 / 0.07, rel=1e-3)


class _Payload:
    """Unpickling this runs code: what a hostile pytorch_model.bin can carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _pickled_copy(source, folder, state):
    shutil.copytree(source, folder)
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    return folder


def test_pickled_weights_need_allow_pickle_and_then_load_as_tensors_only(tiny_clip_dir, tmp_path):
    from safetensors.torch import load_file

    state = load_file(str(tiny_clip_dir / "model.safetensors"))
    benign = _pickled_copy(tiny_clip_dir, tmp_path / "benign", state)
    marker = tmp_path / "pwned"
    hostile = _pickled_copy(tiny_clip_dir, tmp_path / "hostile", {**state, "extra": _Payload(marker)})
    hint = r"benign: .*pytorch_model.bin.*`vlkit --allow-pickle COMMAND \.\.\.`"
    with pytest.raises(VlkitError, match=hint):  # the default spec refuses pickles
        load_clip(str(benign))
    with pytest.raises(VlkitError, match="--allow-pickle"):
        load_clip(ClipSpec(str(benign), allow_pickle=False))
    texts = ["a red circle", "two blue stars"]
    expected = load_clip(str(tiny_clip_dir)).encode_texts(texts)
    assert torch.equal(load_clip(ClipSpec(str(benign), allow_pickle=True)).encode_texts(texts), expected)
    with pytest.raises(VlkitError, match="cannot load a CLIP from this folder"):
        load_clip(ClipSpec(str(hostile), allow_pickle=True))  # torch.load(weights_only=True) refuses it
    assert not marker.exists()
    with pytest.raises(VlkitError, match="--allow-pickle"):
        load_clip(str(benign))  # the option belongs to that one spec: nothing global was switched on


def _with_remote_code(source: Path, folder: Path, marker: Path) -> Path:
    """A copy of `source` whose config and tokenizer config name custom code (`auto_map`), as a hostile hub
    repository would: code that leaves `marker` behind when it is imported."""
    shutil.copytree(source, folder)
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nclass Evil: pass\n")
    for name in ("config.json", "tokenizer_config.json"):
        path = folder / name
        if path.is_file():
            data = json.loads(path.read_text())
            data["auto_map"] = {key: "evil.Evil" for key in ("AutoConfig", "AutoModel", "AutoTokenizer")}
            path.write_text(json.dumps(data))
    return folder


def test_remote_code_named_by_a_model_folder_never_runs(tiny_clip_dir, tmp_path):
    from tests.models.tiny_captioner import save_tiny_gpt2
    from vlkit.models.captioner.model import CaptionerSpec, build_captioner, load_captioner

    marker = tmp_path / "marker"
    clip_dir = _with_remote_code(tiny_clip_dir, tmp_path / "clip", marker)
    gpt2_dir = _with_remote_code(save_tiny_gpt2(tmp_path / "gpt2-src"), tmp_path / "gpt2", marker)
    load_clip(str(clip_dir)).encode_texts(["a red circle"])
    captioner = build_captioner(CaptionerSpec(str(clip_dir), str(gpt2_dir), "cross-attn", None, 6))
    saved = _with_remote_code(captioner.save(tmp_path / "cap-src"), tmp_path / "cap", marker)
    load_captioner(saved)
    assert not marker.exists()  # trust_remote_code is never set: the named code was not imported
