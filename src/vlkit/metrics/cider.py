"""CIDEr-D, the captioning metric, computed the way pycocoevalcap computes it, for a whole corpus at once.

pycocoevalcap's `Cider` (which is CIDEr-D: n-grams of 1 to 4 words, document frequencies from the
reference sets of the evaluated corpus, TF-IDF vectors, candidate counts clipped by the reference's,
a Gaussian length penalty with sigma 6, times 10, averaged over references then images) loops over Python
dicts n-gram by n-gram. `cider_d` gives the same numbers (to 1e-9, the order of float additions differs)
from a few sorts over integer arrays with numpy: each distinct word gets an id, each n-gram a key built
from those ids, and one sort per n-gram length groups the occurrences by (n-gram, caption), from which term
frequencies, document frequencies and the clipped dot products are segment sums.

Two quirks of pycocoevalcap are kept on purpose: the "length" in the penalty is the number of bigrams of
a caption (its counter only adds up 2-grams), and captions are split into words with `str.split()` (so a
non-breaking space inside a PTB token splits it).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from vlkit.errors import VlkitError
from vlkit.metrics.ptb_java import ptb_tokenize_java
from vlkit.metrics.tokenize import ptb_word_ids, vocabulary_size

K = TypeVar("K", bound=Hashable)

MAX_N = 4  # n-grams of 1 to 4 words
SIGMA = 6.0  # width of the Gaussian length penalty
TOKENIZERS = ("ptb", "ptb-java", "none")


@dataclass(frozen=True)
class CiderResult(Generic[K]):
    """The corpus CIDEr-D (mean over images) and each image's score, keyed as the inputs were."""

    score: float
    per_image: dict[K, float]


def cider_d(
    candidates: Mapping[K, str], references: Mapping[K, Sequence[str]], tokenizer: str = "ptb"
) -> CiderResult[K]:
    """CIDEr-D of one candidate caption per image against that image's reference captions.

    Args:
        candidates: image id -> the caption to score.
        references: image id -> its reference captions (at least one); the same ids as `candidates`.
            Document frequencies come from these reference sets, so the score of one image depends on the
            whole corpus, as in pycocoevalcap.
        tokenizer: "ptb" (pycocoevalcap's PTB tokenization in pure Python, the default), "ptb-java"
            (pycocoevalcap's own Java tokenizer) or "none" (captions already tokenized: split on spaces).

    Returns:
        CiderResult with the corpus score (pycocoevalcap's "CIDEr" times 1, not times 100) and per-image
        scores.
    """
    keys = check_captions(candidates, references)
    if tokenizer not in TOKENIZERS:
        raise VlkitError(f"tokenizer {tokenizer!r}: expected one of {', '.join(TOKENIZERS)}")
    reference_texts = [caption for key in keys for caption in references[key]]
    candidate_texts = [candidates[key] for key in keys]
    counts = [len(references[key]) for key in keys]
    # Two tokenizer calls, like pycocoevalcap's two PTBTokenizer runs (references, then results).
    if tokenizer == "ptb":  # word ids straight from the tokenizer's memory, no strings in between
        references_ids, candidates_ids = ptb_word_ids(reference_texts), ptb_word_ids(candidate_texts)
        layout = _Layout.build(references_ids, candidates_ids, counts, vocabulary_size())
        scores = _scores(layout, counts)
    else:
        if tokenizer == "ptb-java":
            reference_texts, candidate_texts = (
                ptb_tokenize_java(reference_texts),
                ptb_tokenize_java(candidate_texts),
            )
        scores = cider_d_scores(reference_texts, counts, candidate_texts)
    return CiderResult(float(np.mean(scores)), dict(zip(keys, scores.tolist(), strict=True)))


