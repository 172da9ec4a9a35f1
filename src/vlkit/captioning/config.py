"""How captions are decoded, as plain data (torch-free: the CLI builds `--beams` and the rest from it)."""

from __future__ import annotations

from dataclasses import dataclass

from vlkit.runtime.options import option, positive, require

_SAMPLING_ONLY = {"top_p": 1.0, "top_k": 0, "temperature": 1.0, "seed": None}  # field -> its value when off


@dataclass
class DecodingConfig:
    """How to decode: greedy search (the default), beam search (`num_beams > 1`) or, with `sample`, each
    token drawn from the model's distribution, reshaped by `temperature`, then cut to the `top_k` most
    likely tokens and to the nucleus of mass `top_p` (transformers' order). `no_repeat_ngram_size` and
    `repetition_penalty` apply to all three and count only the caption's own tokens, never the start token.

    Sampling is reproducible per image: image i of the input draws from a generator of its own seeded from
    (`seed`, i), so the same seed gives the same captions on a rerun whatever the batch size, the number of
    processes, or what else drew random numbers, as long as the model's logits are the same (batching can
    change their last float bits, which moves a draw only when it falls right on a boundary). Image i is its
    place in the input of `predict_captions`, `caption_images` or `caption_features` (from `first_index`);
    in shards, sample j of shard k is image k * 2**32 + j.
    """

    num_beams: int = option(1, "--beams", "Beam width; 1 is greedy search (or sampling, with --sample).")
    max_new_tokens: int | None = option(
        None, "--max-length", "Longest caption in tokens (default: the captioner's training length)."
    )
    length_penalty: float = option(
        1.0, "--length-penalty", "Beam score = log-prob / length ** X (beam search only)."
    )
    batch_size: int = option(32, "--batch-size", "Images per generate call.")
    sample: bool = option(
        False, "--sample/--no-sample", "Draw each token from the model's distribution (seeded per image)."
    )
    top_p: float = option(
        1.0,
        "--top-p",
        "Nucleus sampling: draw from the most likely tokens of mass P (1: all; with --sample).",
    )
    top_k: int = option(0, "--top-k", "Draw from the K most likely tokens (0: all; with --sample).")
    temperature: float = option(
        1.0, "--temperature", "Divide the logits by T before drawing (below 1: surer; with --sample)."
    )
    seed: int | None = option(
        None, "--seed", "Seed of the draws: image i draws from (SEED, i) (default 0; with --sample)."
    )
    no_repeat_ngram_size: int = option(
        0, "--no-repeat-ngram", "Never repeat an n-gram of N tokens within a caption (0: off)."
    )
    repetition_penalty: float = option(
        1.0,
        "--repetition-penalty",
        "Divide the logit of every token the caption already has by X, if positive, else multiply (1: off).",
    )

    def __post_init__(self) -> None:
        positive(self, "num_beams", "batch_size", "temperature", "repetition_penalty")
        positive(self, "max_new_tokens", allow_none=True)
        require(self, "top_p", 0 < self.top_p <= 1, f"must be in (0, 1], got {self.top_p}")
        require(self, "top_k", self.top_k >= 0, f"must be 0 (no cut) or more, got {self.top_k}")
        require(
            self,
            "no_repeat_ngram_size",
            self.no_repeat_ngram_size >= 0,
            f"must be 0 (off) or more, got {self.no_repeat_ngram_size}",
        )
        if self.sample:
            require(
                self,
                "num_beams",
                self.num_beams == 1,
                f"must be 1 when sampling (beam sampling is not offered), got {self.num_beams}",
            )
            return
        for name, off in _SAMPLING_ONLY.items():
            value = getattr(self, name)
            require(self, name, value == off, f"{value} applies only when sampling (sample=True, --sample)")

    @property
    def sampling_seed(self) -> int:
        """The seed the draws use: `seed`, or 0 where none was given."""
        return 0 if self.seed is None else self.seed

    def describe(self) -> str:
        """The decoding in a few words: "greedy", "3-beam", "top-p 0.9 sampled (seed 0)", ..., the repetition
        controls after."""
        if self.sample:
            cuts = [
                f"T {self.temperature}" if self.temperature != 1.0 else "",
                f"top-k {self.top_k}" if self.top_k else "",
                f"top-p {self.top_p}" if self.top_p < 1.0 else "",
            ]
            words = f"{' '.join(c for c in cuts if c) or 'plain'} sampled (seed {self.sampling_seed})"
        else:
            words = "greedy" if self.num_beams == 1 else f"{self.num_beams}-beam"
        controls = [
            f"no repeated {self.no_repeat_ngram_size}-grams" if self.no_repeat_ngram_size else "",
            f"repetition penalty {self.repetition_penalty}" if self.repetition_penalty != 1.0 else "",
        ]
        return ", ".join([words, *(c for c in controls if c)])
