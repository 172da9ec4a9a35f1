"""The one video reader of vlkit: every frame any command or model sees comes through `read_video`.

PyAV (`av`, whose wheels bundle FFmpeg) demuxes and decodes; it is imported lazily and lives in the `video`
extra (`pip install 'vlkit[video]'`). torchvision's video reading is deprecated and decord has had no release
since 2021, which is why neither is used. This module only decides which frames to keep and what a bad
file is, the same way everywhere:

- **Sampling** (`VideoSampling`): "uniform" takes the middle frame of each of `frames` equal segments (the
  default, as CLIP4Clip and most captioners sample); "rate" takes frames `1 / rate` seconds apart from the
  start, at most `frames` of them (by frame index at the stream's average rate); "head" / "tail" take the
  first / last `frames` frames. A clip with fewer frames than asked gives all of them and then repeats its
  last frame, so every mode but "rate" returns exactly `frames` frames. Each frame's timestamp (seconds from
  the stream's start) is recorded.
- **Frames are 8-bit RGB PIL images**, decoded in presentation order; only the sampled ones are converted.
- **Bad files are errors, never guesses.** A missing or empty file, a file that is not a video, a container
  with no video stream, a stream with zero frames, a truncated or corrupt file, and a codec this FFmpeg
  build cannot decode each raise one `VlkitError` that names the file. A stream that decodes to fewer
  frames than its container declares is truncated; only when it quietly loses a few (over
  SHORTFALL_TOLERANCE of them decode: an index counting a frame an edit list drops) is it read as it is.

`read_videos` applies a `BadVideoPolicy` to many files: "error" stops at the first bad one, "skip" logs it,
counts it and goes on (as `images.read_images` does for images).

`write_video` writes H.264 in MP4 through the libx264 that PyAV's wheels bundle (checked in av 18.1.0's;
a build without it is a `VlkitError` naming the encoder, since a fallback to mpeg4 would silently change
what the files are), with the index at the front (`+faststart`) and one encoder thread, so the same frames
give the same bytes on any machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from PIL import Image

from vlkit.data.images import check_nonempty_file
from vlkit.errors import ConfigError, VlkitError
from vlkit.runtime import progress
from vlkit.runtime.options import option

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov")
SAMPLING_MODES: tuple[str, ...] = ("uniform", "rate", "head", "tail")
BadVideoPolicy = Literal["error", "skip"]
BAD_VIDEO_POLICIES: tuple[str, ...] = ("error", "skip")

# The containers write_video writes, by file suffix (H.264 fits all three).
# A stream that decodes quietly to fewer frames than its container declares, but at least this share of them,
# is read over the frames it has (see read_video); under it, the file is truncated.
SHORTFALL_TOLERANCE = 0.9
_WRITE_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
# Leading bytes of the containers FFmpeg reads video from: a file that starts so but does not open is a
# broken video (e.g. an MP4 cut before its index), not "not a video".
_CONTAINER_MAGIC = ((4, b"ftyp"), (0, b"\x1a\x45\xdf\xa3"), (0, b"RIFF"), (4, b"moov"), (4, b"mdat"))


_MODE_HELP = "How frames are picked: uniform (middle frame of equal segments), rate, head, tail."


@dataclass(frozen=True)
class VideoSampling:
    """Which frames of a video to read. Each field is one CLI option (metadata "flag")."""

    frames: int = option(8, "--frames", "Frames sampled per video (for --sampling rate: at most this many).")
    mode: str = option("uniform", "--sampling", _MODE_HELP)
    rate: float | None = option(None, "--frame-rate", "Frames per second for --sampling rate.")

    def __post_init__(self) -> None:
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or self.frames < 1:
            raise ConfigError(VideoSampling, "frames", f"must be a positive integer, got {self.frames!r}")
        if self.mode not in SAMPLING_MODES:
            raise ConfigError(
                VideoSampling, "mode", f"must be one of {'/'.join(SAMPLING_MODES)}, not {self.mode!r}"
            )
        if self.mode == "rate" and (self.rate is None or not self.rate > 0):
            raise ConfigError(VideoSampling, "rate", f"mode 'rate' needs a positive rate, got {self.rate!r}")
        if self.mode != "rate" and self.rate is not None:
            raise ConfigError(VideoSampling, "rate", f"is only used by mode 'rate', not {self.mode!r}")

    def key(self) -> str:
        """A stable name of these settings for caches: "uniform-8", "head-16", "rate-2-8" (2 fps, max 8)."""
        if self.mode == "rate":
            return f"rate-{self.rate:g}-{self.frames}"
        return f"{self.mode}-{self.frames}"

    def indices(self, n_frames: int, fps: float) -> list[int]:
        """The frame indices (0-based, presentation order) these settings pick from `n_frames` frames."""
        if n_frames < 1:
            return []
        if self.mode == "rate":
            step = fps / self.rate if fps > 0 else 1.0
            picked = dict.fromkeys(int(k * step + 1e-9) for k in range(self.frames))
            return [i for i in picked if i < n_frames] or [0]
        if self.mode == "uniform" and n_frames >= self.frames:
            # The middle of segment k of n_frames / frames frames each, as exact integer arithmetic.
            chosen = [((2 * k + 1) * n_frames) // (2 * self.frames) for k in range(self.frames)]
        elif self.mode == "tail":
            chosen = list(range(max(0, n_frames - self.frames), n_frames))
        else:  # head, and uniform over a clip shorter than `frames`
            chosen = list(range(min(n_frames, self.frames)))
        return chosen + [chosen[-1]] * (self.frames - len(chosen))


@dataclass
class VideoFrames:
    """The frames `read_video` sampled from one file, with when each is shown."""

    file: Path
    frames: list[Image.Image]  # RGB, one per sampled index (repeats included)
    timestamps: list[float]  # seconds from the stream's start, one per frame
    fps: float
    duration: float  # seconds
    indices: list[int]  # the frame index of each frame
    n_frames: int  # frames in the whole stream

    @property
    def stem(self) -> str:
        """The file name without folder or extension: the key prediction files use."""
        return self.file.stem


@dataclass
class SkippedVideo:
    """A file the "skip" policy left out, and why (the `VlkitError` message it raised)."""

    path: Path
    reason: str


class VideoBatch(NamedTuple):
    """What `read_videos` read (unpacks as `videos, skipped = read_videos(...)`)."""

    videos: list[VideoFrames]
    skipped: list[SkippedVideo]


# ------------------------------------------------------------------------------------------------ reading


def read_video(path: str | os.PathLike[str], sampling: VideoSampling = VideoSampling()) -> VideoFrames:
    """Read the frames `sampling` picks from one video file, as RGB images with their timestamps.

    Raises `VlkitError` naming the file for a missing, empty or directory path, a file that is not a video,
    one with no video stream or zero frames, a truncated or corrupt file, and a codec FFmpeg cannot decode.
    """
    av = _import_av()
    path = Path(path)
    check_nonempty_file(path, "video")
    try:
        return _read(av, path, sampling, None)
    except _Shortfall as short:
        # Fewer frames than declared, yet no decode error: an index that counts a frame an edit list drops,
        # or a last frame lost. Close enough to the declared count, sample over the frames there are.
        if short.decoded < SHORTFALL_TOLERANCE * short.declared:
            raise VlkitError(
                f"{path}: truncated video: {short.decoded} of the {short.declared} frames its "
                "container declares decode"
            ) from None
        logger.warning(
            "%s: %d of %d declared frames decode; sampling over those", path, short.decoded, short.declared
        )
        return _read(av, path, sampling, short.decoded)


class _Shortfall(Exception):
    def __init__(self, decoded: int, declared: int):
        super().__init__(f"{decoded} of {declared} frames")
        self.decoded, self.declared = decoded, declared


def _read(av: Any, path: Path, sampling: VideoSampling, n_frames: int | None) -> VideoFrames:
    """One pass over the file; `n_frames` overrides the container's count of frames."""
    try:
        with av.open(str(path)) as container:
            stream = _video_stream(path, container)
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            n_frames = n_frames or stream.frames or _count_packets(path)
            if n_frames < 1:
                raise VlkitError(f"{path}: video stream has zero frames")
            wanted = sampling.indices(n_frames, fps)
            decoded = _decode_indices(path, container, stream, set(wanted), n_frames)
            duration = _duration(stream, container, n_frames, fps)
    except (VlkitError, _Shortfall):
        raise
    except av.error.DecoderNotFoundError as exc:
        raise VlkitError(f"{path}: video codec not supported by this FFmpeg build ({exc.strerror})") from exc
    except av.error.FFmpegError as exc:
        raise VlkitError(_open_failure(path, exc)) from exc
    except PermissionError as exc:
        raise VlkitError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    frames, timestamps = [decoded[i][0] for i in wanted], [decoded[i][1] for i in wanted]
    return VideoFrames(path, frames, timestamps, fps, duration, indices=wanted, n_frames=n_frames)


