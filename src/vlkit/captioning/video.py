"""Captions for video clips, and where in time the decoder looked for each word.

A video captioner (`vlkit.models.captioner.temporal`) reads its clips' frames through the encoder, pools each
frame's tokens and hands them to `vlkit.captioning.generate.caption_features`, which decodes as for images
(transformers' `generate`). Clips are read with `vlkit.data.video.read_video`, sampled as the captioner was
trained (`VideoSettings.frames` and `frame_sampling`). `frame_attention` reduces the cross-attention of each
generated word to one weight per frame (the attention summed over that frame's tokens): the frames x words
figures of `vlkit caption attend` and of the video study.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vlkit.captioning.attention import Aggregation
from vlkit.captioning.config import DecodingConfig
from vlkit.captioning.generate import CaptionOutput, caption_features
from vlkit.errors import VlkitError
from vlkit.models.captioner.model import Captioner
from vlkit.runtime.distributed import gather_in_order, process_range
from vlkit.runtime.progress import track


def caption_videos(
    captioner: Captioner,
    clips: Sequence[Sequence[Image.Image]],
    config: DecodingConfig | None = None,
    return_attentions: bool = False,
    first_index: int = 0,
) -> CaptionOutput:
    """Caption clips given as lists of RGB frames (the same count each), `config.batch_size` at a time."""
    config = config or DecodingConfig()
    outputs = []
    for start in range(0, len(clips), config.batch_size):
        features = captioner.encode_videos(clips[start : start + config.batch_size])
        outputs.append(caption_features(captioner, features, config, return_attentions, first_index + start))
    if not outputs:
        raise VlkitError("caption_videos: no clips")
    joined = outputs[0]
    for more in outputs[1:]:
        joined.captions += more.captions
        joined.token_ids += more.token_ids
        joined.tokens += more.tokens
        if joined.attentions is not None and more.attentions is not None:
            joined.attentions += more.attentions
    return joined


def video_sampling(captioner: Captioner):
    """The `VideoSampling` the captioner was trained with (its frames and mode)."""
    from vlkit.data.video import VideoSampling

    settings = captioner.video_settings()
    return VideoSampling(frames=settings.frames, mode=settings.frame_sampling)


def predict_video_captions(
    captioner: Captioner, paths: Sequence[Path], config: DecodingConfig | None = None
) -> dict[str, str]:
    """Caption video files: {file name without extension: caption}, sampled as the captioner was trained.
    Under `accelerate launch` each process captions its contiguous share; every process gets them all."""
    from vlkit.data.video import read_video

    config = config or DecodingConfig()
    sampling = video_sampling(captioner)
    share = process_range(len(paths))
    pairs: list[tuple[str, str]] = []
    batch: list[Path] = []

    def flush() -> None:
        clips = [read_video(path, sampling).frames for path in batch]
        captions = caption_videos(captioner, clips, config, first_index=share.start + len(pairs)).captions
        pairs.extend((path.stem, caption) for path, caption in zip(batch, captions, strict=True))
        batch.clear()

    for i in track(share, "caption videos", total=len(share)):
        batch.append(paths[i])
        if len(batch) == config.batch_size:
            flush()
    if batch:
        flush()
    return dict(gather_in_order(pairs))


def frame_attention(
    attentions: torch.Tensor, frames: int, frame_tokens: int, aggregation: Aggregation | None = None
) -> np.ndarray:
    """(words, layers, heads, frames * frame tokens) cross-attention -> (frames, words): each word's attention
    summed over each frame's tokens, heads and layers reduced as `aggregation` says (a layer's map, or their
    mean; rollout has no meaning across frames and is refused). Each column sums to 1."""
    aggregation = aggregation or Aggregation()
    if frames < 1:
        raise VlkitError("frame attention: this captioner's tokens belong to no frame (meanp averages them)")
    if attentions.dim() != 4 or attentions.shape[-1] != frames * frame_tokens:
        raise VlkitError(
            f"frame attention: expected (words, layers, heads, {frames} x {frame_tokens} tokens), got "
            f"{tuple(attentions.shape)}"
        )
    attn = attentions.float()
    per_layer = attn.mean(dim=2) if aggregation.heads == "mean" else attn.amax(dim=2)  # (W, L, F * T)
    layers = aggregation.layers
    if layers == "rollout":
        raise VlkitError("--layers rollout: not defined over frames (choose mean, last or a layer index)")
    if layers == "mean":
        reduced = per_layer.mean(dim=1)
    else:
        index = per_layer.shape[1] - 1 if layers == "last" else int(layers)
        if not -per_layer.shape[1] <= index < per_layer.shape[1]:
            raise VlkitError(f"--layers: layer {index} does not exist (the decoder has {per_layer.shape[1]})")
        reduced = per_layer[:, index]
    per_frame = reduced.reshape(len(reduced), frames, frame_tokens).sum(dim=-1)  # (W, F)
    per_frame = per_frame / per_frame.sum(dim=-1, keepdim=True).clamp_min(1e-30)
    return per_frame.T.numpy()  # (F, W)
