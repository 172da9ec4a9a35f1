"""data/video.py: the one video reader (sampling, timestamps, every bad file) and write_video's round trip."""

from __future__ import annotations

import av
import numpy as np
import pytest

from vlkit.data.video import (
    VideoSampling,
    list_videos,
    read_video,
    read_videos,
    write_video,
)
from vlkit.errors import ConfigError, VlkitError

FPS = 8


def _bar_frames(n: int, size: int = 64) -> list[np.ndarray]:
    """Frame t: a white vertical bar at x = 4t on black, so the decoded frame tells its own index."""
    frames = []
    for t in range(n):
        frame = np.zeros((size, size, 3), np.uint8)
        frame[:, 4 * t : 4 * t + 4] = 255
        frames.append(frame)
    return frames


def _index_shown(image) -> int:
    return int(np.asarray(image)[:, :, 0].mean(axis=0).argmax()) // 4


@pytest.fixture(scope="module")
def clip16(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "bars.mp4"
    write_video(path, _bar_frames(16), fps=FPS)
    return path


def test_round_trip_uniform_sampling_reads_the_middle_frame_of_each_segment_at_its_time(clip16):
    video = read_video(clip16, VideoSampling(frames=4))
    assert video.indices == [2, 6, 10, 14]
    assert [_index_shown(frame) for frame in video.frames] == [2, 6, 10, 14]
    assert video.timestamps == pytest.approx([2 / FPS, 6 / FPS, 10 / FPS, 14 / FPS])
    assert (video.fps, video.n_frames, video.duration) == (FPS, 16, pytest.approx(16 / FPS))
    assert all(frame.mode == "RGB" and frame.size == (64, 64) for frame in video.frames)


@pytest.mark.parametrize(
    ("sampling", "indices"),
    [
        (VideoSampling(frames=3, mode="head"), [0, 1, 2]),
        (VideoSampling(frames=3, mode="tail"), [13, 14, 15]),
        (VideoSampling(frames=5, mode="rate", rate=2.0), [0, 4, 8, 12]),  # 2 fps of 8: every 4th, 4 fit
        (VideoSampling(frames=2, mode="rate", rate=2.0), [0, 4]),
        (VideoSampling(frames=20, mode="uniform"), list(range(16)) + [15] * 4),  # short clip: last repeats
    ],
)
def test_each_sampling_mode_picks_its_frames_and_their_timestamps(clip16, sampling, indices):
    video = read_video(clip16, sampling)
    assert video.indices == indices
    assert [_index_shown(frame) for frame in video.frames] == indices
    assert video.timestamps == pytest.approx([i / FPS for i in indices])


def test_sampling_keys_name_the_settings_and_bad_settings_name_the_field():
    assert [VideoSampling().key(), VideoSampling(16, "head").key(), VideoSampling(8, "rate", 2).key()] == [
        "uniform-8",
        "head-16",
        "rate-2-8",
    ]
    for kwargs, field in (
        ({"frames": 0}, "frames"),
        ({"mode": "middle"}, "mode"),
        ({"mode": "rate"}, "rate"),
        ({"rate": 2.0}, "rate"),
    ):
        with pytest.raises(ConfigError, match=f"VideoSampling.{field}"):
            VideoSampling(**kwargs)


def test_write_video_is_h264_mp4_and_the_same_frames_give_the_same_bytes(tmp_path):
    first, second = tmp_path / "a.mp4", tmp_path / "b.mp4"
    write_video(first, _bar_frames(8), fps=FPS)
    write_video(second, _bar_frames(8), fps=FPS)
    assert first.read_bytes() == second.read_bytes()
    with av.open(str(first)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4"]  # no temporary file left behind
    with pytest.raises(VlkitError, match="odd.mp4: frames are 63x63"):
        write_video(tmp_path / "odd.mp4", [np.zeros((63, 63, 3), np.uint8)])
    with pytest.raises(VlkitError, match="x.avi"):
        write_video(tmp_path / "x.avi", _bar_frames(2))


def _write_empty_avi(path):
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width = stream.height = 64
        container.start_encoding()


def _write_audio_only(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _bad_files(folder, good):
    data = good.read_bytes()
    files = {
        "not a video file": ("text.mp4", b"these are not the frames you are looking for\n"),
        "truncated or corrupt video": ("half.mp4", data[: len(data) // 2]),
        "not supported by this FFmpeg build": ("codec.mp4", data.replace(b"avc1", b"zzzz")),
        "empty file": ("empty.mp4", b""),
    }
    paths = {}
    for reason, (name, content) in files.items():
        (folder / name).write_bytes(content)
        paths[reason] = folder / name
    paths["zero frames"] = folder / "empty.avi"
    _write_empty_avi(paths["zero frames"])
    paths["no video stream"] = folder / "audio.mp4"
    _write_audio_only(paths["no video stream"])
    paths["video file not found"] = folder / "missing.mp4"
    return paths


def test_each_bad_file_raises_one_line_naming_the_file(tmp_path, clip16):
    for reason, path in _bad_files(tmp_path, clip16).items():
        with pytest.raises(VlkitError) as caught:
            read_video(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and reason in message and "\n" not in message, message


def test_a_stream_cut_after_some_frames_is_truncated(tmp_path):
    # Big noisy frames, so that the cut falls well inside the frame data, after the index at the front.
    rng = np.random.default_rng(0)
    good = tmp_path / "noise.mp4"
    write_video(good, [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(16)], fps=FPS)
    data = good.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(VlkitError, match=r"cut.mp4: truncated"):
        read_video(cut)
    assert read_video(cut, VideoSampling(frames=2, mode="head")).indices == [0, 1]  # what is there reads


def test_skip_policy_counts_the_bad_files_and_keeps_the_good_ones_in_order(tmp_path, clip16, caplog):
    bad = _bad_files(tmp_path, clip16)
    paths = [clip16, bad["not a video file"], clip16, bad["zero frames"]]
    videos, skipped = read_videos(paths, VideoSampling(frames=2), on_bad="skip")
    assert [v.file for v in videos] == [clip16, clip16]
    assert [s.path for s in skipped] == [bad["not a video file"], bad["zero frames"]]
    assert "skipped 2 of 4 videos" in caplog.text
    with pytest.raises(VlkitError, match="text.mp4: not a video file"):
        read_videos(paths, VideoSampling(frames=2))
    with pytest.raises(VlkitError, match="on_bad: unknown policy 'ignore'"):
        read_videos(paths, on_bad="ignore")  # type: ignore[arg-type]


def test_list_videos_finds_video_files_by_extension_sorted(tmp_path):
    for name in ("b.MP4", "a.webm", "notes.txt", "c.mkv"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_videos(tmp_path)] == ["a.webm", "b.MP4", "c.mkv"]
    with pytest.raises(VlkitError, match="nowhere: video folder not found"):
        list_videos(tmp_path / "nowhere")


def test_matroska_without_a_frame_count_is_counted_and_sampled(tmp_path):
    path = tmp_path / "bars.mkv"
    write_video(path, _bar_frames(12), fps=FPS)
    video = read_video(path, VideoSampling(frames=3))
    assert video.n_frames == 12 and video.indices == [2, 6, 10]
    assert [_index_shown(frame) for frame in video.frames] == [2, 6, 10]


def test_a_stream_cut_between_frames_is_truncated_unless_only_its_last_frames_are_lost(tmp_path, caplog):
    # A cut at a packet's end decodes quietly to fewer frames than the index declares.
    rng = np.random.default_rng(1)
    good = tmp_path / "noise.mp4"
    write_video(good, [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(16)], fps=FPS)
    with av.open(str(good)) as container:
        ends = [
            packet.pos + packet.size for packet in container.demux(container.streams.video[0]) if packet.size
        ]
    data, cut = good.read_bytes(), tmp_path / "cut.mp4"
    cut.write_bytes(data[: ends[5]])
    with pytest.raises(VlkitError, match=r"cut.mp4: truncated video: 6 of the 16 frames"):
        read_video(cut)
    cut.write_bytes(data[: ends[14]])  # 15 of 16 (over SHORTFALL_TOLERANCE): sampled over the 15 there are
    video = read_video(cut, VideoSampling(frames=4, mode="tail"))
    assert video.n_frames == 15 and video.indices == [11, 12, 13, 14]
    assert "15 of 16 declared frames decode" in caplog.text
