"""Hard negative captions for contrastive training: one word of a caption swapped for another of its group.

NegCLIP's recipe (Yuksekgonul et al., 2023, "When and why vision-language models behave like bags-of-words"),
kept to the training text's trigrams so that a negative is wrong because of the swapped word and not because
no image was ever paired with such text. No library builds these for an arbitrary caption set.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from vlkit.data.captions import CaptionDataset


def _words(caption: str) -> list[str]:
    return [word.strip(".,;:") for word in caption.split(" ")]


def caption_trigrams(captions: Iterable[str]) -> set[tuple[str, ...]]:
    """Every run of three words (punctuation stripped) in `captions`, sentence ends padded."""
    grams: set[tuple[str, ...]] = set()
    for caption in captions:
        words = ["<s>", *_words(caption), "</s>"]
        grams.update(zip(words, words[1:], words[2:], strict=False))
    return grams


def swap_one_word(
    caption: str,
    groups: list[list[str]],
    rng: np.random.Generator,
    seen: set[tuple[str, ...]] | None = None,
) -> str | None:
    """`caption` with one word of a group replaced by another word of the same group, or None when the
    caption has no group word (or no swap passes `seen`). The hard negatives of NegCLIP (Yuksekgonul et al.,
    2023, "When and why vision-language models behave like bags-of-words"): a caption that differs from the
    true one only in that word, so the only way to rank the true caption above it is to see what it names.

    With `seen` (the training captions' trigrams) a swap is kept only when the three trigrams around the new
    word occur in some training caption: a negative must be wrong because of the word, not because it is text
    no image was ever paired with. Without this rule the negatives would contain the held-out combinations
    ("a red circle" made from "a red square"), which the model then learns never to match, so it fails them
    at test time: measured 9% unseen top-1 against 31% without negatives.
    """
    words = caption.split(" ")
    plain = _words(caption)
    where = [(i, g) for i, w in enumerate(plain) for g in groups if w in g]
    rng.shuffle(where)
    for i, group in where:
        others = [w for w in group if w != plain[i]]
        rng.shuffle(others)
        for other in others:
            if seen is not None:
                padded = ["<s>", *plain[:i], other, *plain[i + 1 :], "</s>"]
                # word i sits at padded[i + 1]: the trigrams holding it start at i - 1, i and i + 1
                starts = range(max(0, i - 1), min(i + 2, len(padded) - 2))
                grams = (tuple(padded[j : j + 3]) for j in starts)
                if not all(gram in seen for gram in grams):
                    continue
            words[i] = words[i].replace(plain[i], other)
            return " ".join(words)
    return None


def hard_negative_captions(dataset: CaptionDataset, groups: list[list[str]], seed: int) -> list[list[str]]:
    """One word-swapped negative per caption (`swap_one_word`, kept to the training text's trigrams); a
    caption without a swappable word gets an empty negative, which its image's true caption outranks without
    effort."""
    rng = np.random.default_rng([seed, 7])
    seen = caption_trigrams(dataset.all_captions())
    return [[swap_one_word(c, groups, rng, seen) or "" for c in item.captions] for item in dataset.images]
