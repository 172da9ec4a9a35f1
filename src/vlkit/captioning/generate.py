"""Captions from a captioner: greedy search, beam search or seeded sampling, batched, and on request the
cross-attention behind every generated token (for attention maps).

transformers' `generate` does the decoding (with the decoder's key/value cache; beam search with its length
penalty; the sampling warpers and repetition controls, handed to it by `vlkit.captioning.sampling`). This
module runs the encoder itself, so that precomputed features (the trainer's feature cache) and images go
through one path, cuts each sequence at its end token and decodes it. Attention is not taken from
`generate`'s own outputs, whose beam-search attentions follow the beams as they were at each step and would
have to be re-threaded through `beam_indices`; instead the finished captions are run once more through the
decoder with teacher forcing, which gives, causally, exactly the attention each token was generated
with. That pass uses the "eager" attention implementation, the only one that returns weights.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from transformers.modeling_outputs import BaseModelOutput

from vlkit.captioning.config import DecodingConfig
from vlkit.captioning.sampling import decoding_processors
from vlkit.data.images import read_image
from vlkit.data.shards import ShardSample, map_shards
from vlkit.errors import ConfigError, VlkitError
from vlkit.models.captioner.model import Captioner
from vlkit.runtime.distributed import gather_in_order, process_range
from vlkit.runtime.progress import track

log = logging.getLogger(__name__)

SHARD_STRIDE = 2**32  # sample j of shard k is image k * SHARD_STRIDE + j (its sampling seed's index)


@dataclass
class CaptionOutput:
    """One caption per image, in input order, with its tokens and (on request) its cross-attention."""

    captions: list[str]
    token_ids: list[list[int]]  # the generated ids, without the start token, the end token kept if reached
    tokens: list[list[str]]  # each id decoded on its own
    # Per image, (generated tokens, decoder layers, heads, image tokens): the cross-attention of the decoder
    # position that produced each token; each row sums to 1. None unless asked for.
    attentions: list[torch.Tensor] | None
    patch_grid: tuple[int, int]  # (rows, columns) of the encoder's patch tokens
    # Image tokens before the patch grid, as the encoder lays them out: CLS for CLIP, ViT and open_clip, CLS
    # and registers for a timm ViT with them, none for SigLIP (`Captioner.prefix_tokens`).
    prefix_tokens: int
    # A video captioner's: the frames its attended tokens are laid out over (frame after frame, each of
    # `frame_tokens` tokens; 0 frames for meanp, whose tokens are means over the frames). 0 for images.
    frames: int = 0
    frame_tokens: int = 0


def caption_images(
    captioner: Captioner,
    images: Sequence[Image.Image],
    config: DecodingConfig | None = None,
    return_attentions: bool = False,
    first_index: int = 0,
) -> CaptionOutput:
    """Caption RGB images (preprocessed by the captioner's image processor), `config.batch_size` at a time.
    `first_index` is the index of `images[0]` in a longer input, which seeds its sampling (DecodingConfig)."""
    config = config or DecodingConfig()
    parts = []
    for start in range(0, len(images), config.batch_size):
        pixels = captioner.preprocess(images[start : start + config.batch_size])
        features = captioner.encode_images(pixels)
        parts.append(_caption_batch(captioner, features, config, return_attentions, first_index + start))
    return _join(captioner, parts, return_attentions)


def predict_captions(
    captioner: Captioner, paths: Sequence[Path], config: DecodingConfig | None = None
) -> dict[str, str]:
    """Caption image files, `config.batch_size` at a time: {file name without extension: caption} (DLCV).
    Under `accelerate launch` each process captions its contiguous share and every process gets all the
    captions back, in input order."""
    share = process_range(len(paths))
    named = ((paths[i].stem, read_image(paths[i])) for i in share)
    config = config or DecodingConfig()
    return dict(gather_in_order(_caption_named(captioner, named, config, len(share), share.start)))


def _caption_named(
    captioner: Captioner,
    named: Iterable[tuple[str, Image.Image]],
    config: DecodingConfig,
    total: int | None = None,
    first_index: int = 0,
) -> list[tuple[str, str]]:
    """(name, caption) for a stream of (name, image), `config.batch_size` images in memory at a time; the
    stream's first image is image `first_index` (for the sampling seeds)."""
    pairs: list[tuple[str, str]] = []
    batch: list[tuple[str, Image.Image]] = []

    def flush() -> None:
        images = [image for _, image in batch]
        captions = caption_images(captioner, images, config, first_index=first_index + len(pairs)).captions
        pairs.extend((name, caption) for (name, _), caption in zip(batch, captions, strict=True))
        batch.clear()

    for item in track(named, "caption", total=total):
        batch.append(item)
        if len(batch) == config.batch_size:
            flush()
    if batch:
        flush()
    return pairs


def caption_features(
    captioner: Captioner,
    features: torch.Tensor,
    config: DecodingConfig | None = None,
    return_attentions: bool = False,
    first_index: int = 0,
) -> CaptionOutput:
    """Caption from precomputed encoder tokens (B, N, encoder width), e.g. rows of a feature cache; row 0 is
    image `first_index` (for the sampling seeds). A video captioner's features are its clips' pooled frame
    tokens (B, frames * frame tokens, encoder width), as `Captioner.encode_videos` makes them."""
    config = config or DecodingConfig()
    parts = [
        _caption_batch(
            captioner,
            features[start : start + config.batch_size],
            config,
            return_attentions,
            first_index + start,
        )
        for start in range(0, len(features), config.batch_size)
    ]
    output = _join(captioner, parts, return_attentions)
    video = captioner.video
    if video is not None:
        output.frame_tokens = video.frame_tokens
        output.frames = captioner.model.temporal.output_frames(features.shape[1] // video.frame_tokens)
    return output


@dataclass
class _Batch:
    token_ids: list[list[int]]
    attentions: list[torch.Tensor] | None


@torch.inference_mode()
def _caption_batch(
    captioner: Captioner,
    features: torch.Tensor,
    config: DecodingConfig,
    return_attentions: bool,
    first_index: int,
) -> _Batch:
    model = captioner.model
    limit = _token_limit(captioner)
    max_new = config.max_new_tokens or captioner.max_caption_tokens
    if max_new > limit:
        raise ConfigError(
            DecodingConfig, "max_new_tokens", f"{max_new} tokens is over this captioner's limit of {limit}"
        )
    layout = captioner.token_layout()
    video = captioner.video
    if video is not None:
        if features.shape[1] % video.frame_tokens:
            raise VlkitError(
                f"the video features have {features.shape[1]} tokens, not whole frames of "
                f"{video.frame_tokens} tokens (frame_pool {video.frame_pool})"
            )
    elif features.shape[1] != layout.tokens:
        raise VlkitError(
            f"the image features have {features.shape[1]} tokens, but the encoder lays out "
            f"{layout.prefix_tokens} prefix tokens and a {layout.grid[0]}x{layout.grid[1]} patch grid"
        )
    features = features.to(captioner.device, next(model.parameters()).dtype)  # (B, N, C)
    was_training = model.training
    model.eval()
    try:
        with _errors_only("transformers.generation.utils", "transformers.modeling_utils"):
            # Neither images nor the captions being generated are padded (the start token merely equals the
            # padding token, GPT-2 style), so transformers' advice to pass an attention mask does not apply.
            sequences = model.generate(
                encoder_outputs=BaseModelOutput(last_hidden_state=features),
                num_beams=config.num_beams,
                max_new_tokens=max_new,
                length_penalty=config.length_penalty,
                # Sampling too runs as greedy search: the processors' seeded draw leaves one token per row.
                do_sample=False,
                logits_processor=decoding_processors(config, range(first_index, first_index + len(features))),
            )  # (B, 1 + generated)
        token_ids = [_until_end(row[1:].tolist(), captioner.tokenizer.eos_token_id) for row in sequences]
        attentions = (
            _cross_attentions(captioner, features, sequences, token_ids) if return_attentions else None
        )
    finally:
        model.train(was_training)
    return _Batch(token_ids, attentions)


def _token_limit(captioner: Captioner) -> int:
    """Most tokens a caption can have: the decoder's positions less those the tuning method reserves."""
    reserved = captioner.method.reserved_positions(captioner.tuning_config)
    return int(captioner.model.decoder.config.n_positions) - reserved


def _until_end(ids: list[int], end: int) -> list[int]:
    return ids[: ids.index(end) + 1] if end in ids else ids


def _cross_attentions(
    captioner: Captioner, features: torch.Tensor, sequences: torch.Tensor, token_ids: list[list[int]]
) -> list[torch.Tensor]:
    """Teacher-force the finished sequences; token j was produced at decoder position j - 1."""
    model = captioner.model
    with _attention_implementation(model, "eager"):
        out = model(
            encoder_outputs=BaseModelOutput(last_hidden_state=features),
            decoder_input_ids=sequences[:, :-1],
            output_attentions=True,
        )
    stacked = torch.stack(out.cross_attentions, dim=1)  # (B, layers, heads, positions, image tokens)
    per_token = stacked.permute(0, 3, 1, 2, 4).float().cpu()  # (B, positions, layers, heads, image tokens)
    return [per_token[b, : len(ids)].clone() for b, ids in enumerate(token_ids)]


def _join(captioner: Captioner, parts: list[_Batch], return_attentions: bool) -> CaptionOutput:
    tokenizer = captioner.tokenizer
    token_ids = [ids for part in parts for ids in part.token_ids]
    end = tokenizer.eos_token_id
    captions = [
        tokenizer.decode([i for i in ids if i != end], skip_special_tokens=True).strip() for ids in token_ids
    ]
    tokens = [[tokenizer.decode([i]) for i in ids] for ids in token_ids]
    attentions = [a for part in parts for a in part.attentions or []] if return_attentions else None
    layout = captioner.token_layout()
    return CaptionOutput(
        captions=captions,
        token_ids=token_ids,
        tokens=tokens,
        attentions=attentions,
        patch_grid=layout.grid,
        prefix_tokens=layout.prefix_tokens,
    )


@contextlib.contextmanager
def _attention_implementation(model: torch.nn.Module, implementation: str) -> Iterator[None]:
    """Switch the decoder's attention implementation for a block (the encoder is not run inside it)."""
    previous = model.decoder.config._attn_implementation
    model.decoder.set_attn_implementation(implementation)
    try:
        yield
    finally:
        model.decoder.set_attn_implementation(previous)


@contextlib.contextmanager
def _errors_only(*logger_names: str) -> Iterator[None]:
    def only_errors(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR

    loggers = [logging.getLogger(name) for name in logger_names]
    for logger in loggers:
        logger.addFilter(only_errors)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(only_errors)


def predict_shard_captions(
    captioner: Captioner, urls: Sequence[str], config: DecodingConfig | None = None
) -> dict[str, str]:
    """Caption every sample of WebDataset shards (local paths or URLs, as `vlkit.data.shards.expand_shards`
    gives them), `config.batch_size` images in memory at a time: {file stem: caption}, in shard order.
    Under `accelerate launch` process p streams shards p, p+N, ... and every process gets all the captions
    back in shard order. Sample j of shard k draws its sampling from image index k * 2**32 + j."""
    config = config or DecodingConfig()

    def caption_shard(url: str, samples: Iterator[ShardSample]) -> list[tuple[str, str]]:
        named = ((Path(s.file_name).stem, s.image) for s in samples)
        return _caption_named(captioner, named, config, first_index=urls.index(url) * SHARD_STRIDE)

    predictions: dict[str, str] = {}
    for pairs in map_shards(urls, caption_shard, "caption shards"):
        for stem, caption in pairs:
            if stem in predictions:
                raise VlkitError(f"shards: two samples share the file stem {stem!r}")
            predictions[stem] = caption
    return predictions