def check_captions(candidates: Mapping[K, str], references: Mapping[K, Sequence[str]]) -> list[K]:
    """The image ids in the references' order, after checking both mappings describe the same images."""
    if not references:
        raise VlkitError("references: no images to score")
    missing = [key for key in references if key not in candidates]
    extra = [key for key in candidates if key not in references]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} image(s) without a candidate (e.g. {_examples(missing)})")
        if extra:
            parts.append(f"{len(extra)} candidate(s) without references (e.g. {_examples(extra)})")
        raise VlkitError("candidates and references must have the same image ids: " + "; ".join(parts))
    for key, captions in references.items():
        # (list, tuple) first: the abstract Sequence check is slow, and runs once per image
        if not isinstance(captions, (list, tuple)) and (
            isinstance(captions, str) or not isinstance(captions, Sequence)
        ):
            raise VlkitError(
                f"references[{key!r}]: expected a list of captions, got {type(captions).__name__}"
            )
        if not captions:
            raise VlkitError(f"references[{key!r}]: no reference captions (each image needs at least one)")
        if not all(isinstance(caption, str) for caption in captions):
            bad = next(caption for caption in captions if not isinstance(caption, str))
            raise VlkitError(f"references[{key!r}]: a caption is a {type(bad).__name__}, not a string")
        if not isinstance(candidates[key], str):
            raise VlkitError(f"candidates[{key!r}]: expected a string, got {type(candidates[key]).__name__}")
    return list(references)


def _examples(keys: list, limit: int = 3) -> str:
    return ", ".join(repr(key) for key in keys[:limit]) + (", ..." if len(keys) > limit else "")


def cider_d_scores(
    reference_texts: Sequence[str], reference_counts: Sequence[int], candidate_texts: Sequence[str]
) -> np.ndarray:
    """Per-image CIDEr-D of tokenized captions: image i has `reference_counts[i]` consecutive references."""
    counts = np.asarray(reference_counts, dtype=np.int64)
    if len(counts) != len(candidate_texts) or int(counts.sum()) != len(reference_texts):
        raise VlkitError("reference counts do not add up to the reference captions given")
    ids, lengths, n_words = _word_ids([*reference_texts, *candidate_texts])
    split = int(lengths[: len(reference_texts)].sum())
    references = (ids[:split], lengths[: len(reference_texts)])
    candidates = (ids[split:], lengths[len(reference_texts) :])
    return _scores(_Layout.build(references, candidates, reference_counts, n_words), reference_counts)


def _scores(layout: _Layout, reference_counts: Sequence[int]) -> np.ndarray:
    n_images = len(reference_counts)
    similarity = np.zeros((n_images, MAX_N))
    # Grouping the n-grams of length n needs the groups of length n-1, so it runs in order; each length's
    # similarities run in a second thread meanwhile (numpy lets go of the GIL in its loops).
    with ThreadPoolExecutor(max_workers=1) as worker:
        pending = []
        gram_of_position = layout.ids
        for n in range(1, MAX_N + 1):
            groups, gram_of_position = _group_ngrams(layout, n, gram_of_position)
            pending.append(worker.submit(_similarity, layout, *groups))
        for n, future in enumerate(pending):
            similarity[:, n] = np.bincount(layout.reference_image, future.result(), minlength=n_images)
    counts = np.asarray(reference_counts, dtype=np.float64)
    return similarity.mean(axis=1) / counts * 10.0


