"""A video captioner's frozen-encoder features go through the feature cache keyed by the sampling settings:
the same sampling reuses a folder, another sampling (or frame pooling) gets its own, and a cached row is
what the captioner computes from the clip's frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.models.tiny_captioner import save_tiny_parts
from vlkit.data.video import VideoSampling, read_video, write_video
from vlkit.models.captioner.model import CaptionerSpec, build_captioner
from vlkit.train.feature_cache import build_feature_cache
from vlkit.train.video_features import video_parts


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp("video_cache")
    clip, _, gpt2 = save_tiny_parts(root / "parts")
    rng = np.random.default_rng(0)
    paths = []
    for k in range(3):
        frames = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(6)]
        path = root / f"clip_{k}.mp4"
        write_video(path, frames, fps=6)
        paths.append(path)
    spec = CaptionerSpec(str(clip), str(gpt2), "cross-attn", temporal="seq", frames=4)
    return build_captioner(spec), paths, root / "cache"


def test_the_cache_is_keyed_by_the_sampling_settings(setting):
    captioner, paths, root = setting
    uniform = build_feature_cache(captioner, video_parts(paths, VideoSampling(frames=4), 2), root)
    again = build_feature_cache(captioner, video_parts(paths, VideoSampling(frames=4), 2), root)
    head = build_feature_cache(captioner, video_parts(paths, VideoSampling(frames=4, mode="head"), 2), root)
    two = build_feature_cache(captioner, video_parts(paths, VideoSampling(frames=2), 2), root)
    pooled = build_feature_cache(captioner, video_parts(paths, VideoSampling(frames=4), 1), root)
    assert not uniform.reused and again.reused and again.folder == uniform.folder
    assert len({uniform.folder, head.folder, two.folder, pooled.folder}) == 4
    assert '"sampling": "head-4"' in (head.folder / "meta.json").read_text()
    assert uniform.rows([0]).shape == (1, 4 * 5, 32)  # 4 frames x (CLS + 2x2 pooled patches)
    assert two.rows([0]).shape == (1, 2 * 5, 32)
    assert pooled.rows([0]).shape == (1, 4 * 2, 32)
    # A cached row is the captioner's own encoding of the clip as sampled.
    frames = read_video(paths[1], VideoSampling(frames=4)).frames
    expected = captioner.encode_videos([frames])
    assert torch.allclose(uniform.rows([1]), expected, atol=1e-5)
    assert not torch.allclose(head.rows([1]), expected, atol=1e-3)
