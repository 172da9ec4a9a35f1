"""A GPT-2 state dict of another layout, with GPT-2's own tokenizer files, made an HF GPT-2 folder.

`vlkit convert gpt2` writes what `--decoder DIR` loads (config.json, model.safetensors,
generation_config.json, tokenizer files) from a bare state dict (`torch.save(model.state_dict())`, or a
.safetensors file) and OpenAI's encoder.json + vocab.bpe. The layouts, told apart by names and shapes:

    HF       GPT2LMHeadModel's names, with or without `transformer.`; Conv1D weights, stored (in, out)
    course   decoder_model.bin: HF's names without `transformer.`, Conv1D weights, maybe no lm_head
    nanoGPT  (and minGPT): HF's names under `transformer.`, nn.Linear weights, stored (out, in); the
             bias=False variant has no biases, which become zeros

The config is read off the shapes (vocabulary and width from wte, positions from wpe, layers from the block
count, the MLP width from c_fc); only the head count cannot be seen, and is given. Known buffers (`attn.bias`,
`attn.masked_bias`) are dropped; any other unexpected or missing tensor is an error naming it and the file.

Hand-written because no library converts these layouts: transformers loads only its own names, nanoGPT and
minGPT convert only *from* HF, and the course ships a bare state dict. transformers does the model and
`tokenizers` the byte-level BPE; this module maps the names, transposes nn.Linear weights, checks each step.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

from vlkit.errors import VlkitError
from vlkit.runtime.files import read_json

log = logging.getLogger(__name__)

END = "<|endoftext|>"  # GPT-2's one special token: start, end, padding and unknown
HEAD_WIDTH = 64  # GPT-2's width per attention head, which gives the default head count
BUFFERS = ("attn.bias", "attn.masked_bias")  # causal masks some layouts store; GPT-2 builds its own
BLOCK_WEIGHTS = (
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
    "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight",
    "mlp.c_proj.bias",
)  # fmt: skip
MATRICES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
TOP_WEIGHTS = ("wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias")
LM_HEAD = "lm_head.weight"
# How each layout stores a block's matrices: Conv1D as (in, out), nn.Linear transposed, as (out, in).
LAYOUTS = {"conv1d": "Conv1D weights (HF, the course)", "linear": "nn.Linear weights (nanoGPT, minGPT)"}
_BLOCK_NAME = re.compile(r"h\.(0|[1-9][0-9]*)\.(.+)")
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")  # torch's weights_only refusal


@dataclass
class Gpt2Weights:
    """A state dict in GPT2LMHeadModel's names and Conv1D layout, with the config its shapes give."""

    config: GPT2Config
    state: dict[str, torch.Tensor]  # float32, lm_head included (the very wte tensor when tied)
    layout: str  # a key of LAYOUTS
    prefixed: bool  # the source's names start with `transformer.`
    biases: bool  # False: nanoGPT's bias=False variant, its biases now zeros
    dropped: list[str]  # the source's buffers, left out


@dataclass
class ConvertedGpt2:
    """The folder `convert_gpt2` wrote, and what it read from the state dict."""

    folder: Path
    weights: Gpt2Weights


def convert_gpt2(
    state_dict_file: Path, vocab_file: Path, merges_file: Path, out: Path, n_head: int | None = None
) -> ConvertedGpt2:
    """Write an HF GPT-2 folder at `out` whose logits equal the source model's.

    Args:
        state_dict_file: a GPT-2 state dict in one of the module's layouts (.safetensors, or a torch pickle
            read with `weights_only=True`).
        vocab_file, merges_file: GPT-2's byte-level BPE files (encoder.json, vocab.bpe); the vocabulary must
            have as many tokens as the embedding has rows, `<|endoftext|>` among them.
        out: the folder to write; files already there of the same names are replaced.
        n_head: attention heads (shapes cannot tell); default n_embd // 64.
    """
    if out.exists() and not out.is_dir():
        raise VlkitError(f"{out}: exists and is not a folder")
    weights = gpt2_weights(read_state_dict(state_dict_file), state_dict_file, n_head)
    config = weights.config
    tokenizer = gpt2_tokenizer(vocab_file, merges_file, config.vocab_size, config.n_positions)
    config.bos_token_id = config.eos_token_id = config.pad_token_id = tokenizer.convert_tokens_to_ids(END)
    with torch.device("meta"):  # no random init of weights that are replaced at once
        model = GPT2LMHeadModel(config)
    model.load_state_dict(weights.state, strict=True, assign=True)
    model.tie_weights()
    _write_folder(out, model, tokenizer)
    log.info("%s: %s, %s -> %s", state_dict_file, describe(config), LAYOUTS[weights.layout], out)
    return ConvertedGpt2(out, weights)


