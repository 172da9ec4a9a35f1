"""data/video_captions.py: the COCO layout with videos, and MSR-VTT / MSVD files read with their split named.

The MSR-VTT and MSVD files here are small hand-written copies of the real formats (same keys, same line
layout), not the data sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vlkit.data.video import write_video
from vlkit.data.video_captions import load_msrvtt, load_msvd, load_video_captions
from vlkit.errors import VlkitError


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def _layout() -> dict:
    return {
        "videos": [{"id": 1, "file_name": "a.mp4", "frames": 4}, {"id": "b", "file_name": "sub/b.mp4"}],
        "annotations": [
            {"id": 0, "video_id": 1, "caption": "a red circle moves left"},
            {"id": 1, "video_id": "b", "caption": "a star appears"},
            {"id": 2, "video_id": 1, "caption": "a red circle slides left"},
        ],
    }


def test_the_coco_layout_with_videos_loads_ids_paths_and_captions_in_order(tmp_path):
    frames = [np.zeros((16, 16, 3), np.uint8)] * 2
    write_video(tmp_path / "videos" / "a.mp4", frames)
    write_video(tmp_path / "videos" / "sub" / "b.mp4", frames)
    data = load_video_captions(_write(tmp_path / "ann.json", _layout()), tmp_path / "videos")
    assert data.videos == [(1, tmp_path / "videos" / "a.mp4"), ("b", tmp_path / "videos" / "sub" / "b.mp4")]
    assert data.captions == {
        1: ["a red circle moves left", "a red circle slides left"],
        "b": ["a star appears"],
    }
    assert data.entries[0].extra == {"frames": 4} and list(data.stem_to_video()) == ["a", "b"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["videos"].append({"id": 1, "file_name": "c.mp4"}), r"videos\[2\]: duplicate video id 1"),
        (lambda d: d["videos"][0].pop("file_name"), r"videos\[0\]: missing field 'file_name'"),
        (lambda d: d["videos"][0].update(file_name="../x.mp4"), r"videos\[0\]: file_name '../x.mp4' escapes"),
        (lambda d: d["annotations"][1].update(video_id=7), r"annotations\[1\]: video_id 7 has no video"),
        (lambda d: d["annotations"][2].update(id=0), r"annotations\[2\]: duplicate annotation id 0"),
        (lambda d: d["annotations"][0].update(caption="  "), r"annotations\[0\]: caption is empty"),
        (lambda d: d["annotations"].pop(1), r"videos\[1\]: video 'sub/b.mp4' \(id 'b'\) has no caption"),
        (lambda d: d["videos"][1].update(id=True), r"videos\[1\]: field 'id' must be an integer or a string"),
        (lambda d: d.pop("videos"), "missing top-level key 'videos'"),
    ],
)
def test_each_problem_of_the_layout_names_the_file_entry_and_field(tmp_path, change, message):
    data = _layout()
    change(data)
    path = _write(tmp_path / "ann.json", data)
    with pytest.raises(VlkitError, match=message) as caught:
        load_video_captions(path, tmp_path, check_files=False)
    assert str(caught.value).startswith(str(path))


def test_a_missing_video_file_is_named(tmp_path):
    with pytest.raises(VlkitError, match=r"videos\[0\]: video file .*a.mp4 not found"):
        load_video_captions(_write(tmp_path / "ann.json", _layout()), tmp_path)


# MSR-VTT's layout (train_val_videodatainfo.json / MSRVTT_data.json): 2 train, 1 validate, 2 test videos.
MSRVTT = {
    "info": {"year": 2016},
    "videos": [
        {
            "category": 9,
            "url": "https://www.youtube.com/watch?v=x",
            "video_id": f"video{i}",
            "start time": 1.0,
            "end time": 9.0,
            "split": split,
            "id": i,
        }
        for i, split in enumerate(["train", "train", "validate", "test", "test"])
    ],
    "sentences": [
        {"caption": f"caption {k} of video {i}", "video_id": f"video{i}", "sen_id": 2 * i + k}
        for i in range(5)
        for k in range(2)
    ],
}


def test_msrvtt_captioning_splits_come_from_each_videos_split_and_are_named(tmp_path, caplog):
    path = _write(tmp_path / "MSRVTT_data.json", MSRVTT)
    test = load_msrvtt(path, tmp_path, "test", check_files=False)
    assert [v for v, _ in test.videos] == ["video3", "video4"]
    assert test.captions["video3"] == ["caption 0 of video 3", "caption 1 of video 3"]
    assert test.split.startswith("MSR-VTT captioning test (2016 challenge split")
    assert [v for v, _ in load_msrvtt(path, tmp_path, "val", check_files=False).videos] == ["video2"]
    assert "the 2016 split has 2990" in caplog.text  # this tiny file is not the real split
    with pytest.raises(VlkitError, match="split: MSR-VTT's captioning splits are .* pass video_list"):
        load_msrvtt(path, tmp_path, "9k", check_files=False)


def test_msrvtt_retrieval_lists_name_themselves_and_count_their_captioning_splits(tmp_path):
    path = _write(tmp_path / "MSRVTT_data.json", MSRVTT)
    train_9k = _write(tmp_path / "MSRVTT_train.9k.csv", "video_id\nvideo0\nvideo1\nvideo3\n")
    data = load_msrvtt(path, tmp_path, video_list=train_9k, check_files=False)
    assert data.split == "MSR-VTT retrieval list MSRVTT_train.9k.csv (3 videos)"
    assert data.split_counts == {
        "train": 2,
        "validate": 0,
        "test": 1,
    }  # a captioning test video, seen in training
    assert len(data.captions["video3"]) == 2
    jsfusion = _write(
        tmp_path / "MSRVTT_JSFUSION_test.csv",
        "key,vid_key,video_id,sentence\nret0,msr4,video4,a man is talking\n",
    )
    one_a = load_msrvtt(path, tmp_path, video_list=jsfusion, check_files=False)
    assert one_a.captions == {"video4": ["a man is talking"]}  # the 1k-A test's one sentence per video
    unknown = _write(tmp_path / "list.txt", "video0\nvideo77\n")
    with pytest.raises(VlkitError, match="list.txt: video 'video77' is not in"):
        load_msrvtt(path, tmp_path, video_list=unknown, check_files=False)


def test_msrvtt_finds_each_videos_file_by_extension_or_says_how_many_are_missing(tmp_path):
    path = _write(tmp_path / "MSRVTT_data.json", MSRVTT)
    frames = [np.zeros((16, 16, 3), np.uint8)] * 2
    write_video(tmp_path / "videos" / "video3.mp4", frames)
    with pytest.raises(VlkitError, match=r"no video file for 'video4' .* 1 of 2 videos missing"):
        load_msrvtt(path, tmp_path / "videos", "test")
    write_video(tmp_path / "videos" / "video4.mkv", frames)
    assert [p.name for _, p in load_msrvtt(path, tmp_path / "videos", "test").videos] == [
        "video3.mp4",
        "video4.mkv",
    ]


# MSVD's AllVideoDescriptions.txt and youtube_mapping.txt: clip names are <YouTube id>_<start>_<end>.
DESCRIPTIONS = """# MSVD English descriptions
# one description a line
-4wsuPCjDBc_5_15 a squirrel is eating a peanut
-4wsuPCjDBc_5_15 a chipmunk is eating
-7KMZQEsJW4_205_208 a woman is slicing an onion
zv2RIbUsnSw_159_165 a man is playing a guitar
"""
MAPPING = "-4wsuPCjDBc_5_15 vid1\n-7KMZQEsJW4_205_208 vid1201\nzv2RIbUsnSw_159_165 vid1301\n"


def test_msvd_standard_split_goes_through_the_mapping_and_is_named(tmp_path):
    descriptions = _write(tmp_path / "AllVideoDescriptions.txt", DESCRIPTIONS)
    mapping = _write(tmp_path / "youtube_mapping.txt", MAPPING)
    train = load_msvd(descriptions, tmp_path, "train", mapping=mapping, check_files=False)
    assert train.captions == {"-4wsuPCjDBc_5_15": ["a squirrel is eating a peanut", "a chipmunk is eating"]}
    assert train.split == "MSVD train (vid1-vid1200 of youtube_mapping.txt: the 1200/100/670 split)"
    assert train.entries[0].file_name == "-4wsuPCjDBc_5_15.mp4"
    test = load_msvd(descriptions, tmp_path, "test", mapping=mapping, check_files=False)
    assert [v for v, _ in test.videos] == ["zv2RIbUsnSw_159_165"]
    listed = load_msvd(
        descriptions,
        tmp_path,
        video_list=_write(tmp_path / "val_list.txt", "-7KMZQEsJW4_205_208\n"),
        check_files=False,
    )
    assert listed.split == "MSVD list val_list.txt (1 clips)" and len(listed) == 1


def test_msvd_bad_inputs_are_named(tmp_path):
    descriptions = _write(tmp_path / "AllVideoDescriptions.txt", DESCRIPTIONS)
    with pytest.raises(VlkitError, match="either mapping"):
        load_msvd(descriptions, tmp_path, check_files=False)
    bad = _write(tmp_path / "youtube_mapping.txt", "-4wsuPCjDBc_5_15 1\n")
    with pytest.raises(VlkitError, match=r"youtube_mapping.txt: line 1: expected '<clip name> vid<N>'"):
        load_msvd(descriptions, tmp_path, "train", mapping=bad, check_files=False)
    mapping = _write(tmp_path / "youtube_mapping.txt", MAPPING + "nocaption_1_2 vid5\n")
    with pytest.raises(VlkitError, match="video 'nocaption_1_2' has no caption"):
        load_msvd(descriptions, tmp_path, "train", mapping=mapping, check_files=False)
    with pytest.raises(VlkitError, match="split: MSVD's standard splits"):
        load_msvd(descriptions, tmp_path, "validate", mapping=mapping, check_files=False)


def test_video_layout_writes_an_msrvtt_split_that_the_video_trainer_reads(tmp_path, capsys):
    from vlkit.cli.main import main
    from vlkit.train.video_trainer import load_video_splits

    path = _write(tmp_path / "MSRVTT_data.json", MSRVTT)
    frames = [np.zeros((16, 16, 3), np.uint8)] * 2
    for i in (0, 1, 2):
        write_video(tmp_path / "videos" / f"video{i}.mp4", frames)
    for split, folder in (("train", "train"), ("val", "val")):
        main(["data", "video-layout", "--msrvtt", str(path), "--videos", str(tmp_path / "videos"),
              "--split", split, "--out", str(tmp_path / "data" / folder)])  # fmt: skip
    assert "MSR-VTT captioning validate (2016 challenge split, 1 videos)" in capsys.readouterr().out
    train, val = load_video_splits(tmp_path / "data")
    assert [v for v, _ in train.videos] == ["video0", "video1"] and [v for v, _ in val.videos] == ["video2"]
    assert train.captions["video1"] == ["caption 0 of video 1", "caption 1 of video 1"]
    assert train.video_paths()[0].read_bytes() == (tmp_path / "videos" / "video0.mp4").read_bytes()
    from vlkit.cli.caption import _video_files

    assert _video_files(tmp_path / "data" / "val" / "annotations.json") == val.video_paths()  # the split only
    written = json.loads((tmp_path / "data" / "train" / "annotations.json").read_text())
    assert written["info"]["split"].startswith("MSR-VTT captioning train")
    with pytest.raises(SystemExit):  # the test split's videos are not there: one line naming them
        main(["data", "video-layout", "--msrvtt", str(path), "--videos", str(tmp_path / "videos"),
              "--split", "test", "--out", str(tmp_path / "data" / "test")])  # fmt: skip
    assert "no video file for 'video3'" in capsys.readouterr().err