def read_videos(
    paths: Sequence[str | os.PathLike[str]],
    sampling: VideoSampling = VideoSampling(),
    *,
    on_bad: BadVideoPolicy = "error",
    bar: str | None = None,
) -> VideoBatch:
    """Read many videos with `read_video`; a bad one raises ("error") or is logged and left out ("skip").

    `bar` names a progress bar over the files (none by default: a caller reading batches shows its own)."""
    policy = check_policy(on_bad)
    batch = VideoBatch(videos=[], skipped=[])
    for path in progress.track(paths, bar, total=len(paths)) if bar else paths:
        try:
            batch.videos.append(read_video(path, sampling))
        except VlkitError as exc:
            if policy == "error":
                raise
            logger.warning("skipping video: %s", exc)
            batch.skipped.append(SkippedVideo(path=Path(path), reason=str(exc)))
    if batch.skipped:
        logger.warning("skipped %d of %d videos (on_bad='skip')", len(batch.skipped), len(paths))
    return batch


def check_policy(on_bad: str) -> BadVideoPolicy:
    """Validate a policy given as text (e.g. a CLI option)."""
    if on_bad not in BAD_VIDEO_POLICIES:
        raise VlkitError(f"on_bad: unknown policy {on_bad!r}; choose one of {', '.join(BAD_VIDEO_POLICIES)}")
    return on_bad  # type: ignore[return-value]