def describe(config: GPT2Config) -> str:
    """`GPT-2: 12 layers, width 768, 12 heads, 1024 positions, 50257 tokens`, for logs and the CLI."""
    return (
        f"GPT-2: {config.n_layer} layers, width {config.n_embd}, {config.n_head} heads, "
        f"{config.n_positions} positions, {config.vocab_size} tokens"
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file or a torch pickle, unpickled with `weights_only=True` only: a
    pickle that would build anything but tensors and plain containers is refused."""
    if not path.is_file():
        raise VlkitError(f"{path}: state dict file not found")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise VlkitError(f"{path}: cannot read it as safetensors ({_first_line(exc)})") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        code = _UNSAFE_GLOBAL.search(str(exc))
        if code:
            raise VlkitError(
                f"{path}: refused: unpickling it would call {code[1]} (state dicts load with "
                "torch.load(weights_only=True), which builds nothing but tensors and plain containers)"
            ) from exc
        raise VlkitError(f"{path}: not a PyTorch state dict (an unreadable pickle)") from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise VlkitError(f"{path}: not a PyTorch state dict ({_first_line(exc)})") from exc
    if not isinstance(state, dict):
        raise VlkitError(f"{path}: holds a {type(state).__name__}, not a state dict")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise VlkitError(f"{path}: entry {key!r} is not a tensor ({type(value).__name__})")
    return state


def gpt2_weights(state: dict[str, torch.Tensor], source: Path, n_head: int | None = None) -> Gpt2Weights:
    """Map a state dict of any layout of the module's onto GPT2LMHeadModel's names and read its config off
    the shapes; `n_head` defaults to n_embd // 64. Every error names `source` and the tensor at fault."""
    names = _canonical_names(state, source)
    named, prefixed = names.tensors, names.prefixed
    wte = named.get("wte.weight")
    if wte is None or wte.dim() != 2:
        raise VlkitError(f"{source}: not a GPT-2 state dict (no 2-D token embedding wte.weight)")
    if names.unknown:
        raise VlkitError(f"{source}: unknown key {names.unknown[0]!r} (not a GPT-2 weight or buffer)")
    blocks = [int(m[1]) for name in named if (m := _BLOCK_NAME.fullmatch(name))]
    if not blocks:
        raise VlkitError(f"{source}: not a GPT-2 state dict (no transformer blocks h.N.*)")
    n_layer = 1 + max(blocks)
    biases = any(name.endswith(".bias") for name in named)
    expected = [*TOP_WEIGHTS, *(f"h.{i}.{part}" for i in range(n_layer) for part in BLOCK_WEIGHTS)]
    for name in expected:
        if name not in named and (biases or not name.endswith(".bias")):
            raise VlkitError(f"{source}: lacks {_source_key(name, prefixed)} (a GPT-2 of {n_layer} blocks)")
    vocab_size, n_embd = wte.shape
    for name in ("wpe.weight", "h.0.mlp.c_fc.weight"):  # read for the config before the shape checks
        if named[name].dim() != 2:
            shape = tuple(named[name].shape)
            raise VlkitError(f"{source}: {_source_key(name, prefixed)} has shape {shape}, not a matrix")
    c_attn = named["h.0.attn.c_attn.weight"]
    layout = _layout(tuple(c_attn.shape), n_embd, source, _source_key("h.0.attn.c_attn.weight", prefixed))
    c_fc = named["h.0.mlp.c_fc.weight"]
    n_inner = c_fc.shape[0] if layout == "linear" else c_fc.shape[-1]
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=named["wpe.weight"].shape[0],
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=_head_count(n_head, n_embd, source),
        n_inner=None if n_inner == 4 * n_embd else n_inner,
        bos_token_id=None,  # the tokenizer's end token, set by `convert_gpt2`
        eos_token_id=None,
    )
    shapes = _conv1d_shapes(config, n_inner)
    converted = {}
    for name in expected:
        value = named.get(name)
        if value is None:  # a bias of nanoGPT's bias=False variant: zero is what it never added
            converted[name] = torch.zeros(shapes[name])
            continue
        transposed = layout == "linear" and name.split(".", 2)[-1] in MATRICES
        stored = shapes[name][::-1] if transposed else shapes[name]
        _check_tensor(value, stored, source, _source_key(name, prefixed), n_embd)
        converted[name] = (value.t() if transposed else value).float().contiguous()
    head = named.get(LM_HEAD)
    if head is not None:
        _check_tensor(head, (vocab_size, n_embd), source, LM_HEAD, n_embd)
    config.tie_word_embeddings = head is None or torch.equal(head.float(), converted["wte.weight"])
    hf_state = {f"transformer.{name}": value for name, value in converted.items()}
    hf_state[LM_HEAD] = converted["wte.weight"] if config.tie_word_embeddings else head.float().contiguous()
    return Gpt2Weights(config, hf_state, layout, prefixed, biases, names.dropped)


