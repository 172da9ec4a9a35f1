"""`vlkit convert gpt2`: every layout it reads (HF with and without `transformer.`, the course's
decoder_model.bin, nanoGPT's nn.Linear one with and without biases, safetensors) gives an HF GPT-2 folder
whose logits are the source model's and which the captioner loads as its decoder; every bad input is one
line naming the file, key or option, and exit code 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

from tests.models.gpt2_layouts import (
    END,
    bare_state,
    course_state,
    hf_state,
    nanogpt_state,
    random_gpt2,
    save_bpe_files,
)
from tests.models.tiny import CORPUS
from vlkit.cli.main import main
from vlkit.models.captioner.parts import load_decoder, load_tokenizer
from vlkit.models.convert_gpt2 import gpt2_weights

WIDTH, LAYERS, HEADS, POSITIONS, INNER = 32, 2, 2, 24, 80  # INNER: not 4 x WIDTH, so it must be read
SENTENCES = ["a small red circle in the middle", "A LARGE star, top left!", "zwei Würfel: 3 + 4 = 7 🎲"]


@dataclass
class Files:
    vocab: Path
    merges: Path
    vocab_size: int
    models: dict[str, GPT2LMHeadModel]  # "biased", "bias-free", "untied"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Files:
    vocab, merges, size = save_bpe_files(tmp_path_factory.mktemp("bpe"), CORPUS)

    def config(**options) -> GPT2Config:
        shape = dict(n_embd=WIDTH, n_layer=LAYERS, n_head=HEADS, n_positions=POSITIONS, n_inner=INNER)
        end = json.loads(vocab.read_text())[END]
        return GPT2Config(vocab_size=size, bos_token_id=end, eos_token_id=end, **shape, **options)

    models = {
        "biased": random_gpt2(config(), seed=0),
        "bias-free": random_gpt2(config(), seed=1, biases=False),
        "untied": random_gpt2(config(tie_word_embeddings=False), seed=2),
    }
    return Files(vocab, merges, size, models)


def _convert_args(state_dict: Path, files: Files, out: Path, *more: str) -> list[str]:
    return ["convert", "gpt2", "--state-dict", str(state_dict), "--vocab", str(files.vocab),
            "--merges", str(files.merges), "--out", str(out), *more]  # fmt: skip


def _torch_save(state: dict, path: Path) -> Path:
    torch.save(state, path)
    return path


def _safetensors_save(state: dict, path: Path) -> Path:
    save_file({key: value.contiguous() for key, value in state.items()}, str(path))
    return path


# layout -> (which source model, its state dict in that layout, how it is saved, the file name)
LAYOUTS: dict[str, tuple[str, Callable, Callable, str]] = {
    "HF GPT2LMHeadModel": ("biased", hf_state, _torch_save, "pytorch_model.bin"),
    "HF without transformer.": ("biased", bare_state, _torch_save, "gpt2.bin"),
    "course decoder_model.bin": ("biased", course_state, _torch_save, "decoder_model.bin"),
    "course, as safetensors": ("biased", course_state, _safetensors_save, "decoder_model.safetensors"),
    "nanoGPT nn.Linear": ("biased", nanogpt_state, _torch_save, "ckpt_model.pt"),
    "nanoGPT bias=False": ("bias-free", lambda m: nanogpt_state(m, biases=False), _torch_save, "nano.pt"),
    "HF with an untied lm_head": ("untied", hf_state, _torch_save, "untied.bin"),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_layout_converts_to_an_hf_gpt2_with_the_source_logits(layout, files, tmp_path):
    kind, state_of, save, name = LAYOUTS[layout]
    source = files.models[kind]
    state_dict = save(state_of(source), tmp_path / name)
    out = tmp_path / "converted"
    main(["--quiet", *_convert_args(state_dict, files, out, "--n-head", str(HEADS))])
    for file in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json"):
        assert (out / file).is_file(), file
        assert (out / file).stat().st_mode == (out / "config.json").stat().st_mode, file  # not owner-only
    converted = GPT2LMHeadModel.from_pretrained(out).eval()
    config = converted.config
    assert (config.vocab_size, config.n_embd, config.n_layer, config.n_head) == (
        files.vocab_size, WIDTH, LAYERS, HEADS
    )  # fmt: skip
    assert (config.n_positions, config.n_inner) == (POSITIONS, INNER)
    assert config.tie_word_embeddings == (kind != "untied")
    ids = torch.randint(files.vocab_size, (2, POSITIONS), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = source(ids).logits, converted(ids).logits
    assert torch.allclose(got, expected, rtol=0, atol=1e-6), (got - expected).abs().max()


def test_the_converted_folder_is_a_captioner_decoder_with_gpt2s_special_tokens(files, tmp_path):
    state_dict = _torch_save(course_state(files.models["biased"]), tmp_path / "decoder_model.bin")
    out = tmp_path / "converted"
    main(["--quiet", *_convert_args(state_dict, files, out, "--n-head", str(HEADS))])
    decoder = load_decoder(str(out))
    assert decoder.config.add_cross_attention and decoder.config.n_head == HEADS
    tokenizer = load_tokenizer(str(out))
    end = json.loads(files.vocab.read_text())[END]
    assert tokenizer.bos_token_id == tokenizer.eos_token_id == tokenizer.pad_token_id == end
    assert tokenizer.unk_token_id == end and tokenizer.model_max_length == POSITIONS
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["bos_token_id"] == generation["eos_token_id"] == generation["pad_token_id"] == end
    for text in SENTENCES:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.decode(ids) == text
    assert tokenizer(f"a red circle{END}")["input_ids"][-1] == end  # one special token, never split


def test_the_head_count_defaults_to_the_width_over_64(tmp_path):
    config = GPT2Config(
        vocab_size=20, n_embd=128, n_layer=1, n_head=4, n_positions=8, bos_token_id=19, eos_token_id=19
    )
    model = random_gpt2(config)
    assert gpt2_weights(course_state(model), tmp_path / "decoder_model.bin").config.n_head == 2


class _Payload:
    """Unpickling this runs code (it creates `marker`): what a hostile checkpoint can carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _state(edit: Callable[[dict, Path], object], name: str = "bad.bin"):
    """The HF-layout state dict after `edit(state, tmp)` (which may return something else to save)."""

    def args(tmp: Path, files: Files) -> list[str]:
        state = hf_state(files.models["biased"])
        edited = edit(state, tmp)
        path = _torch_save(state if edited is None else edited, tmp / name)
        return _convert_args(path, files, tmp / "out", "--n-head", str(HEADS))

    return args


