"""A video captioner's training inputs: clips as the frozen encoder's pooled frame tokens in the feature
cache, keyed by the sampling settings, or as frames' pixels when the encoder trains.

The feature cache (`vlkit.train.feature_cache`) does the storing, the parts and the reuse; this module only
tells it what a "row" is for a video: the clip's frames read with `vlkit.data.video.read_video` under a
`VideoSampling`, through `Captioner.encode_videos` (every frame encoded, its tokens pooled). The sampling's
`key()` and the frame pooling join the cache key by name, so 8 uniform frames and 16, or a 2x2 pool and a
3x3 one, never share a folder, and meta.json says which is which.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vlkit.data.video import VideoSampling, read_video
from vlkit.errors import VlkitError
from vlkit.models.captioner.model import Captioner
from vlkit.train.feature_cache import PART_SIZE, ImageParts, images_fingerprint


def captioner_sampling(captioner: Captioner) -> VideoSampling:
    """How the captioner's clips are sampled: its frames and mode."""
    settings = captioner.video_settings()
    return VideoSampling(frames=settings.frames, mode=settings.frame_sampling)


def video_parts(
    paths: Sequence[Path], sampling: VideoSampling, frame_pool: int, part_size: int = PART_SIZE
) -> ImageParts:
    """Clips to encode into a feature cache, `part_size` a part: row i is clip i's pooled frame tokens."""
    if not paths:
        raise VlkitError("feature cache: no videos")
    chunks = [list(paths[start : start + part_size]) for start in range(0, len(paths), part_size)]
    key = {"sampling": sampling.key(), "frame_pool": str(frame_pool)}
    return ImageParts(
        f"video:{sampling.key()}:pool-{frame_pool}:{images_fingerprint(paths)}/{part_size}",
        [len(chunk) for chunk in chunks],
        lambda k: (read_video(path, sampling).frames for path in chunks[k]),
        encode=lambda captioner, clips: captioner.encode_videos(clips, frame_pool),
        key_fields=key,
    )


def captioner_video_parts(captioner: Captioner, paths: Sequence[Path]) -> ImageParts:
    """`video_parts` sampled and pooled as the captioner reads clips."""
    return video_parts(paths, captioner_sampling(captioner), captioner.video_settings().frame_pool)


class VideoPixels:
    """Batch clips read from disk as frames' pixels (B, F, 3, H, W), for a method that trains the encoder."""

    def __init__(self, captioner: Captioner, paths: Sequence[Path]):
        self.captioner, self.paths = captioner, list(paths)
        self.sampling = captioner_sampling(captioner)

    def __call__(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        clips = [read_video(self.paths[i], self.sampling).frames for i in indices]
        pixels = self.captioner.preprocess([frame for frames in clips for frame in frames])
        return {"frame_pixels": pixels.reshape(len(clips), len(clips[0]), *pixels.shape[1:])}
