"""A small GPT-2 trained text-only on captions: the embedded default's caption decoder.

Where no pretrained GPT-2 can be had, the captioner's decoder is this model, pretrained here on the training
captions so that the captioner starts from a decoder that already writes the world's sentences. transformers'
`GPT2LMHeadModel` is the model, `train_bpe_tokenizer` (GPT-2 style: the end token doubles as start and
padding) the tokenizer, and `vlkit.train.loop` the training; this module picks the sizes, lays out the token
rows (`eos caption eos`, as GPT-2 separates documents) and saves the HF layout, so `--decoder LM_DIR` loads
it exactly as it loads `gpt2`.

(The training lives here rather than in `vlkit/train/` because the model and its training are one small
recipe; it is the only module of `models/` that imports the training loop.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

from vlkit.data.files import write_json_atomic
from vlkit.errors import VlkitError
from vlkit.models.text_tokenizer import train_bpe_tokenizer
from vlkit.train.loop import LoopConfig, run_training, validation_logger

log = logging.getLogger(__name__)

TRAIN_CONFIG_FILE = "vlkit_lm_train_config.json"
TOKENIZER_DIR = "tokenizer"


@dataclass
class LmArchitecture:
    """A small GPT-2; every field maps onto transformers' `GPT2Config`."""

    width: int = field(default=128, metadata={"help": "embedding width (n_embd)"})
    layers: int = field(default=4, metadata={"help": "transformer blocks (n_layer)"})
    heads: int = field(default=4, metadata={"help": "attention heads (n_head)"})
    positions: int = field(default=40, metadata={"help": "longest token row, both end tokens included"})
    vocab_size: int = field(default=512, metadata={"help": "byte-level BPE vocabulary size"})


@dataclass
class LmTrainConfig:
    """`vlkit lm train`: architecture, batch and loop settings. Saved as JSON beside the weights."""

    architecture: LmArchitecture = field(default_factory=LmArchitecture)
    loop: LoopConfig = field(
        default_factory=lambda: LoopConfig(
            steps=600, learning_rate=1e-3, weight_decay=0.01, warmup_steps=40, checkpoint_every=100
        )
    )
    batch_size: int = field(default=64, metadata={"help": "captions per step"})
    eval_every: int = field(default=100, metadata={"help": "steps between validation losses"})

    @classmethod
    def from_dict(cls, data: dict) -> LmTrainConfig:
        return cls(
            architecture=LmArchitecture(**data["architecture"]),
            loop=LoopConfig(**data["loop"]),
            batch_size=data["batch_size"],
            eval_every=data["eval_every"],
        )


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


@dataclass
class TokenRows:
    """Captions as `eos caption eos` rows padded with eos to one length; labels are -100 on the padding."""

    input_ids: torch.Tensor  # (N, T)
    attention_mask: torch.Tensor  # (N, T)
    labels: torch.Tensor  # (N, T)


def token_rows(tokenizer, captions: Sequence[str], length: int) -> TokenRows:
    """Tokenize `captions` GPT-2 style; a caption too long for `length` is cut, keeping its final eos."""
    end = tokenizer.eos_token_id
    ids = torch.full((len(captions), length), end, dtype=torch.long)
    labels = torch.full((len(captions), length), -100, dtype=torch.long)
    mask = torch.zeros((len(captions), length), dtype=torch.long)
    encoded = tokenizer(list(captions), add_special_tokens=False, truncation=True, max_length=length - 2)
    for row, tokens in enumerate(encoded["input_ids"]):
        sequence = [end, *tokens, end]
        ids[row, : len(sequence)] = torch.tensor(sequence)
        labels[row, : len(sequence)] = ids[row, : len(sequence)]
        mask[row, : len(sequence)] = 1
    return TokenRows(ids, mask, labels)


class LmBatches:
    """Step-indexed batches: epoch e is a seeded permutation of all caption rows."""

    def __init__(self, rows: TokenRows, batch_size: int, seed: int):
        self.rows, self.seed = rows, seed
        self.batch_size = min(batch_size, len(rows.input_ids))
        self.per_epoch = max(1, len(rows.input_ids) // self.batch_size)

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        epoch, index = divmod(step, self.per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.rows.input_ids))
        chosen = torch.from_numpy(order[index * self.batch_size : (index + 1) * self.batch_size])
        return {
            "input_ids": self.rows.input_ids[chosen],
            "attention_mask": self.rows.attention_mask[chosen],
            "labels": self.rows.labels[chosen],
        }


def lm_loss(model: GPT2LMHeadModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Next-token cross-entropy (GPT-2 shifts the labels itself), over the caption and its final eos."""
    return model(**batch).loss


def train_lm(
    config: LmTrainConfig,
    captions: Sequence[str],
    out_dir: Path,
    val_captions: Sequence[str] = (),
    resume: bool = False,
) -> Path:
    """Train the tokenizer and the LM on `captions`; save both to `out_dir` in the HF layout."""
    if not captions:
        raise VlkitError("lm train: no training captions")
    arch = config.architecture
    if arch.positions < 3:
        raise VlkitError(f"positions: must be at least 3 (eos, a token, eos), got {arch.positions}")
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer_dir = out_dir / TOKENIZER_DIR
    if resume and (tokenizer_dir / "tokenizer.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    else:
        tokenizer = train_bpe_tokenizer(captions, arch.vocab_size, False, arch.positions)
        tokenizer.save_pretrained(tokenizer_dir)
    write_json_atomic(out_dir / TRAIN_CONFIG_FILE, asdict(config))
    model = build_lm(arch, tokenizer, config.loop.seed)
    batches = LmBatches(token_rows(tokenizer, captions, arch.positions), config.batch_size, config.loop.seed)
    on_log = None
    if val_captions:
        val_batch = LmBatches(
            token_rows(tokenizer, val_captions, arch.positions), config.batch_size, config.loop.seed + 1
        )(0)
        on_log = validation_logger(model, lm_loss, val_batch, config.eval_every)
    run_training(model, model.parameters(), batches, lm_loss, config.loop, out_dir, resume, on_log)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    log.info("saved the caption LM to %s", out_dir)
    return out_dir


def read_train_config(model_dir: Path) -> LmTrainConfig:
    return LmTrainConfig.from_dict(json.loads((model_dir / TRAIN_CONFIG_FILE).read_text()))
