"""The logits processors behind `DecodingConfig`'s sampling and repetition controls, handed to transformers'
`generate`.

transformers supplies the processors themselves (temperature, top-k, top-p, the repetition penalty, the
n-gram ban); this module adds two things it lacks. First, a seeded draw per image: `generate(do_sample=True)`
samples the whole batch with `torch.multinomial` on the global generator, so an image's caption would depend
on which images share its batch, on their order and on whatever else drew random numbers before. Here
`generate` runs greedy search over scores that `SeededDraw` has already reduced to one token per row, drawn
from a generator of that image's own, seeded from (seed, image index). Second, the decoder's start token is
kept out of the repetition controls: the captioners' start token is the end token (GPT-2 has no separate
one), so transformers' penalty would count the end token as already said and make every caption less likely
to end from its first step, and a ban on repeated 1-grams would forbid ending at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.generation.logits_process import (
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from vlkit.captioning.config import DecodingConfig


def image_seed(seed: int, index: int) -> int:
    """The seed of image `index`'s generator: a hash of both, so that no two (seed, index) pairs share a
    stream (seed + index would give seed 1's image 0 the draws of seed 0's image 1)."""
    digest = hashlib.blake2b(f"{seed}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & (2**63 - 1)


class SeededDraw(LogitsProcessor):
    """Draw each row's next token from softmax(scores) with that row's own generator and leave it the only
    token with a finite score, so that greedy search takes it. Row b is image `indices[b]`; its generator
    advances once per step whatever the other rows do. One instance serves one `generate` call."""

    def __init__(self, seed: int, indices: Sequence[int]):
        self.seeds = [image_seed(seed, index) for index in indices]
        self.generators: list[torch.Generator] | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self.seeds):
            raise RuntimeError(f"SeededDraw: {scores.shape[0]} rows for {len(self.seeds)} images")
        if self.generators is None:
            self.generators = [torch.Generator(scores.device).manual_seed(s) for s in self.seeds]
        probabilities = scores.float().softmax(-1)  # (B, vocab); filtered tokens have probability 0
        drawn = torch.cat(
            [
                torch.multinomial(p, 1, generator=g)
                for p, g in zip(probabilities, self.generators, strict=True)
            ]
        )  # (B,)
        only = torch.full_like(scores, -float("inf"))
        return only.scatter_(1, drawn[:, None], 0.0)


class CaptionTokensOnly(LogitsProcessor):
    """Run `processor` on the caption so far, without the decoder's start token (see the module's doc)."""

    def __init__(self, processor: LogitsProcessor):
        self.processor = processor

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return self.processor(input_ids[:, 1:], scores)


def decoding_processors(config: DecodingConfig, indices: Sequence[int]) -> LogitsProcessorList:
    """The processors for one `generate` call over images `indices`: the repetition controls, then, when
    sampling, temperature, top-k and top-p (transformers' own order) and the seeded draw."""
    processors = LogitsProcessorList()
    if config.repetition_penalty != 1.0:
        penalty = RepetitionPenaltyLogitsProcessor(float(config.repetition_penalty))
        processors.append(CaptionTokensOnly(penalty))
    if config.no_repeat_ngram_size:
        processors.append(CaptionTokensOnly(NoRepeatNGramLogitsProcessor(config.no_repeat_ngram_size)))
    if config.sample:
        if config.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(float(config.temperature)))
        if config.top_k:
            processors.append(TopKLogitsWarper(config.top_k))
        if config.top_p < 1.0:
            processors.append(TopPLogitsWarper(float(config.top_p)))
        processors.append(SeededDraw(config.sampling_seed, indices))
    return processors
