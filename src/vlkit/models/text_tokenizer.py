"""Byte-level BPE tokenizers trained on a caption corpus, for the embedded default's CLIP and GPT-2.

`tokenizers` does the training and the encoding; this module only picks the settings (byte-level like GPT-2,
so no text is ever unknown; lower-casing like CLIP) and wraps the result as a transformers tokenizer so that
it is saved and loaded with `save_pretrained` / `AutoTokenizer.from_pretrained` like any hub tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"


def train_bpe_tokenizer(
    texts: Iterable[str], vocab_size: int = 512, wrap_with_bos_eos: bool = True, model_max_length: int = 32
) -> PreTrainedTokenizerFast:
    """Train a lower-casing byte-level BPE on `texts`.

    With `wrap_with_bos_eos` (CLIP style) every encoded text is `BOS ... EOS`, and EOS doubles as padding;
    without it (GPT-2 style) texts are encoded bare and EOS serves as BOS, EOS and padding, as in GPT-2.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = [BOS, EOS] if wrap_with_bos_eos else [EOS]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    if wrap_with_bos_eos:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A {EOS}",
            special_tokens=[(BOS, tokenizer.token_to_id(BOS)), (EOS, tokenizer.token_to_id(EOS))],
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tokenizer,
            bos_token=BOS,
            eos_token=EOS,
            pad_token=EOS,
            unk_token=EOS,
            model_max_length=model_max_length,
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=EOS,
        unk_token=EOS,
        model_max_length=model_max_length,
    )