@dataclass(frozen=True)
class _Layout:
    """All captions as one array of word ids: image by image, its references then its candidate."""

    ids: np.ndarray  # (T,) word id of every token
    caption_of_token: np.ndarray  # (T,) int32
    remaining: np.ndarray  # (T,) tokens from this one to the end of its caption, itself included
    image: np.ndarray  # (C,) int32 image of each caption
    is_candidate: np.ndarray  # (C,) bool
    reference: np.ndarray  # (R,) caption index of each reference
    reference_image: np.ndarray  # (R,) its image
    reference_candidate: np.ndarray  # (R,) caption index of the candidate it is compared with
    bigrams: np.ndarray  # (C,) pycocoevalcap's "length": the number of bigrams
    vocabulary_size: int
    idf_base: float  # log(number of images)

    @staticmethod
    def build(
        references: tuple[np.ndarray, np.ndarray],
        candidates: tuple[np.ndarray, np.ndarray],
        reference_counts: Sequence[int],
        vocabulary_size: int,
    ) -> _Layout:
        """From (word ids in a row, words per caption) of the references and of the candidates."""
        counts = np.asarray(reference_counts, dtype=np.int64)
        image = np.repeat(np.arange(len(counts), dtype=np.int32), counts + 1)
        candidate = np.cumsum(counts + 1) - 1
        is_candidate = np.zeros(len(image), dtype=bool)
        is_candidate[candidate] = True
        reference = np.flatnonzero(~is_candidate)
        # Interleave: each caption's ids are a stretch of [reference ids, candidate ids].
        (reference_ids, reference_lengths), (candidate_ids, candidate_lengths) = references, candidates
        lengths = np.empty(len(image), dtype=np.int64)
        lengths[reference], lengths[candidate] = reference_lengths, candidate_lengths
        source_start = np.empty(len(image), dtype=np.int64)
        source_start[reference] = np.cumsum(reference_lengths) - reference_lengths
        source_start[candidate] = len(reference_ids) + np.cumsum(candidate_lengths) - candidate_lengths
        start = np.cumsum(lengths) - lengths
        n_tokens = int(lengths.sum())
        ids = np.concatenate([reference_ids, candidate_ids])[
            np.repeat(source_start - start, lengths) + np.arange(n_tokens, dtype=np.int64)
        ]
        caption_of_token = np.repeat(np.arange(len(image), dtype=np.int32), lengths)
        remaining = np.repeat(start + lengths, lengths) - np.arange(n_tokens, dtype=np.int64)
        return _Layout(
            ids,
            caption_of_token,
            remaining,
            image,
            is_candidate,
            reference,
            image[reference],
            candidate[image[reference]],
            np.maximum(lengths - 1, 0),
            max(vocabulary_size, 1),
            math.log(float(len(counts))),
        )


