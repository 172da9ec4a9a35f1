"""GPT-2's real tokenizer, offline (`tests/fixtures/gpt2.py`, from the ranks `make fixtures` fetches): the
fixture gives GPT-2's ids, a tiny GPT-2 converted with the real encoder.json + vocab.bpe tokenizes exactly as
it does, and a captioner on that decoder takes GPT-2's conventions (id 50256 is start, end and padding, even
when the tokenizer has no padding token of its own), trains and writes captions that decode to text."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

from tests.fixtures.gpt2 import END, END_ID
from tests.models.gpt2_layouts import course_state, random_gpt2
from tests.models.tiny import save_tiny_clip
from vlkit.captioning.generate import caption_images
from vlkit.cli.main import main
from vlkit.data.captions import load_caption_dataset
from vlkit.data.images import read_image
from vlkit.models.captioner.config import CaptionerSpec
from vlkit.models.captioner.model import build_captioner, load_captioner
from vlkit.train.caption_batches import tokenize_captions
from vlkit.train.caption_trainer import train_captioner
from vlkit.train.config import CaptionTrainConfig, LoopConfig

CAPTIONS = [
    "a photo with a red circle.",
    "Ein Hund läuft 3x über die Straße!",
    "Two cats, 1 dog & 42 birds?! (maybe)",
    "a café in São Paulo at 7:30 pm: 100% busy",
    "🐶🐕 a dog, then 🎉 3 more",
    "日本語のキャプション、犬が走る",
    "it's the dog's toy; they'll've gone",
    "  two spaces,\ta tab and a\nnew line",
]
POSITIONS, TOKENS = 64, 24  # the tiny GPT-2's positions; caption tokens the captioner keeps


def test_the_fixture_tokenizer_gives_gpt2s_ids(real_gpt2):
    tokenizer = real_gpt2.tokenizer
    assert tokenizer("a photo with a red circle.")["input_ids"] == [64, 4590, 351, 257, 2266, 9197, 13]
    assert tokenizer("Hello world")["input_ids"] == [15496, 995]
    assert tokenizer(" Hello world")["input_ids"] == [18435, 995]
    assert len(tokenizer) == 50257 and tokenizer.convert_tokens_to_ids(END) == END_ID
    assert tokenizer(f"a dog{END}")["input_ids"] == [64, 3290, END_ID]
    assert tokenizer.eos_token_id == tokenizer.bos_token_id == END_ID and tokenizer.pad_token_id is None


def test_the_derived_files_are_gpt2s_encoder_json_and_vocab_bpe(real_gpt2):
    vocab = json.loads(real_gpt2.encoder_json.read_text(encoding="utf-8"))
    assert len(vocab) == 50257 and vocab[END] == END_ID
    assert (vocab["!"], vocab["Ġt"], vocab["Ġthe"]) == (0, 256, 262)
    lines = real_gpt2.vocab_bpe.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + 50000 and lines[:4] == ["#version: 0.2", "Ġ t", "Ġ a", "h e"]
    assert lines[-1] == "Ġg azed"  # GPT-2's last merge, which made its last token, 50255


@pytest.fixture(scope="module")
def converted(real_gpt2, tmp_path_factory) -> tuple[GPT2LMHeadModel, Path]:
    """A tiny GPT-2 with GPT-2's vocabulary, saved in the course's layout and converted with the real BPE
    files: (the source model, the converted folder)."""
    root = tmp_path_factory.mktemp("real-gpt2")
    config = GPT2Config(
        vocab_size=50257, n_embd=32, n_layer=2, n_head=2, n_positions=POSITIONS,
        bos_token_id=END_ID, eos_token_id=END_ID,
    )  # fmt: skip
    source = random_gpt2(config)
    torch.save(course_state(source), root / "decoder_model.bin")
    main(["--quiet", "convert", "gpt2", "--state-dict", str(root / "decoder_model.bin"),
          "--vocab", str(real_gpt2.encoder_json), "--merges", str(real_gpt2.vocab_bpe), "--n-head", "2",
          "--out", str(root / "gpt2")])  # fmt: skip
    return source, root / "gpt2"


def test_a_gpt2_converted_with_the_real_vocabulary_tokenizes_as_gpt2(converted, real_gpt2):
    source, folder = converted
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for caption in CAPTIONS:
        ids = tokenizer(caption)["input_ids"]
        assert ids == real_gpt2.tokenizer(caption)["input_ids"], caption
        assert tokenizer.decode(ids) == caption
    assert tokenizer.pad_token_id == tokenizer.bos_token_id == tokenizer.eos_token_id == END_ID
    ids = torch.tensor([real_gpt2.tokenizer(CAPTIONS[1])["input_ids"]])
    with torch.no_grad():
        expected, got = source(ids).logits, GPT2LMHeadModel.from_pretrained(folder)(ids).logits
    assert torch.allclose(got, expected, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def parts(converted, real_gpt2, tmp_path_factory) -> dict[str, Path]:
    """The tiny CLIP, and the converted GPT-2 twice: with its own tokenizer (padding set to the end token)
    and with the fixture's, which has no padding token, as the hub's gpt2 has none."""
    root = tmp_path_factory.mktemp("real-gpt2-parts")
    hub_tokenizer = root / "gpt2-hub-tokenizer"
    shutil.copytree(converted[1], hub_tokenizer)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (hub_tokenizer / name).unlink()
    real_gpt2.tokenizer.save_pretrained(hub_tokenizer)
    return {"clip": save_tiny_clip(root / "clip"), "own tokenizer": converted[1], "no pad": hub_tokenizer}


@pytest.mark.parametrize("decoder", ["own tokenizer", "no pad"])
def test_the_captioner_takes_50256_as_start_end_and_padding(decoder, parts, real_gpt2):
    spec = CaptionerSpec(str(parts["clip"]), str(parts[decoder]), "lora", max_caption_tokens=TOKENS)
    captioner = build_captioner(spec)
    for config in (captioner.model.config, captioner.model.generation_config):
        assert config.decoder_start_token_id == config.pad_token_id == config.eos_token_id == END_ID
    assert captioner.tokenizer.pad_token_id == END_ID
    tokens = tokenize_captions(captioner, CAPTIONS, TOKENS)
    for row, caption in enumerate(CAPTIONS):
        ids = real_gpt2.tokenizer(caption)["input_ids"][: TOKENS - 1]
        n = len(ids) + 1
        assert tokens.labels[row].tolist() == [*ids, END_ID] + [-100] * (TOKENS - n), caption
        assert tokens.inputs[row].tolist() == [END_ID, *ids] + [END_ID] * (TOKENS - n), caption


def test_a_captioner_on_gpt2s_tokenizer_trains_and_writes_captions(parts, shapes_world, real_gpt2, tmp_path):
    dataset = load_caption_dataset(shapes_world / "train.json", shapes_world / "images")
    images = [
        dataclasses.replace(image, captions=[CAPTIONS[i], CAPTIONS[i + 4]])
        for i, image in enumerate(dataset.images[:4])
    ]
    train = dataclasses.replace(dataset, images=images)
    loop = LoopConfig(
        steps=3, learning_rate=1e-2, warmup_steps=1, checkpoint_every=3, log_every=1, mixed_precision="no"
    )
    spec = CaptionerSpec(str(parts["clip"]), str(parts["no pad"]), "lora", max_caption_tokens=TOKENS)
    result = train_captioner(CaptionTrainConfig(spec, batch_size=4, loop=loop), train, None, tmp_path / "run")
    assert math.isfinite(result.final_loss)
    captioner = load_captioner(tmp_path / "run")
    assert captioner.tokenizer.pad_token_id == END_ID
    out = caption_images(captioner, [read_image(path) for path in train.image_paths()])
    assert len(out.captions) == 4
    for caption, ids in zip(out.captions, out.token_ids, strict=True):
        assert 0 < len(ids) <= TOKENS and all(0 <= i < 50257 for i in ids)
        text = real_gpt2.tokenizer.decode([i for i in ids if i != END_ID], skip_special_tokens=True)
        assert isinstance(caption, str) and caption == text.strip()