def _file(content: bytes, name: str):
    """A state dict file holding `content`."""

    def args(tmp: Path, files: Files) -> list[str]:
        (tmp / name).write_bytes(content)
        return _convert_args(tmp / name, files, tmp / "out", "--n-head", str(HEADS))

    return args


def _vocab(edit: Callable[[dict], object]):
    """The BPE files with encoder.json edited (a str is written as is)."""

    def args(tmp: Path, files: Files) -> list[str]:
        state_dict = _torch_save(hf_state(files.models["biased"]), tmp / "gpt2.bin")
        edited = edit(json.loads(files.vocab.read_text()))
        vocab = tmp / "encoder.json"
        vocab.write_text(edited if isinstance(edited, str) else json.dumps(edited))
        return ["convert", "gpt2", "--state-dict", str(state_dict), "--vocab", str(vocab),
                "--merges", str(files.merges), "--out", str(tmp / "out"), "--n-head", str(HEADS)]  # fmt: skip

    return args


def _merges(extra: bytes):
    """vocab.bpe with `extra` appended."""

    def args(tmp: Path, files: Files) -> list[str]:
        state_dict = _torch_save(hf_state(files.models["biased"]), tmp / "gpt2.bin")
        merges = tmp / "vocab.bpe"
        merges.write_bytes(files.merges.read_bytes() + extra)
        return ["convert", "gpt2", "--state-dict", str(state_dict), "--vocab", str(files.vocab),
                "--merges", str(merges), "--out", str(tmp / "out"), "--n-head", str(HEADS)]  # fmt: skip

    return args


def _options(*more: str, out: str = "out"):
    """A good state dict with other options (the last --n-head wins)."""

    def args(tmp: Path, files: Files) -> list[str]:
        state_dict = _torch_save(hf_state(files.models["biased"]), tmp / "gpt2.bin")
        (tmp / "a-file").write_text("")
        return [*_convert_args(state_dict, files, tmp / out), *more]

    return args


def _drop(*prefixes: str):
    """The HF-layout state dict without the keys that start with `prefixes`."""

    def edit(state: dict, tmp: Path) -> None:
        for key in [k for k in state if k.startswith(prefixes)]:
            del state[key]

    return _state(edit)


def _set(key: str, value: object):
    """The HF-layout state dict with `key` set to `value`."""
    return _state(lambda state, tmp: state.__setitem__(key, value))