def _word_ids(texts: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Word ids of all captions in a row, words per caption, vocabulary size (words as `str.split()`)."""
    # One split of the whole corpus, with a separator word between captions, is much faster than one
    # split per caption; the separator must not occur in the text, or we split caption by caption.
    separator = "\uffff\ufffe"
    words = f" {separator} ".join(texts).split()
    vocabulary = dict.fromkeys(words)
    vocabulary[separator] = None
    for index, word in enumerate(vocabulary):
        vocabulary[word] = index
    ids = np.fromiter(map(vocabulary.__getitem__, words), dtype=np.int64, count=len(words))
    is_separator = ids == vocabulary[separator]
    if int(is_separator.sum()) == len(texts) - 1:
        boundaries = np.flatnonzero(is_separator)
        lengths = np.diff(np.concatenate(([-1], boundaries, [len(ids)]))) - 1
        return ids[~is_separator], lengths, len(vocabulary)
    lengths = np.fromiter(map(len, map(str.split, texts)), dtype=np.int64, count=len(texts))
    words = " ".join(texts).split()
    return (
        np.fromiter(map(vocabulary.__getitem__, words), dtype=np.int64, count=len(words)),
        lengths,
        len(vocabulary),
    )


def _sort_by_gram(keys: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(keys, positions) sorted by key then position: one sort of packed integers when they fit in 63 bits."""
    position_bits = max(int(positions[-1]).bit_length(), 1) if len(positions) else 1
    if len(keys) and int(keys.max()) < (1 << (63 - position_bits)):
        packed = np.sort((keys << position_bits) | positions)
        return packed >> position_bits, packed & ((1 << position_bits) - 1)
    order = np.lexsort((positions, keys))
    return keys[order], positions[order]


def _group_ngrams(
    layout: _Layout, n: int, previous_gram: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """The occurrences of n-grams sorted by (n-gram, caption): for each, whether it starts a new n-gram,
    the n-gram's id and the caption; and the id of the n-gram starting at each token position.

    `previous_gram` gives the id of the (n-1)-gram starting at each position (the word ids for n = 1), so
    every key is exact: ((n-1)-gram id, next word), no hashing.
    """
    positions = np.flatnonzero(layout.remaining >= n)
    if n == 1:
        keys = layout.ids[positions]
    else:
        keys = previous_gram[positions] * layout.vocabulary_size + layout.ids[positions + n - 1]
    keys, positions = _sort_by_gram(keys, positions)
    new_gram = np.empty(len(keys), dtype=bool)
    new_gram[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=new_gram[1:])
    gram = np.cumsum(new_gram, dtype=np.int64) - 1
    gram_of_position = np.empty(0, dtype=np.int64)
    if n < MAX_N:  # what the next length builds its keys from
        gram_of_position = np.zeros(len(layout.ids), dtype=np.int64)
        gram_of_position[positions] = gram
    return (new_gram, gram, layout.caption_of_token[positions]), gram_of_position


def _similarity(layout: _Layout, new_gram: np.ndarray, gram: np.ndarray, caption: np.ndarray) -> np.ndarray:
    """Each reference's penalized cosine similarity to its candidate over the grouped n-grams."""
    size = len(gram)
    if size == 0:  # no caption is that long
        return np.zeros(len(layout.reference))
    # Runs of one n-gram in one caption: their lengths are the term frequencies.
    new_run = new_gram.copy()
    new_run[1:] |= caption[1:] != caption[:-1]
    run_start = np.flatnonzero(new_run)
    term_frequency = np.diff(np.append(run_start, size)).astype(np.float64)
    run_caption, run_gram = caption[run_start], gram[run_start]
    # Pairs (n-gram, image): an image's references and then its candidate are consecutive captions.
    run_image = layout.image[run_caption]
    new_pair = new_gram[run_start]
    new_pair[1:] |= run_image[1:] != run_image[:-1]
    pair_start = np.flatnonzero(new_pair)
    run_is_candidate = layout.is_candidate[run_caption]
    pair_size = np.diff(np.append(pair_start, len(run_start)))
    pair_last = pair_start + pair_size - 1
    # Document frequency: the images whose references hold the n-gram (a pair of 2+ runs has a reference).
    has_reference = (pair_size > 1) | ~run_is_candidate[pair_start]
    n_grams = int(gram[-1]) + 1
    document_frequency = np.bincount(run_gram[pair_start[has_reference]], minlength=n_grams)
    idf = layout.idf_base - np.log(np.maximum(1.0, document_frequency))
    weight = term_frequency * idf[run_gram]  # counts2vec's TF-IDF entries
    squared_norm = np.bincount(run_caption, weight * weight, minlength=len(layout.image))
    # Clipped products only where the candidate shares the n-gram with a reference: pairs of 2+ runs whose
    # last run (the highest caption of the image) is the candidate's.
    shared = (pair_size > 1) & run_is_candidate[pair_last]
    candidate_run = pair_last[shared]
    sizes = pair_size[shared] - 1
    reference_run = np.repeat(pair_start[shared] - np.cumsum(sizes) + sizes, sizes) + np.arange(
        int(sizes.sum())
    )
    reference_weight = weight[reference_run]
    clipped = np.minimum(np.repeat(weight[candidate_run], sizes), reference_weight) * reference_weight
    dot = np.bincount(run_caption[reference_run], clipped, minlength=len(layout.image))[layout.reference]
    dot = dot.astype(np.float64, copy=False)  # bincount of nothing counts in integers
    reference_norm = np.sqrt(squared_norm[layout.reference])
    candidate_norm = np.sqrt(squared_norm[layout.reference_candidate])
    both = (reference_norm != 0) & (candidate_norm != 0)
    dot[both] /= candidate_norm[both] * reference_norm[both]
    delta = (layout.bigrams[layout.reference_candidate] - layout.bigrams[layout.reference]).astype(np.float64)
    dot *= np.e ** (-(delta**2) / (2 * SIGMA**2))
    return dot