def gpt2_tokenizer(vocab_file: Path, merges_file: Path, vocab_size: int, max_length: int) -> GPT2Tokenizer:
    """GPT-2's byte-level BPE from encoder.json + vocab.bpe, `<|endoftext|>` its start, end, padding and
    unknown token; the vocabulary must hold `vocab_size` tokens (the embedding's rows)."""
    vocab = _read_vocab(vocab_file, vocab_size)
    merges = _read_merges(merges_file, vocab, vocab_file)
    bpe = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
        )
    )
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    return GPT2Tokenizer(
        tokenizer_object=bpe,
        bos_token=END,
        eos_token=END,
        pad_token=END,
        unk_token=END,
        model_max_length=max_length,
    )


def _canonical_names(state: dict[str, torch.Tensor], source: Path) -> _Names:
    """The tensors under their names without `transformer.`, the source's buffers left out."""
    names = _Names({}, {}, [], [])
    for key, value in state.items():
        name = key.removeprefix("transformer.")
        block = _BLOCK_NAME.fullmatch(name)
        if block and block[2] in BUFFERS:
            names.dropped.append(key)
        elif not (block[2] in BLOCK_WEIGHTS if block else name in (*TOP_WEIGHTS, LM_HEAD)):
            names.unknown.append(key)
        elif name in names.origin:
            raise VlkitError(f"{source}: {names.origin[name]!r} and {key!r} are the same GPT-2 weight")
        else:
            names.tensors[name], names.origin[name] = value, key
    return names


@dataclass
class _Names:
    tensors: dict[str, torch.Tensor]  # by GPT2LMHeadModel's name without `transformer.`
    origin: dict[str, str]  # that name -> the source's key
    dropped: list[str]  # the source's buffers
    unknown: list[str]  # the source's keys of no GPT-2 weight

    @property
    def prefixed(self) -> bool:
        return any(key.startswith("transformer.") for key in self.origin.values())


def _source_key(name: str, prefixed: bool) -> str:
    return f"transformer.{name}" if prefixed and name != LM_HEAD else name


def _layout(shape: tuple[int, ...], n_embd: int, source: Path, key: str) -> str:
    if shape == (n_embd, 3 * n_embd):
        return "conv1d"
    if shape == (3 * n_embd, n_embd):
        return "linear"
    raise VlkitError(
        f"{source}: {key} has shape {shape}; a GPT-2 of width {n_embd} (wte.weight) needs "
        f"({n_embd}, {3 * n_embd}) (Conv1D) or ({3 * n_embd}, {n_embd}) (nn.Linear)"
    )


def _head_count(n_head: int | None, n_embd: int, source: Path) -> int:
    if n_head is None:
        n_head = n_embd // HEAD_WIDTH
        if n_head == 0:
            raise VlkitError(
                f"--n-head: the width {n_embd} of {source} is under GPT-2's {HEAD_WIDTH} per head; give the "
                "head count"
            )
    if n_head <= 0 or n_embd % n_head:
        raise VlkitError(f"--n-head {n_head}: must divide the width {n_embd} of {source}")
    return n_head