def list_videos(folder: str | os.PathLike[str]) -> list[Path]:
    """The video files directly in `folder` (by VIDEO_EXTENSIONS, any case), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VlkitError(f"{folder}: video folder not found")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())


def _import_av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise VlkitError("reading video needs PyAV: pip install 'vlkit[video]' (or pip install av)") from exc
    return av


def _video_stream(path: Path, container: Any) -> Any:
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams}) or ["none"]
        raise VlkitError(f"{path}: no video stream (streams: {', '.join(kinds)})")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise VlkitError(f"{path}: video codec not supported by this FFmpeg build (no decoder for it)")
    return stream


def _count_packets(path: Path) -> int:
    """Frames of a stream whose container does not declare them (Matroska, WebM): its packets, demuxed
    without decoding in a second pass over the file."""
    av = _import_av()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


def _decode_indices(
    path: Path, container: Any, stream: Any, wanted: set[int], n_frames: int
) -> dict[int, tuple[Image.Image, float]]:
    """Decode in order up to the last wanted index; (RGB image, seconds) of each wanted one."""
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    last, kept, index = max(wanted), {}, -1
    for index, frame in enumerate(container.decode(stream)):
        if index in wanted:
            seconds = float(frame.time) - start if frame.time is not None else 0.0
            kept[index] = (frame.to_image(), round(seconds, 6))
        if index == last:
            return kept
    if index < 0:
        raise VlkitError(
            f"{path}: truncated or corrupt video: no frame decodes (the stream declares {n_frames})"
        )
    raise _Shortfall(decoded=index + 1, declared=n_frames)


def _duration(stream: Any, container: Any, n_frames: int, fps: float) -> float:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return n_frames / fps if fps > 0 else 0.0


def _open_failure(path: Path, exc: Exception) -> str:
    """The one line for an FFmpeg failure: a file that looks like a video container is broken, any other is
    not a video at all."""
    reason = getattr(exc, "strerror", None) or str(exc)
    with open(path, "rb") as handle:
        head = handle.read(12)
    if any(head[at : at + len(magic)] == magic for at, magic in _CONTAINER_MAGIC):
        return f"{path}: truncated or corrupt video (FFmpeg: {reason})"
    return f"{path}: not a video file (FFmpeg cannot read it: {reason})"


# ------------------------------------------------------------------------------------------------ writing


def write_video(
    path: str | os.PathLike[str],
    frames: Sequence[Image.Image | np.ndarray],
    fps: int = 8,
    *,
    crf: int = 18,
) -> None:
    """Write frames (RGB PIL images or (H, W, 3) uint8 arrays, all one size) as an H.264 video.

    The container follows the suffix (.mp4, .mov, .mkv); the encoder is libx264 at constant quality `crf`
    (0 = lossless luma, 18 = visually lossless, 23 = x264's default), pixel format yuv420p so every player
    reads it (which needs even sides). Written to a temporary sibling and renamed: a failure leaves no file.
    """
    av = _import_av()
    path = Path(path)
    if path.suffix.lower() not in _WRITE_FORMATS:
        raise VlkitError(f"{path}: write_video writes {', '.join(_WRITE_FORMATS)} files, not {path.suffix!r}")
    arrays = [_as_rgb_array(frame, index) for index, frame in enumerate(frames)]
    if not arrays:
        raise VlkitError(f"{path}: no frames to write")
    height, width = arrays[0].shape[:2]
    if height % 2 or width % 2:
        raise VlkitError(f"{path}: frames are {width}x{height}; H.264 in yuv420p needs even sides")
    for index, array in enumerate(arrays):
        if array.shape != arrays[0].shape:
            raise VlkitError(
                f"{path}: frame {index} is {array.shape[1]}x{array.shape[0]}, frame 0 is {width}x{height}"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    with _temporary_sibling(path) as partial:
        options = {"movflags": "+faststart"} if path.suffix.lower() in (".mp4", ".mov") else {}
        with av.open(str(partial), "w", format=_WRITE_FORMATS[path.suffix.lower()], options=options) as out:
            stream = _h264_stream(av, out, fps, path)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            # Same frames, same bytes: x264 on one thread ("threads", which thread_count alone did not
            # reach), and yuv420p made here (encode()'s own conversion varied run to run, measured).
            stream.codec_context.thread_count = 1
            stream.codec_context.options = {"crf": str(crf), "threads": "1"}
            for index, array in enumerate(arrays):
                frame = av.VideoFrame.from_ndarray(array, format="rgb24").reformat(format="yuv420p")
                frame.pts = index
                out.mux(stream.encode(frame))
            out.mux(stream.encode())
        os.replace(partial, path)


def _h264_stream(av: Any, out: Any, fps: int, path: Path) -> Any:
    try:
        return out.add_stream("libx264", rate=fps)
    except (av.codec.codec.UnknownCodecError, av.error.FFmpegError, ValueError) as exc:
        raise VlkitError(
            f"{path}: this PyAV build has no libx264 encoder ({exc}); install the av wheel "
            "from PyPI, which bundles it"
        ) from exc


@contextlib.contextmanager
def _temporary_sibling(path: Path) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(fd)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(name, 0o666 & ~mask)  # mkstemp makes 0600 files; videos get the usual permissions
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _as_rgb_array(frame: Image.Image | np.ndarray, index: int) -> np.ndarray:
    if isinstance(frame, Image.Image):
        return np.asarray(frame.convert("RGB"))
    array = np.asarray(frame)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise VlkitError(f"frame {index}: expected an (H, W, 3) uint8 array, got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array)
