"""GPT-2 state dicts in the layouts `vlkit convert gpt2` reads, written from one transformers model, and
GPT-2-format BPE files (encoder.json, vocab.bpe) trained on a small corpus."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel

END = "<|endoftext|>"
# The block matrices nn.Linear stores as (out, in), transposed against GPT-2's Conv1D.
MATRICES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def random_gpt2(config: GPT2Config, seed: int = 0, biases: bool = True) -> GPT2LMHeadModel:
    """A GPT-2 in eval mode whose every weight is random (GPT-2's own init leaves biases at zero and layer
    norms at one, which would hide a bias or norm mapped to the wrong place); `biases=False` zeroes them all,
    as nanoGPT's bias=False variant is."""
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(".bias") and not biases:
                parameter.zero_()
            else:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return model


def hf_state(model: GPT2LMHeadModel) -> dict[str, torch.Tensor]:
    """GPT2LMHeadModel's own: `transformer.` names, Conv1D weights, lm_head (the wte tensor when tied)."""
    return dict(model.state_dict())


def bare_state(model: GPT2LMHeadModel) -> dict[str, torch.Tensor]:
    """HF's names without `transformer.` (GPT2Model's), lm_head kept."""
    return {key.removeprefix("transformer."): value for key, value in model.state_dict().items()}


def course_state(model: GPT2LMHeadModel) -> dict[str, torch.Tensor]:
    """The course's decoder_model.bin: HF's names without `transformer.`, no lm_head (tied to wte), and the
    causal-mask buffers older transformers stored in every block."""
    state = {key: value for key, value in bare_state(model).items() if key != "lm_head.weight"}
    positions = model.config.n_positions
    for i in range(model.config.n_layer):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(positions, positions, dtype=torch.bool))[None, None]
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return state


def nanogpt_state(model: GPT2LMHeadModel, biases: bool = True) -> dict[str, torch.Tensor]:
    """nanoGPT's (and minGPT's): HF's names under `transformer.`, nn.Linear matrices (out, in), lm_head, the
    causal-mask buffer; `biases=False` leaves every bias out, as nanoGPT's bias=False model has none."""
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith(".bias") and not biases:
            continue
        state[key] = value.t().contiguous() if key.split(".", 3)[-1] in MATRICES else value
    positions = model.config.n_positions
    mask = torch.tril(torch.ones(positions, positions)).view(1, 1, positions, positions)
    for i in range(model.config.n_layer):
        state[f"transformer.h.{i}.attn.bias"] = mask
    return state


def save_bpe_files(folder: Path, texts: list[str], vocab_size: int = 300) -> tuple[Path, Path, int]:
    """A byte-level BPE trained on `texts` and saved as GPT-2 ships its own: (encoder.json, vocab.bpe, the
    vocabulary's size), `<|endoftext|>` the last id as in GPT-2."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file, merges_file = (Path(p) for p in tokenizer.model.save(str(folder)))
    vocab = json.loads(vocab_file.read_text())
    vocab[END] = len(vocab)
    encoder, merges = folder / "encoder.json", folder / "vocab.bpe"
    encoder.write_text(json.dumps(vocab, ensure_ascii=False))
    merges_file.rename(merges)
    vocab_file.unlink()
    return encoder, merges, len(vocab)
