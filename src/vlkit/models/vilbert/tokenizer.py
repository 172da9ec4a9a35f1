"""A WordPiece tokenizer for ViLBERT's text stream, trained on a corpus (the shapes world's captions and
questions), or none: a converted checkpoint brings bert-base-uncased's vocab.txt.

`tokenizers` does the training and the encoding; this module picks BERT's settings (lower-casing,
BERT's pre-tokenizer, `[CLS] text [SEP]` and `[CLS] a [SEP] b [SEP]` with segment ids) and wraps the result as
a transformers tokenizer, saved with the model (`ViLBertModel.save_pretrained(folder, tokenizer)`) and loaded
with `load_tokenizer(folder)`. `[PAD]` is id 0, the config's `pad_token_id`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from vlkit.errors import VlkitError

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)  # in id order: [PAD] is 0


def train_wordpiece_tokenizer(
    texts: Iterable[str], vocab_size: int = 1000, model_max_length: int = 40
) -> PreTrainedTokenizerFast:
    """Train a lower-casing WordPiece on `texts`; the same texts give the same ids, run after run."""
    tokenizer = Tokenizer(models.WordPiece(unk_token=UNK))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    # The trainer numbers its alphabet in hash order, which changes from run to run; WordPiece's matching
    # (longest piece first) does not depend on the ids, so renumber: the specials, then the pieces sorted.
    pieces = sorted(set(tokenizer.get_vocab()) - set(SPECIAL_TOKENS))
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *pieces])}
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
