"""Video decoding: vlkit's `read_video` against a plain PyAV decode loop over the same frames.

The peer is what a user writes with PyAV alone: open the file, decode in order, convert the frames wanted to
RGB PIL images, stop after the last one. vlkit's reader does the same work plus its checks (file, stream,
frame count, truncation) and its bookkeeping (timestamps), so the ratio is what the wrapper costs; the
target is >= 0.9x. Both sides must return the same pixels (asserted).

The videos are written here with `write_video` (H.264, yuv420p, x264's default GOP), MSVD-sized: 320x240 at
30 fps, 3 s each, smooth moving content so that encoding them takes seconds. Two rows: 8 frames sampled
uniformly (the captioner's default) and every frame of each video.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import av
import numpy as np

from bench.common import BenchRow, best_of
from vlkit.data.video import VideoSampling, read_video, write_video

COMMAND = "python -m bench video"
TARGET_RATIO = 0.9


def _make_videos(folder: Path, n_videos: int, n_frames: int, width: int, height: int) -> list[Path]:
    ys, xs = np.mgrid[0:height, 0:width]
    paths = []
    for v in range(n_videos):
        frames = []
        for t in range(n_frames):
            phase = (xs + 3 * t + 17 * v) / width * 2 * np.pi
            red = 127 + 100 * np.sin(phase)
            green = 127 + 100 * np.cos((ys - 2 * t) / height * 2 * np.pi)
            blue = np.full_like(red, (40 * v + 5 * t) % 256)
            frame = np.stack([red, green, blue], axis=-1).astype(np.uint8)
            x0 = (5 * t + 11 * v) % (width - 40)
            frame[100:140, x0 : x0 + 40] = (250, 250, 250)  # a square moving right
            frames.append(frame)
        path = folder / f"video{v}.mp4"
        write_video(path, frames, fps=30, crf=23)
        paths.append(path)
    return paths


def _plain_pyav(path: Path, n_wanted: int | None) -> list:
    """The peer: PyAV alone, frame indices as the middle of equal segments (or every frame)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        total = stream.frames
        if n_wanted is None:
            wanted = list(range(total))
        else:
            wanted = [((2 * k + 1) * total) // (2 * n_wanted) for k in range(n_wanted)]
        wanted_set, last, images = set(wanted), max(wanted), {}
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted_set:
                images[index] = frame.to_image()
            if index == last:
                break
    return [images[i] for i in wanted]


def _row(paths: list[Path], n_wanted: int | None, n_frames: int, quick: bool) -> BenchRow:
    sampling = VideoSampling(frames=n_wanted or n_frames, mode="uniform" if n_wanted else "head")
    repeats = 3 if quick else 7
    # Interleaved, one round of each side at a time, so that a change in the machine's load hits both.
    peer_s = vlkit_s = float("inf")
    for _ in range(repeats):
        seconds, peer_frames = best_of(lambda: [_plain_pyav(p, n_wanted) for p in paths], repeats=1)
        peer_s = min(peer_s, seconds)
        seconds, vlkit_videos = best_of(lambda: [read_video(p, sampling) for p in paths], repeats=1)
        vlkit_s = min(vlkit_s, seconds)
    for video, frames in zip(vlkit_videos, peer_frames, strict=True):
        if len(video.frames) != len(frames) or any(
            np.asarray(a).tobytes() != np.asarray(b).tobytes()
            for a, b in zip(video.frames, frames, strict=True)
        ):
            raise AssertionError(f"{video.file}: vlkit's frames differ from PyAV's")
    delivered = sum(len(frames) for frames in peer_frames)
    vlkit_rate, peer_rate = delivered / vlkit_s, delivered / peer_s
    what = f"{n_wanted} frames sampled uniformly" if n_wanted else "every frame"
    return BenchRow(
        "video",
        f"video decode, {what} of {len(paths)} H.264 videos ({n_frames} frames each)",
        vlkit_rate,
        peer_rate,
        "frames/s",
        True,
        f">= {TARGET_RATIO}x the plain PyAV loop",
        vlkit_rate >= TARGET_RATIO * peer_rate,
        COMMAND + (" --quick" if quick else ""),
        f"RGB PIL frames delivered per second, best of {repeats} interleaved rounds; PyAV {av.__version__}; "
        "same pixels on both "
        "sides; both decode each video up to the last frame wanted",
    )


def run(quick: bool) -> list[BenchRow]:
    n_videos, n_frames = (3, 30) if quick else (12, 90)
    width, height = (160, 120) if quick else (320, 240)
    with tempfile.TemporaryDirectory(prefix="vlkit-bench-video-") as folder:
        paths = _make_videos(Path(folder), n_videos, n_frames, width, height)
        return [_row(paths, 8, n_frames, quick), _row(paths, None, n_frames, quick)]
