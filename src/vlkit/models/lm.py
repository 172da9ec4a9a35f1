"""A small GPT-2 for captions: the embedded default's caption decoder.

Where no pretrained GPT-2 can be had, the captioner's decoder is this model, trained text-only on the
training captions (`vlkit.train.lm_trainer`) so that the captioner starts from a decoder that already writes
the world's sentences. transformers' `GPT2LMHeadModel` is the model; its special tokens are the tokenizer's
end token (GPT-2 style: the end token doubles as start and padding), so `--decoder LM_DIR` loads it exactly as
it loads `gpt2`.
"""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from vlkit.models.architectures import LmArchitecture


def build_lm(arch: LmArchitecture, tokenizer, seed: int) -> GPT2LMHeadModel:
    """A randomly initialized GPT-2 whose special tokens are the tokenizer's end token."""
    end = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=arch.positions,
        n_embd=arch.width,
        n_layer=arch.layers,
        n_head=arch.heads,
        bos_token_id=end,
        eos_token_id=end,
        pad_token_id=end,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config)
