"""shapes/clips.py: the generated clips are real MP4 files whose frames show exactly what truth.json says."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vlkit.cli.main import main
from vlkit.data.video import VideoSampling, read_video
from vlkit.data.video_captions import load_video_captions
from vlkit.errors import ConfigError, VlkitError
from vlkit.shapes.clip_grammar import OPPOSITE
from vlkit.shapes.clips import ClipsConfig, ClipTruth, load_clip_truth, make_clips, reverse_truth
from vlkit.shapes.grammar import COLOURS

QUICK = ClipsConfig.quick(workers=1)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clips") / "clips"
    make_clips(out, QUICK)
    return out


def _all_frames(clips: Path, stem: str, truth: ClipTruth) -> list[np.ndarray]:
    n = len(truth.frames)
    video = read_video(clips / truth.split / "videos" / f"{stem}.mp4", VideoSampling(frames=n, mode="head"))
    assert video.n_frames == n
    return [np.asarray(frame).astype(int) for frame in video.frames]


def _nearest_colour(pixel: np.ndarray) -> str:
    return min(COLOURS, key=lambda name: np.abs(pixel - np.array(COLOURS[name])).sum())


def _centre(box) -> tuple[int, int]:
    x1, y1, x2, y2 = box
    return (x1 + x2) // 2, (y1 + y2) // 2


def test_the_folder_holds_the_video_caption_layout_truth_and_settings(clips):
    world = json.loads((clips / "world.json").read_text())
    assert (world["n_train"], world["n_val"], sum(world["stories"].values())) == (24, 8, 32)
    for split, n in (("train", 24), ("val", 8)):
        data = json.loads((clips / split / "annotations.json").read_text())
        assert len(data["videos"]) == n and len(data["annotations"]) == 3 * n
        assert all((clips / split / "videos" / v["file_name"]).is_file() for v in data["videos"])
    truth = load_clip_truth(clips)
    assert len(truth) == 32 and all(8 <= len(t.frames) <= 16 for t in truth.values())
    val = load_video_captions(clips / "val" / "annotations.json", clips / "val" / "videos")
    assert set(val.stem_to_video()) == {stem for stem, t in truth.items() if t.split == "val"}
    assert all(len(captions) == 3 for captions in val.captions.values())
    assert all(1 <= len(t.events) <= 2 for t in truth.values())


def test_every_drawn_object_has_its_colour_at_its_box_and_the_rest_is_background(clips):
    truth = load_clip_truth(clips)
    for stem, clip in truth.items():
        for pixels, objects in zip(_all_frames(clips, stem, clip), clip.frames, strict=True):
            outside = np.ones(pixels.shape[:2], bool)
            for obj in objects:
                x, y = _centre(obj.box)
                assert _nearest_colour(pixels[y, x]) == obj.colour, (stem, obj)
                x1, y1, x2, y2 = obj.box
                outside[max(0, y1 - 2) : y2 + 2, max(0, x1 - 2) : x2 + 2] = False
            # Background grey is 25..80 with noise; no object colour is that dark and flat.
            assert pixels[outside].std(axis=-1).mean() < 12, stem


def test_the_events_are_what_the_frames_show(clips):
    seen = set()
    for clip in load_clip_truth(clips).values():
        for event in clip.events:
            seen.add(event.kind)

            before, after = (
                [o for o in clip.frames[t] if o.shape == event.shape]
                for t in (event.frame - 1, event.last_frame)
            )
            if event.kind == "appears":
                assert not before and after and after[0].colour == event.colour
            elif event.kind == "disappears":
                assert before and not after and before[0].colour == event.colour
            elif event.kind == "changes":
                assert (before[0].colour, after[0].colour) == (event.colour, event.to_colour)
            else:
                (x0, y0), (x1, y1) = _centre(before[0].box), _centre(after[0].box)
                moved = {"left": x0 - x1, "right": x1 - x0, "up": y0 - y1, "down": y1 - y0}
                assert moved[event.direction] >= 10 and abs(moved[OPPOSITE[event.direction]]) >= 10
                sideways = [d for d in moved if d not in (event.direction, OPPOSITE[event.direction])]
                assert all(abs(moved[d]) <= 1 for d in sideways)
        if len(clip.events) == 2:
            assert clip.events[0].last_frame < clip.events[1].frame
    assert seen == {"moves", "appears", "disappears", "changes"}


def test_the_same_seed_gives_the_same_bytes_for_any_number_of_workers_and_another_seed_differs(tmp_path):
    small = replace(QUICK, n_train=6, n_val=2)
    digests = []
    for name, config in (
        ("one", small),
        ("two", replace(small, workers=2)),
        ("seed", replace(small, seed=1)),
    ):
        make_clips(tmp_path / name, config)
        files = sorted(p for p in (tmp_path / name).rglob("*") if p.is_file() and p.name != "world.json")
        digests.append(hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest())
    assert digests[0] == digests[1] != digests[2]


def test_reversed_clips_play_the_same_frames_backwards_with_the_opposite_events(tmp_path, clips):
    make_clips(tmp_path / "rev", replace(QUICK, order="reversed"))
    original, backwards = load_clip_truth(clips), load_clip_truth(tmp_path / "rev")
    assert backwards.keys() == original.keys()
    for stem, clip in original.items():
        assert backwards[stem].frames == clip.frames[::-1]
        assert backwards[stem].events == reverse_truth(clip).events != clip.events
        if clip.events[0].kind != "moves":
            continue
        ahead = np.array(_all_frames(clips, stem, clip))
        behind = np.array(_all_frames(tmp_path / "rev", stem, backwards[stem]))
        # The same frames backwards (up to the encoder's rounding), so nearly the same mean over frames,
        # although frame by frame the two files differ a lot.
        mean_gap = np.abs(ahead.mean(axis=0) - behind.mean(axis=0)).mean()
        assert mean_gap <= np.abs(ahead - behind[::-1]).mean() < 3
        assert mean_gap < 0.25 * np.abs(ahead - behind).mean()
    ann = [
        json.loads((folder / "train" / "annotations.json").read_text())
        for folder in (clips, tmp_path / "rev")
    ]
    assert ann[0]["annotations"][0]["caption"] != ann[1]["annotations"][0]["caption"]


def test_shuffled_clips_permute_the_frames_and_keep_the_original_events_and_captions(tmp_path, clips):
    make_clips(tmp_path / "mix", replace(QUICK, order="shuffled", n_train=4, n_val=0))
    original, mixed = load_clip_truth(clips), load_clip_truth(tmp_path / "mix")
    for stem, clip in mixed.items():
        assert clip.frame_order != sorted(clip.frame_order)
        assert clip.frames == [original[stem].frames[t] for t in clip.frame_order]
        assert clip.events == original[stem].events
    captions = [
        json.loads((folder / "train" / "annotations.json").read_text())["annotations"][:12]
        for folder in (clips, tmp_path / "mix")
    ]
    assert [a["caption"] for a in captions[0]] == [a["caption"] for a in captions[1]]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"min_frames": 4}, "min_frames"),
        ({"max_frames": 9, "min_frames": 12}, "max_frames"),
        ({"image_size": 63}, "image_size"),
        ({"order": "sideways"}, "order"),
    ],
)
def test_bad_settings_name_their_field(changes, field):
    with pytest.raises(ConfigError, match=f"ClipsConfig.{field}"):
        ClipsConfig(**changes).validate()


def test_cli_writes_quick_clips_and_refuses_a_folder_of_something_else(tmp_path, capsys):
    main(
        [
            "--quiet",
            "data",
            "shapes-video",
            "--out",
            str(tmp_path / "c"),
            "--quick",
            "--seed",
            "2",
            "--workers",
            "1",
            "--captions",
            "1",
        ]
    )
    assert "24 train, 8 val" in capsys.readouterr().out
    assert json.loads((tmp_path / "c" / "world.json").read_text())["seed"] == 2
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        main(["--quiet", "data", "shapes-video", "--out", str(tmp_path / "other"), "--quick"])
    assert exit_info.value.code == 2 and "refusing to overwrite" in capsys.readouterr().err
    with pytest.raises(VlkitError, match="truth.json"):
        load_clip_truth(tmp_path / "other")
