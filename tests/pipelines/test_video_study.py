"""The quick video study end to end (real MP4 clips, the stand-in CLIP and GPT-2, every temporal module),
its report section, and the video commands of `vlkit caption` on what it trained."""

from __future__ import annotations

import json

import pytest

from vlkit.cli.main import main
from vlkit.pipelines.report import write_report
from vlkit.pipelines.video_study import VideoStudyRequest, run_video_study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    document = run_video_study(VideoStudyRequest(run / "video", seed=0, quick=True))
    return run, document


def test_the_study_writes_the_issue_layout_from_real_clips(study):
    run, document = study
    out = run / "video"
    assert sorted((out / "clips" / "val" / "videos").glob("*.mp4"))
    assert [v["temporal"] for v in document["variants"]] == ["meanp", "concat", "seq"]
    for variant in document["variants"]:
        assert {"temporal", "cider", "order_accuracy", "chair_i", "train_s"} <= set(variant)
        assert variant["train_s"] > 0 and variant["cider"] >= 0
    assert {"cider", "order_accuracy"} <= set(document["baselines"]["nearest_clip"])
    assert {"cider", "order_accuracy"} <= set(document["baselines"]["shuffled_frames"])
    assert [row["frames"] for row in document["ablations"]["frames"]] == [2, 8]
    assert json.loads((out / "study.json").read_text())["variants"] == document["variants"]
    assert "## Shuffled frames" in (out / "study.md").read_text()
    assert (out / "study.png").read_bytes()[:4] == b"\x89PNG"
    for name in ("concat", "seq"):
        assert [(out / "figures" / name / f).is_file() for f in document["figures"][name]] == [True]


def test_meanp_captions_the_same_whatever_the_frame_order(study):
    run, _ = study
    folder = run / "video" / "runs" / "meanp"
    ordered = json.loads((folder / "val_predictions.json").read_text())
    shuffled = json.loads((folder / "val_shuffled_predictions.json").read_text())
    assert ordered == shuffled


def test_the_report_shows_the_video_section(study):
    run, _ = study
    page = write_report(run).read_text()
    section = page.split('<section id="video">')[1].split("</section>")[0]
    assert "nearest clip baseline" in section and "Frame count (seq)" in section
    assert section.count("<img") >= 3  # the chart and a figure for concat and seq


def test_predict_and_attend_on_videos(study, tmp_path):
    run, _ = study
    videos = run / "video" / "clips" / "val" / "videos"
    stems = sorted(p.stem for p in videos.glob("*.mp4"))
    model = run / "video" / "runs" / "seq"
    predictions = tmp_path / "P.json"
    main(["caption", "predict", "--model", str(model), "--videos", str(videos), "--out", str(predictions),
          "--max-length", "4"])  # fmt: skip
    assert sorted(json.loads(predictions.read_text())) == stems
    attend = tmp_path / "attend"
    main(["caption", "attend", "--model", str(model), "--videos", str(videos), "--out", str(attend),
          "--figures", "1", "--max-length", "4"])  # fmt: skip
    assert len(list((attend / "figures").glob("*.png"))) == 1
    assert len(list((attend / "maps").glob("*.npy"))) == len(stems)
    with pytest.raises(SystemExit):  # a meanp captioner's attention belongs to no frame
        main(["caption", "attend", "--model", str(run / "video" / "runs" / "meanp"), "--videos", str(videos),
              "--out", str(tmp_path / "meanp")])  # fmt: skip


@pytest.mark.parametrize("command", [["video", "study"], ["caption", "train"], ["caption", "predict"]])
def test_video_commands_have_help(command, capsys):
    assert main([*command, "--help"]) is None
    text = capsys.readouterr().out
    assert "--temporal" in text if command[-1] == "train" else "--videos" in text or "--quick" in text
