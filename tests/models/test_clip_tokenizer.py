"""The real CLIP tokenizer in the suite, offline: built from open_clip's packaged merges, it gives open_clip's
ids, and a text over CLIP's 77-token context is truncated as CLIP truncates it, with a warning naming it."""

from __future__ import annotations

import logging

import pytest
import torch
from transformers import AutoTokenizer

from tests.models.clip_tokenizer import CONTEXT_LENGTH, END, START, save_tiny_clip_with_real_tokenizer
from tests.models.tiny_encoders import register_tiny_open_clip
from vlkit.data.classification import load_classification_dataset
from vlkit.models.clip import load_clip
from vlkit.zeroshot.classifier import analyse_prompts, fill_template

SENTENCES = [
    "a photo of a dog.",
    "This is not a photo of a large  red circle",
    "Don't panic: 42 cats, 3.14 pies & two doors!",
    "a café, a naïve façade; ünïcödé — and <b>tags</b>",
]
LONG_TEMPLATE = "a photo of {object}, " + " ".join(f"with detail number {n}" for n in range(40))


@pytest.fixture(scope="module")
def open_clip_tokenizer():
    import open_clip

    return open_clip.get_tokenizer("ViT-B-32")  # CLIP's SimpleTokenizer, context 77


@pytest.fixture(scope="module")
def real_clip_dir(clip_tokenizer_dir, tmp_path_factory):
    return save_tiny_clip_with_real_tokenizer(tmp_path_factory.mktemp("real") / "clip", clip_tokenizer_dir)


def test_the_tokenizer_gives_open_clip_s_ids_and_special_tokens(clip_tokenizer_dir, open_clip_tokenizer):
    tokenizer = AutoTokenizer.from_pretrained(clip_tokenizer_dir)
    assert len(tokenizer) == 49408
    assert tokenizer.convert_tokens_to_ids([START, END]) == [49406, 49407]
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (49406, 49407)
    expected = open_clip_tokenizer(SENTENCES)
    for sentence, row in zip(SENTENCES, expected, strict=True):
        ids = tokenizer(sentence)["input_ids"]
        assert ids == row[: len(ids)].tolist() and not row[len(ids) :].any(), sentence
        assert ids[0] == 49406 and ids[-1] == 49407


def test_a_text_over_the_context_is_cut_as_clip_cuts_it_and_named_in_a_warning(
    real_clip_dir, open_clip_tokenizer, caplog
):
    clip = load_clip(str(real_clip_dir))
    long = fill_template(LONG_TEMPLATE, "red circle")
    tokens = clip.tokenize([long, SENTENCES[0]])
    assert tokens["input_ids"].shape == (2, CONTEXT_LENGTH)
    expected = open_clip_tokenizer([long])[0]  # its first 76 tokens, then the end token
    assert tokens["input_ids"][0].tolist() == expected.tolist() and expected[-1] == 49407
    with caplog.at_level(logging.WARNING, logger="vlkit.models.clip"):
        embedding = clip.encode_texts([long])
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "vlkit.models.clip"]
    assert "1 text(s) longer than its 77-token context" in warning and repr(long[:77] + "...") in warning
    with torch.inference_mode():
        direct = clip.model.get_text_features(input_ids=expected[None]).pooler_output
    assert torch.allclose(embedding, torch.nn.functional.normalize(direct, dim=-1), atol=1e-6)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vlkit.models.clip"):
        clip.encode_texts(SENTENCES)
    assert not caplog.records  # texts that fit: no warning


def test_zero_shot_with_the_real_tokenizer_warns_of_the_template_that_does_not_fit(
    real_clip_dir, shapes_world, caplog
):
    dataset = load_classification_dataset(shapes_world / "classification" / "val")
    templates = ["a photo of {object}", LONG_TEMPLATE]
    clip = load_clip(str(real_clip_dir))
    with caplog.at_level(logging.WARNING, logger="vlkit.models.clip"):
        analysis = analyse_prompts(clip, dataset.paths, dataset.labels, dataset.class_names, templates)
    assert [t.template for t in analysis.templates] == templates
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "vlkit.models.clip"]
    count = len(dataset.class_names)
    assert f"{count} text(s) longer than its 77-token context" in warning
    assert repr(fill_template(LONG_TEMPLATE, dataset.class_names[0])[:77] + "...") in warning


def test_an_open_clip_model_warns_of_a_text_over_its_context_too(tmp_path, caplog):
    clip = load_clip(f"open_clip:{register_tiny_open_clip(tmp_path)}")  # context 8
    with caplog.at_level(logging.WARNING, logger="vlkit.models.clip"):
        clip.encode_texts(["a red circle", "one two three four five six seven"])
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "vlkit.models.clip"]
    assert "1 text(s) longer than its 8-token context" in warning and "'one two three" in warning
