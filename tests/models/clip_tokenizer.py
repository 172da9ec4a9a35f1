"""The real CLIP tokenizer, offline, and a tiny CLIP saved with it.

open_clip ships CLIP's BPE merges inside its package (`bpe_simple_vocab_16e6.txt.gz`). The vocabulary is
derived from them as open_clip's `SimpleTokenizer` derives it (the 256 byte symbols, the same with the
end-of-word mark, one token per merge, then the start and end tokens: 49,408 in all) and written as the
vocab.json and merges.txt that transformers' `CLIPTokenizer` reads, which is what the hub's OpenAI CLIP
repositories hold."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

from tests.models.tiny import TINY_CLIP
from vlkit.models.clip_scratch import build_clip, image_processor_for

CONTEXT_LENGTH = 77
START, END = "<|startoftext|>", "<|endoftext|>"
VOCAB_SIZE = 49408
# The real tokenizer and context, small widths: the token embedding (49,408 x 32) is most of the weights.
TINY_REAL_CLIP = dataclasses.replace(TINY_CLIP, vocab_size=VOCAB_SIZE, max_text_length=CONTEXT_LENGTH)


def clip_vocabulary() -> tuple[dict[str, int], list[str]]:
    """(token -> id, merges) as open_clip's SimpleTokenizer builds them from its packaged merges file."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]  # SimpleTokenizer's slice: the header line off, 48,894 merges
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges] + [START, END]
    return {token: i for i, token in enumerate(tokens)}, merges


def save_clip_tokenizer(folder: Path) -> Path:
    """vocab.json and merges.txt, read by transformers' CLIPTokenizer and saved whole (tokenizer.json)."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocabulary()
    assert len(vocab) == VOCAB_SIZE and vocab[START] == 49406 and vocab[END] == 49407
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizer.from_pretrained(folder, model_max_length=CONTEXT_LENGTH)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_clip_with_real_tokenizer(folder: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """A random tiny CLIPModel with the real vocabulary and 77-token context, saved with the tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    build_clip(TINY_REAL_CLIP, tokenizer.eos_token_id, tokenizer.bos_token_id, seed).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    image_processor_for(TINY_REAL_CLIP).save_pretrained(folder)
    return folder