ERRORS = {
    "a pickle that runs code": (
        _state(lambda state, tmp: {**state, "x": _Payload(tmp / "payload-ran")}),
        "bad.bin: refused",
    ),
    "not a pickle": (_file(b"not a checkpoint", "bad.bin"), "bad.bin: not a PyTorch state dict"),
    "not safetensors": (_file(b"\x00" * 16, "bad.safetensors"), "bad.safetensors: cannot read it as"),
    "no such file": (
        lambda tmp, files: _convert_args(tmp / "nowhere.bin", files, tmp / "out"),
        "nowhere.bin: state dict file not found",
    ),  # fmt: skip
    "a tensor, not a dict": (_state(lambda state, tmp: torch.zeros(3)), "bad.bin: holds a Tensor"),
    "an entry that is no tensor": (_set("step", 3), "bad.bin: entry 'step' is not a tensor"),
    "not a GPT-2": (_state(lambda state, tmp: torch.nn.Linear(2, 2).state_dict()), "bad.bin: not a GPT-2"),
    "an unknown key": (
        _set("transformer.h.0.attn.extra.weight", torch.zeros(2)),
        "bad.bin: unknown key 'transformer.h.0.attn.extra.weight'",
    ),
    "a missing weight": (
        _drop("transformer.h.1.mlp.c_fc.bias"),
        "bad.bin: lacks transformer.h.1.mlp.c_fc.bias",
    ),
    "a missing block": (_drop("transformer.h.0."), "bad.bin: lacks transformer.h.0.ln_1.weight"),
    "no blocks": (_drop("transformer.h."), "bad.bin: not a GPT-2 state dict (no transformer blocks"),
    "a wrong shape": (
        _set("transformer.h.1.attn.c_proj.weight", torch.zeros(WIDTH, 16)),
        "bad.bin: transformer.h.1.attn.c_proj.weight has shape (32, 16), expected (32, 32)",
    ),
    "an attention of neither layout": (
        _set("transformer.h.0.attn.c_attn.weight", torch.zeros(WIDTH, WIDTH)),
        "bad.bin: transformer.h.0.attn.c_attn.weight has shape (32, 32)",
    ),
    "a position table that is no matrix": (
        _set("transformer.wpe.weight", torch.zeros(())),
        "bad.bin: transformer.wpe.weight has shape (), not",
    ),
    "integer weights": (
        _set("transformer.ln_f.weight", torch.zeros(WIDTH, dtype=torch.long)),
        "bad.bin: transformer.ln_f.weight holds torch.int64",
    ),
    "one weight under two names": (
        _set("wpe.weight", torch.zeros(POSITIONS, WIDTH)),
        "bad.bin: 'transformer.wpe.weight' and 'wpe.weight'",
    ),
    "a vocabulary larger than the embedding": (
        _vocab(lambda vocab: {**vocab, "Ġextra": len(vocab)}),
        "encoder.json: 301 tokens, but",
    ),
    "a vocabulary that is no object": (_vocab(lambda vocab: list(vocab)), "encoder.json: expected GPT-2's"),
    "a vocabulary of malformed JSON": (_vocab(lambda vocab: "{"), "encoder.json: malformed JSON"),
    "a vocabulary with an id twice": (
        _vocab(lambda vocab: {**vocab, END: 0}),
        "encoder.json: the ids are not 0 to 299",
    ),
    "a vocabulary without <|endoftext|>": (
        _vocab(lambda vocab: {("<|end|>" if k == END else k): i for k, i in vocab.items()}),
        "encoder.json: no <|endoftext|> token",
    ),
    "a merge line that does not parse": (_merges(b"abc\n"), "vocab.bpe: line 45 is not a merge"),
    "a merge of unknown tokens": (_merges(b"zq qz\n"), "'zq' is not a token of"),
    "a bad merge line that looks like markup": (_merges(b"[/x] [b]\n"), "'[/x]' is not a token of"),
    "merges not UTF-8": (_merges(b"\xff\xfe\n"), "vocab.bpe: cannot read it as UTF-8"),
    "a head count that does not divide the width": (
        _options("--n-head", "3"),
        "--n-head 3: must divide the width 32",
    ),
    "no head count for a width under 64": (_options(), "--n-head: the width 32 of"),
    "--out is a file": (_options("--n-head", "2", out="a-file"), "a-file: exists and is not a folder"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_gives_one_line_and_exit_code_2(case, files, tmp_path, capsys):
    make_args, expected = ERRORS[case]
    args = make_args(tmp_path, files)
    with pytest.raises(SystemExit) as exit_info:
        main(["--quiet", *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    message = err.strip()
    assert "Traceback" not in err and "\n" not in message, err
    assert message.startswith("error:") and expected in message, message
    assert not (tmp_path / "payload-ran").exists()  # the hostile pickle's code never ran
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are checked
