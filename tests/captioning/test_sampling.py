"""Seeded sampling (top-k, top-p, temperature) and the repetition controls, from the library and the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from transformers.modeling_outputs import BaseModelOutput

from tests.models.tiny_captioner import save_tiny_parts
from vlkit.captioning.config import DecodingConfig
from vlkit.captioning.generate import caption_features
from vlkit.captioning.sampling import decoding_processors
from vlkit.cli.main import main
from vlkit.errors import ConfigError
from vlkit.models.captioner.model import CaptionerSpec, build_captioner

SAMPLED = DecodingConfig(sample=True, seed=3, batch_size=5)


@pytest.fixture(scope="module")
def captioner(tmp_path_factory):
    clip, _, gpt2 = save_tiny_parts(tmp_path_factory.mktemp("parts"))
    captioner = build_captioner(CaptionerSpec(str(clip), str(gpt2), "lora", max_caption_tokens=10))
    torch.manual_seed(1)
    with torch.no_grad():  # away from a random model's near-uniform logits, so captions differ by image
        for parameter in captioner.model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    return captioner


@pytest.fixture(scope="module")
def features(captioner):
    torch.manual_seed(2)
    return captioner.encode_images(torch.randn(5, 3, 32, 32))


def _ids(captioner, features, config: DecodingConfig, first_index: int = 0) -> list[list[int]]:
    return caption_features(captioner, features, config, first_index=first_index).token_ids


def _plain_generate(captioner, features) -> list[list[int]]:
    """The call `_caption_batch` made before the sampling and repetition controls existed."""
    eos = captioner.tokenizer.eos_token_id
    with torch.no_grad():
        rows = captioner.model.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=features),
            num_beams=1,
            max_new_tokens=10,
            length_penalty=1.0,
            do_sample=False,
        )
    return [row[: row.index(eos) + 1] if eos in row else row for row in rows[:, 1:].tolist()]


def test_the_default_decoding_is_the_plain_greedy_generate_call(captioner, features):
    assert len(decoding_processors(DecodingConfig(), range(5))) == 0
    assert _ids(captioner, features, DecodingConfig()) == _plain_generate(captioner, features)


def test_seeded_sampling_repeats_whatever_the_batch_size_and_differs_from_greedy(captioner, features):
    sampled = _ids(captioner, features, SAMPLED)
    assert _ids(captioner, features, SAMPLED) == sampled  # a rerun
    for batch_size in (1, 2):
        assert (
            _ids(captioner, features, DecodingConfig(sample=True, seed=3, batch_size=batch_size)) == sampled
        )
    greedy = _ids(captioner, features, DecodingConfig())
    assert sum(a != b for a, b in zip(sampled, greedy, strict=True)) >= 4
    other_seed = _ids(captioner, features, DecodingConfig(sample=True, seed=4))
    assert sum(a != b for a, b in zip(sampled, other_seed, strict=True)) >= 4


def test_an_image_draws_its_caption_from_its_index_in_the_input(captioner, features):
    sampled = _ids(captioner, features, SAMPLED)
    assert _ids(captioner, features[2:], SAMPLED, first_index=2) == sampled[2:]
    assert _ids(captioner, features[2:], SAMPLED) != sampled[2:]  # the same images as images 0..2
    unseeded = DecodingConfig(sample=True)
    assert unseeded.sampling_seed == 0
    assert _ids(captioner, features, unseeded) == _ids(
        captioner, features, DecodingConfig(sample=True, seed=0)
    )


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_top_k_one_sampling_is_greedy_search(captioner, features, temperature):
    config = DecodingConfig(sample=True, top_k=1, temperature=temperature, seed=7)
    assert _ids(captioner, features, config) == _ids(captioner, features, DecodingConfig())


def test_a_nucleus_of_one_token_is_greedy_search(captioner, features):
    config = DecodingConfig(sample=True, top_p=1e-6)
    assert _ids(captioner, features, config) == _ids(captioner, features, DecodingConfig())


def _ngrams(ids: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]


@pytest.mark.parametrize("beams", [1, 3])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_repeat_ngram_leaves_no_n_gram_twice_in_a_caption(captioner, features, n, beams):
    greedy = _ids(captioner, features, DecodingConfig(num_beams=beams))
    assert any(len(set(_ngrams(ids, n))) < len(_ngrams(ids, n)) for ids in greedy)  # it repeats without
    controlled = _ids(captioner, features, DecodingConfig(num_beams=beams, no_repeat_ngram_size=n))
    for ids in controlled:
        assert len(set(_ngrams(ids, n))) == len(_ngrams(ids, n)), ids
    sampled = (
        _ids(captioner, features, DecodingConfig(sample=True, no_repeat_ngram_size=n)) if beams == 1 else []
    )
    for ids in sampled:
        assert len(set(_ngrams(ids, n))) == len(_ngrams(ids, n)), ids


def test_the_repetition_controls_leave_the_start_token_out(captioner):
    # The start token is the end token here: counting it would penalise (or, for 1-grams, forbid) ending.
    start = captioner.model.config.decoder_start_token_id
    assert start == captioner.tokenizer.eos_token_id
    scores = torch.tensor([[2.0, -1.0, 3.0, 1.5]])
    step_one = torch.tensor([[start]])
    for config in (DecodingConfig(repetition_penalty=2.0), DecodingConfig(no_repeat_ngram_size=1)):
        assert torch.equal(decoding_processors(config, [0])(step_one, scores.clone()), scores)
    penalised = decoding_processors(DecodingConfig(repetition_penalty=2.0), [0])
    assert penalised(torch.tensor([[start, 0, 1]]), scores.clone()).tolist() == [[1.0, -2.0, 3.0, 1.5]]
    banned = decoding_processors(DecodingConfig(no_repeat_ngram_size=1), [0])
    assert banned(torch.tensor([[start, 2]]), scores.clone())[0, 2] == -float("inf")


def test_a_repetition_penalty_repeats_fewer_tokens(captioner, features):
    def repeats(config: DecodingConfig) -> int:
        return sum(len(ids) - len(set(ids)) for ids in _ids(captioner, features, config))

    assert repeats(DecodingConfig(repetition_penalty=3.0)) < repeats(DecodingConfig())


@pytest.mark.parametrize(
    ("values", "field", "problem"),
    [
        ({"sample": True, "top_p": 0.0}, "top_p", "must be in (0, 1], got 0.0"),
        ({"sample": True, "top_p": 1.5}, "top_p", "must be in (0, 1], got 1.5"),
        ({"sample": True, "top_k": -1}, "top_k", "must be 0 (no cut) or more, got -1"),
        ({"sample": True, "temperature": 0.0}, "temperature", "must be positive, got 0.0"),
        ({"repetition_penalty": 0.0}, "repetition_penalty", "must be positive, got 0.0"),
        ({"no_repeat_ngram_size": -2}, "no_repeat_ngram_size", "must be 0 (off) or more, got -2"),
        ({"sample": True, "num_beams": 3}, "num_beams", "must be 1 when sampling"),
        ({"top_p": 0.9}, "top_p", "0.9 applies only when sampling"),
        ({"top_k": 5}, "top_k", "5 applies only when sampling"),
        ({"temperature": 0.7}, "temperature", "0.7 applies only when sampling"),
        ({"seed": 1}, "seed", "1 applies only when sampling"),
    ],
)
def test_bad_decoding_values_are_refused_naming_the_field(values, field, problem):
    with pytest.raises(ConfigError, match=rf"^DecodingConfig\.{field}: ") as caught:
        DecodingConfig(**values)
    assert caught.value.field == field and problem in caught.value.problem


def test_a_decoding_describes_itself_in_a_few_words():
    assert DecodingConfig().describe() == "greedy"
    assert DecodingConfig(num_beams=3, no_repeat_ngram_size=2).describe() == "3-beam, no repeated 2-grams"
    sampled = DecodingConfig(sample=True, temperature=0.7, top_p=0.9, seed=2, repetition_penalty=1.2)
    assert sampled.describe() == "T 0.7 top-p 0.9 sampled (seed 2), repetition penalty 1.2"
    assert DecodingConfig(sample=True).describe() == "plain sampled (seed 0)"


@pytest.fixture(scope="module")
def saved(captioner, tmp_path_factory):
    """The captioner saved, and a folder of six small images."""
    root = tmp_path_factory.mktemp("saved")
    images = root / "images"
    images.mkdir()
    for index, colour in enumerate(("red", "navy", "white", "olive", "teal", "black")):
        Image.new("RGB", (40, 30), colour).save(images / f"img_{index}.png")
    return {"model": captioner.save(root / "captioner"), "images": images}


def _predict(saved, out, *extra: str) -> dict[str, str]:
    main(["--quiet", "caption", "predict", "--model", str(saved["model"]), "--images", str(saved["images"]),
          "--out", str(out), *extra])  # fmt: skip
    return json.loads(out.read_text())


def test_predict_samples_the_same_captions_on_a_rerun_and_in_other_batches(saved, tmp_path):
    first = _predict(saved, tmp_path / "a.json", "--sample", "--top-k", "20", "--seed", "5")
    again = _predict(
        saved, tmp_path / "b.json", "--sample", "--top-k", "20", "--seed", "5", "--batch-size", "4"
    )
    assert again == first and len(first) == 6
    assert _predict(saved, tmp_path / "greedy.json") != first


@pytest.mark.parametrize(
    ("command", "extra", "message"),
    [
        ("predict", ["--top-p", "1.5", "--sample"], "--top-p: must be in (0, 1], got 1.5"),
        ("predict", ["--top-k", "5"], "--top-k: 5 applies only when sampling (sample=True, --sample)"),
        ("predict", ["--sample", "--beams", "2"], "--beams: must be 1 when sampling"),
        ("predict", ["--sample", "--temperature", "0"], "--temperature: must be positive, got 0.0"),
        ("predict", ["--repetition-penalty", "-1"], "--repetition-penalty: must be positive, got -1.0"),
        ("predict", ["--no-repeat-ngram", "-1"], "--no-repeat-ngram: must be 0 (off) or more, got -1"),
        ("attend", ["--seed", "3"], "--seed: 3 applies only when sampling"),
        ("sweep", ["--sample", "--beams", "3"], "--beams: must be 1 when sampling"),
        ("sweep", ["--top-p", "0.5"], "--top-p: 0.5 applies only when sampling"),
    ],
)
def test_bad_decoding_options_are_one_line_and_exit_code_2(saved, tmp_path, capsys, command, extra, message):
    inputs = {
        "predict": ["--model", str(saved["model"]), "--images", str(saved["images"])],
        "attend": ["--model", str(saved["model"]), "--images", str(saved["images"])],
        "sweep": [],
    }[command]
    out = tmp_path / ("s.json" if command == "sweep" else "out")
    with pytest.raises(SystemExit) as exit_info:
        main(["caption", command, *inputs, "--out", str(out), *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_attend_captions_with_the_sampling_predict_uses(saved, tmp_path):
    extra = ["--sample", "--top-p", "0.9", "--seed", "2"]
    predicted = _predict(saved, tmp_path / "pred.json", *extra)
    main(["--quiet", "caption", "attend", "--model", str(saved["model"]), "--images", str(saved["images"]),
          "--out", str(tmp_path / "attention"), "--figures", "0", "--batch-size", "4", *extra])  # fmt: skip
    attended = json.loads((tmp_path / "attention" / "captions.json").read_text())["images"]
    assert {stem: entry["caption"] for stem, entry in attended.items()} == predicted
