"""The caption LM: GPT-2-style token rows, training through the shared loop, and the HF layout it saves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer, GPT2LMHeadModel

from tests.models.tiny import save_tiny_clip
from vlkit.cli.main import main
from vlkit.data.captions import load_caption_dataset
from vlkit.models.architectures import LmArchitecture
from vlkit.models.captioner.model import CaptionerSpec, build_captioner
from vlkit.models.text_tokenizer import train_bpe_tokenizer
from vlkit.train.config import LmTrainConfig, LoopConfig
from vlkit.train.lm_trainer import token_rows, train_lm

TINY_LM = LmArchitecture(width=32, layers=2, heads=2, positions=40, vocab_size=300)


@pytest.fixture(scope="module")
def captions(shapes_world):
    train = load_caption_dataset(shapes_world / "train.json", shapes_world / "images")
    val = load_caption_dataset(shapes_world / "val.json", shapes_world / "images")
    return train.all_captions(), val.all_captions()


@pytest.fixture(scope="module")
def trained_lm(captions, tmp_path_factory):
    loop = LoopConfig(
        steps=40, learning_rate=3e-3, warmup_steps=4, checkpoint_every=20, log_every=5, mixed_precision="no"
    )
    config = LmTrainConfig(architecture=TINY_LM, loop=loop, batch_size=32, eval_every=20)
    return train_lm(config, captions[0], tmp_path_factory.mktemp("lm") / "lm", captions[1])


def test_token_rows_are_eos_caption_eos_with_the_padding_masked():
    tokenizer = train_bpe_tokenizer(["a red circle", "two blue squares"], 280, wrap_with_bos_eos=False)
    rows = token_rows(tokenizer, ["a red circle", "a red circle " * 20], length=12)
    end = tokenizer.eos_token_id
    words = tokenizer("a red circle", add_special_tokens=False)["input_ids"]
    first = [end, *words, end]
    assert rows.input_ids[0, : len(first)].tolist() == first
    assert rows.labels[0].tolist() == first + [-100] * (12 - len(first))
    assert rows.attention_mask[0].tolist() == [1] * len(first) + [0] * (12 - len(first))
    assert rows.input_ids[1, 0] == end and rows.input_ids[1, -1] == end  # cut, keeping the final eos
    assert rows.labels[1].tolist() == rows.input_ids[1].tolist()


def test_training_lowers_the_loss_and_saves_a_folder_transformers_loads(trained_lm):
    log = [json.loads(line) for line in (trained_lm / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < log[0]["loss"] - 1.0
    assert [r["step"] for r in log if "val_loss" in r] == [20, 40]
    model = GPT2LMHeadModel.from_pretrained(trained_lm)
    tokenizer = AutoTokenizer.from_pretrained(trained_lm)
    assert model.config.n_positions == 40 and model.config.eos_token_id == tokenizer.eos_token_id
    assert tokenizer.bos_token == tokenizer.eos_token == tokenizer.pad_token
    ids = tokenizer("a red circle", return_tensors="pt")["input_ids"]
    assert tokenizer.decode(ids[0]) == "a red circle"  # GPT-2 style: no special tokens added
    with torch.no_grad():
        assert torch.isfinite(model(ids).logits).all()


def test_the_trained_lm_serves_as_a_captioner_decoder(trained_lm, tmp_path):
    clip = save_tiny_clip(tmp_path / "clip")
    captioner = build_captioner(CaptionerSpec(str(clip), str(trained_lm), "lora", max_caption_tokens=24))
    lm = GPT2LMHeadModel.from_pretrained(trained_lm).state_dict()
    decoder = captioner.model.decoder.state_dict()
    assert torch.equal(
        decoder["transformer.h.0.mlp.c_fc.base_layer.weight"], lm["transformer.h.0.mlp.c_fc.weight"]
    )
    assert captioner.tokenizer.eos_token_id == captioner.model.config.decoder_start_token_id


def test_lm_train_command_writes_an_hf_folder(shapes_world, tmp_path):
    out = tmp_path / "lm"
    main(["--quiet", "lm", "train", "--data", str(shapes_world), "--out", str(out), "--steps", "2",
          "--batch-size", "8", "--mixed-precision", "no"])  # fmt: skip
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train_log.jsonl"):
        assert (out / name).is_file(), name


def test_lm_train_without_data_exits_2_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["lm", "train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "lm")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "train.json: file not found" in error


_CAPTION_TOKENIZER = train_bpe_tokenizer(
    ["a red circle left of a blue square", "two green stars"], 300, wrap_with_bos_eos=False
)


def test_the_caption_tokenizer_normalizes_nfkc_then_lower_case():
    for text, normalized in [("ＡＢＣ", "abc"), ("ﬁve Circles", "five circles"), ("Ⅻ", "xii"), ("x²", "x2")]:
        assert _CAPTION_TOKENIZER.backend_tokenizer.normalizer.normalize_str(text) == normalized
        assert _CAPTION_TOKENIZER.decode(_CAPTION_TOKENIZER(text)["input_ids"]) == normalized


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60).filter(lambda t: "<|" not in t))
def test_the_caption_tokenizer_round_trips_any_unicode_text(text):
    # Byte-level BPE: no text is unknown, every id is in the vocabulary, and decoding gives back the text as
    # the tokenizer's normalizer leaves it. Its own normalizer, not Python's unicodedata: the Rust tables of
    # `tokenizers` are an older Unicode than Python's (CI found U+10781, which NFKC maps to U+02D0 in Python
    # 3.11's Unicode 14 and leaves alone in tokenizers 0.23).
    ids = _CAPTION_TOKENIZER(text)["input_ids"]
    assert all(0 <= i < len(_CAPTION_TOKENIZER) for i in ids)
    expected = _CAPTION_TOKENIZER.backend_tokenizer.normalizer.normalize_str(text)
    assert _CAPTION_TOKENIZER.decode(ids) == expected


def test_an_lm_batch_cut_after_its_longest_caption_has_the_loss_of_the_full_width_batch(trained_lm, captions):
    from vlkit.train.lm_trainer import LmBatches

    tokenizer = AutoTokenizer.from_pretrained(trained_lm)
    model = GPT2LMHeadModel.from_pretrained(trained_lm).eval()
    # Captions of up to 30 tokens in rows of 40 (the tiny LM's 300-token vocabulary spells words out).
    short = [c for c in captions[1] if len(tokenizer(c, add_special_tokens=False)["input_ids"]) <= 30]
    rows = token_rows(tokenizer, short, length=40)
    batch = LmBatches(rows, batch_size=16, seed=3)(0)
    longest = int(batch["attention_mask"].sum(dim=1).max())
    assert batch["input_ids"].shape[1] == longest < 40
    order = np.random.default_rng([3, 0]).permutation(len(short))[:16]
    full = {
        "input_ids": rows.input_ids[order],
        "attention_mask": rows.attention_mask[order],
        "labels": rows.labels[order],
    }
    assert torch.equal(full["input_ids"][:, :longest], batch["input_ids"])
    with torch.no_grad():
        losses = [float(model(**b).loss) for b in (full, batch)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5, abs=1e-6)