def _conv1d_shapes(config: GPT2Config, n_inner: int) -> dict[str, tuple[int, ...]]:
    """Each weight's shape in GPT2LMHeadModel (Conv1D matrices as (in, out)), named without `transformer.`."""
    width = config.n_embd
    block = {
        "ln_1.weight": (width,), "ln_1.bias": (width,),
        "attn.c_attn.weight": (width, 3 * width), "attn.c_attn.bias": (3 * width,),
        "attn.c_proj.weight": (width, width), "attn.c_proj.bias": (width,),
        "ln_2.weight": (width,), "ln_2.bias": (width,),
        "mlp.c_fc.weight": (width, n_inner), "mlp.c_fc.bias": (n_inner,),
        "mlp.c_proj.weight": (n_inner, width), "mlp.c_proj.bias": (width,),
    }  # fmt: skip
    shapes = {
        "wte.weight": (config.vocab_size, width),
        "wpe.weight": (config.n_positions, width),
        "ln_f.weight": (width,),
        "ln_f.bias": (width,),
    }
    for i in range(config.n_layer):
        shapes.update({f"h.{i}.{part}": shape for part, shape in block.items()})
    return shapes


def _check_tensor(value: torch.Tensor, shape: tuple[int, ...], source: Path, key: str, n_embd: int) -> None:
    if not value.is_floating_point():
        raise VlkitError(f"{source}: {key} holds {value.dtype} values, not floating point weights")
    if tuple(value.shape) != shape:
        raise VlkitError(
            f"{source}: {key} has shape {tuple(value.shape)}, expected {shape} for a GPT-2 of width "
            f"{n_embd} (wte.weight)"
        )


def _read_vocab(path: Path, vocab_size: int) -> dict[str, int]:
    vocab = read_json(path)
    if not isinstance(vocab, dict) or not all(type(i) is int for i in vocab.values()):
        raise VlkitError(f"{path}: expected GPT-2's encoder.json, a JSON object of token -> id")
    if len(vocab) != vocab_size:
        raise VlkitError(
            f"{path}: {len(vocab)} tokens, but the state dict's token embedding has {vocab_size} rows"
        )
    if sorted(vocab.values()) != list(range(vocab_size)):
        raise VlkitError(f"{path}: the ids are not 0 to {vocab_size - 1}, each once")
    if END not in vocab:
        raise VlkitError(f"{path}: no {END} token (GPT-2's start, end and padding)")
    return vocab


def _read_merges(path: Path, vocab: dict[str, int], vocab_file: Path) -> list[tuple[str, str]]:
    """vocab.bpe: an optional `#version` line, then one merge a line, two tokens and one space."""
    if not path.is_file():
        raise VlkitError(f"{path}: merges file not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise VlkitError(f"{path}: cannot read it as UTF-8 text ({_first_line(exc)})") from exc
    merges = []
    for number, line in enumerate(lines, 1):
        if not line or (number == 1 and line.startswith("#version")):
            continue
        pair = line.split(" ")
        if len(pair) != 2 or not all(pair):
            raise VlkitError(f"{path}: line {number} is not a merge (two tokens, one space): {line[:60]!r}")
        missing = [token for token in (*pair, "".join(pair)) if token not in vocab]
        if missing:
            raise VlkitError(f"{path}: line {number}: {missing[0]!r} is not a token of {vocab_file}")
        merges.append((pair[0], pair[1]))
    return merges


def _write_folder(out: Path, model: GPT2LMHeadModel, tokenizer: GPT2Tokenizer) -> None:
    """Save into a new folder beside `out`, then move each file in: no half-written file at `out`. Each file
    gets the usual permissions (transformers 5 writes model.safetensors readable by its owner only)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    mask = os.umask(0)
    os.umask(mask)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        out.mkdir(exist_ok=True)
        for file in staging.iterdir():
            file.chmod(0o666 & ~mask)
            os.replace(file, out / file.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
