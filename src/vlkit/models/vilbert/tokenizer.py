"""A WordPiece tokenizer for ViLBERT's text stream, trained on a corpus (the shapes world's captions and
questions), or none: a converted checkpoint brings bert-base-uncased's vocab.txt.

`tokenizers` does the normalizing, the pre-tokenizing and the encoding; this module picks BERT's settings
(lower-casing, BERT's pre-tokenizer, `[CLS] text [SEP]` and `[CLS] a [SEP] b [SEP]` with segment ids) and
wraps the result as a transformers tokenizer, saved with the model (`ViLBertModel.save_pretrained(folder,
tokenizer)`) and loaded with `load_tokenizer(folder)`. `[PAD]` is id 0, the config's `pad_token_id`.

The vocabulary is chosen here rather than by `tokenizers`' `WordPieceTrainer`: the trainer breaks ties
between equally frequent merges in hash order, which is seeded per process, so the same corpus gave a
different vocabulary in each process (measured: four runs, four vocabularies on the shapes world), and a
study's runs, each training its tokenizer in its own worker, differed by up to 8 VQA points from that alone.
Here the pieces are the corpus's characters (alone, then as `##` continuations, so any word of that alphabet
encodes) and its most frequent whole words, ties broken alphabetically, as many as `vocab_size` allows:
the same texts give the same vocabulary and the same ids in every process. WordPiece's greedy longest match
then reads a known word as one piece and any other word letter by letter.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from vlkit.errors import VlkitError

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)  # in id order: [PAD] is 0


def train_wordpiece_tokenizer(
    texts: Iterable[str], vocab_size: int = 1000, model_max_length: int = 40
) -> PreTrainedTokenizerFast:
    """A lower-casing WordPiece for `texts` (see the module docstring); the same texts give the same ids in
    every process."""
    tokenizer = Tokenizer(models.WordPiece(unk_token=UNK))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    counts: Counter[str] = Counter()
    for text in texts:
        normalized = tokenizer.normalizer.normalize_str(text)
        counts.update(word for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(normalized))
    if not counts:
        raise VlkitError("train_wordpiece_tokenizer: no words in the texts")
    alphabet = sorted({char for word in counts for char in word})
    room = vocab_size - len(SPECIAL_TOKENS)
    if room < len(alphabet):
        raise VlkitError(
            f"vocab_size {vocab_size}: the texts' {len(alphabet)} characters need {len(alphabet) + 5}"
        )
    ranked = sorted((word for word in counts if len(word) > 1), key=lambda word: (-counts[word], word))
    chosen = sorted({*[*alphabet, *(f"##{char}" for char in alphabet), *ranked][:room]})
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *chosen])}
    tokenizer.model = models.WordPiece(vocab=vocab, unk_token=UNK)
    cls_id, sep_id = tokenizer.token_to_id(CLS), tokenizer.token_to_id(SEP)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}",
        pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
        special_tokens=[(CLS, cls_id), (SEP, sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token=UNK,
        pad_token=PAD,
        cls_token=CLS,
        sep_token=SEP,
        mask_token=MASK,
        model_max_length=model_max_length,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def load_tokenizer(folder: str | os.PathLike[str]) -> PreTrainedTokenizerFast:
    """The tokenizer saved in a ViLBERT folder; a folder without one is a `VlkitError` naming it."""
    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise VlkitError(f"{folder}: no tokenizer saved there ({str(exc).splitlines()[0]})") from exc
