"""CIDEr-D end to end: pycocoevalcap (its Java PTBTokenizer, then `Cider`) against vlkit's `cider_d` (its
pure-Python PTB tokenizer, then the vectorized scorer), on the same generated corpus, same score asserted.

The corpus imitates COCO captions: about 10 words from templates, a Zipf-distributed vocabulary of a few
thousand words (common caption words plus made-up rare ones), sentence-final periods most of the time,
commas, possessives, hyphenated words, numbers, and now and then quotes or parentheses. vlkit's tokenizer
remembers the chunks it has lexed; the timed runs start with that memory cleared, so the figure is the
first call in a fresh process (a second call on the same references is faster, see the notes).
"""

from __future__ import annotations

import gc
import random
import time

from bench.common import BenchRow, best_of
from vlkit.metrics import tokenize
from vlkit.metrics.cider import cider_d

COMMAND = "python -m bench cider"
TARGET_SPEEDUP = 20.0

_NOUNS = (
    "man woman person people boy girl child kid player skier surfer rider dog cat horse bird cow sheep "
    "elephant giraffe zebra bear train bus truck car motorcycle bicycle bike airplane plane boat kite "
    "frisbee skateboard surfboard umbrella bench table chair couch bed desk laptop computer phone clock "
    "sign street road sidewalk field beach ocean water wave snow mountain hill grass tree building house "
    "kitchen bathroom room window door wall floor plate bowl cup pizza sandwich cake donut banana apple "
    "orange broccoli carrot hot dog food meal vase flowers toilet sink mirror television tv shelf book "
    "bag suitcase ball bat glove racket tennis baseball soccer game team crowd city park area station "
    "track parking lot fence pole light traffic intersection corner shirt jacket hat helmet"
).split()
_ADJECTIVES = (
    "large small big little young old white black brown red blue green yellow gray grey tall wooden "
    "empty busy cute colorful open several many two three four different various dirty clean modern"
).split()
_VERBS = (
    "riding holding eating sitting standing walking playing looking carrying throwing flying laying "
    "lying parked hanging watching waiting crossing driving swinging catching hitting cutting using "
    "talking posing grazing resting covered filled topped stacked displayed"
).split()
_PREPOSITIONS = "on in near next to with under behind beside at over by along across inside".split()
_DETERMINERS = ["a", "the", "an", "some", "his", "her", "their", "two", "three"]
_SYLLABLES = (
    "ba be bi bo bu ca co da de di do fa fe ga go ka ki la le li lo ma me mi mo na ne ni no pa pe".split()
)


class _CaptionWriter:
    """Captions from templates; the vocabulary's long tail is made-up words drawn with Zipf weights."""

    def __init__(self, seed: int, rare_words: int = 4000) -> None:
        self.random = random.Random(seed)
        rare = {
            "".join(self.random.choices(_SYLLABLES, k=self.random.randint(2, 4))) for _ in range(rare_words)
        }
        self.nouns = _NOUNS + sorted(rare)
        self.noun_weights = [1.0 / (rank + 1) for rank in range(len(self.nouns))]

    def noun_phrase(self) -> str:
        pick = self.random.random
        noun = self.random.choices(self.nouns, self.noun_weights)[0]
        if pick() < 0.05:
            noun = f"{noun}-{self.random.choice(_NOUNS)}"
        adjective = f"{self.random.choice(_ADJECTIVES)} " if pick() < 0.5 else ""
        owner = f"{self.random.choice(_NOUNS)}'s " if pick() < 0.04 else ""
        return f"{self.random.choice(_DETERMINERS)} {owner}{adjective}{noun}"

    def caption(self) -> str:
        pick = self.random.random
        text = (
            f"{self.noun_phrase()} {self.random.choice(['is ', 'are ', ''])}{self.random.choice(_VERBS)} "
            f"{self.random.choice(_PREPOSITIONS)} {self.noun_phrase()}"
        )
        roll = pick()
        if roll < 0.3:
            text += f" {self.random.choice(_PREPOSITIONS)} {self.noun_phrase()}"
        elif roll < 0.4:
            text += f", while {self.noun_phrase()} {self.random.choice(_VERBS)}"
        elif roll < 0.43:
            text += f" ({self.random.choice(['in color', 'black and white', 'at night'])})"
        elif roll < 0.45:
            text += f" with {self.random.randint(2, 12)} {self.random.choice(_NOUNS)}s"
        elif roll < 0.46:
            text += f' and a sign that says "{self.random.choice(_NOUNS)}"'
        if pick() < 0.7:
            text = text[0].upper() + text[1:]
        return text + self.random.choices([".", "", " .", "!"], [70, 25, 4, 1])[0]


def caption_corpus(n_images: int, seed: int = 0) -> tuple[dict[int, str], dict[int, list[str]]]:
    """Candidates and 5 references per image, deterministic for a seed."""
    writer = _CaptionWriter(seed)
    references = {image: [writer.caption() for _ in range(5)] for image in range(n_images)}
    candidates = {image: writer.caption() for image in range(n_images)}
    return candidates, references


def _pycocoevalcap(candidates: dict[int, str], references: dict[int, list[str]]) -> float:
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize(
        {image: [{"caption": c} for c in captions] for image, captions in references.items()}
    )
    res = tokenizer.tokenize({image: [{"caption": candidates[image]}] for image in references})
    score, _ = Cider().compute_score(gts, res)
    return float(score)


def _vlkit_cold(candidates: dict[int, str], references: dict[int, list[str]]) -> float:
    tokenize.clear_cache()
    return cider_d(candidates, references).score


def run(quick: bool) -> list[BenchRow]:
    n_images = 1000 if quick else 8000
    candidates, references = caption_corpus(n_images)
    gc.collect()
    peer_seconds, peer_score = best_of(
        lambda: _pycocoevalcap(candidates, references), repeats=1 if quick else 2
    )
    vlkit_seconds, vlkit_score = best_of(lambda: _vlkit_cold(candidates, references), repeats=3)
    if abs(vlkit_score - peer_score) > 1e-9:
        raise AssertionError(f"CIDEr-D differs: vlkit {vlkit_score!r}, pycocoevalcap {peer_score!r}")
    start = time.perf_counter()
    cider_d(candidates, references)
    warm_seconds = time.perf_counter() - start
    speedup = peer_seconds / vlkit_seconds
    return [
        BenchRow(
            "cider",
            f"CIDEr-D end to end, {n_images} images x 5 refs + 1 candidate",
            vlkit_seconds,
            peer_seconds,
            "s",
            False,
            f">= {TARGET_SPEEDUP:.0f}x faster, same score (1e-9)",
            speedup >= TARGET_SPEEDUP,
            COMMAND + (" --quick" if quick else ""),
            f"score {vlkit_score:.6f} on both sides; vlkit {speedup:.1f}x faster (tokenizer memory cleared "
            f"before each run; {peer_seconds / warm_seconds:.1f}x with it warm)",
        )
    ]
