"""Train the small caption GPT-2 (`vlkit.models.lm`) text-only on captions.

`train_bpe_tokenizer` (GPT-2 style) makes the tokenizer and `vlkit.train.loop` runs the training; this module
lays out the token rows (`eos caption eos`, as GPT-2 separates documents) and saves the HF layout.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, GPT2LMHeadModel

from vlkit.errors import VlkitError
from vlkit.models.lm import build_lm
from vlkit.models.text_tokenizer import train_bpe_tokenizer
from vlkit.runtime.files import write_json_atomic
from vlkit.train.config import LmTrainConfig
from vlkit.train.loop import run_training, validation_logger

log = logging.getLogger(__name__)

TRAIN_CONFIG_FILE = "vlkit_lm_train_config.json"
TOKENIZER_DIR = "tokenizer"


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
        mask = self.rows.attention_mask[chosen]
        # Cut after the longest caption: the later columns are padding in every row, which the causal LM
        # never reads and the loss ignores, so the loss is unchanged and the step shorter.
        length = max(1, int(mask.sum(dim=1).max()))
        return {
            "input_ids": self.rows.input_ids[chosen, :length],
            "attention_mask": mask[:, :length],
            "labels": self.rows.labels[chosen, :length],
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
