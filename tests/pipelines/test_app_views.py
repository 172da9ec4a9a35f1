"""`vlkit app` without a server: the default captioner, the video tab, what each tab computes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.models.tiny_captioner import save_tiny_parts
from vlkit.captioning.config import DecodingConfig
from vlkit.captioning.video import video_sampling
from vlkit.data.video import read_video
from vlkit.errors import ConfigError, VlkitError
from vlkit.models.captioner.model import CaptionerSpec, build_captioner
from vlkit.models.clip import class_probabilities
from vlkit.pipelines.app import (
    MAX_LABELS,
    AppConfig,
    caption_view,
    default_captioner,
    example_images,
    load_app_models,
    parse_labels,
    read_upload,
    video_captioner_kind,
    video_view,
    zeroshot_view,
)
from vlkit.pipelines.app_page import build_page, decoding_from_page
from vlkit.pipelines.attend_video import attend_clips
from vlkit.viz.overlay import attention_overlay
from vlkit.zeroshot.classifier import encode_templates, ensemble_embeddings
from vlkit.zeroshot.templates import TEMPLATE_SETS


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(AppConfig, AppModels, an example image) over a tiny CLIP and a tiny cross-attn captioner."""
    root = tmp_path_factory.mktemp("app_views")
    clip, _, gpt2 = save_tiny_parts(root)
    folder = build_captioner(CaptionerSpec(str(clip), str(gpt2), "cross-attn", None, 8)).save(
        root / "captioner"
    )
    config = AppConfig(captioner=str(folder), clip=str(clip), device="cpu", precision="fp32")
    image = read_upload(str(example_images(root / "examples", count=1)[0]))
    return config, load_app_models(config), image


def _demo(root: Path, best: str = "ia3") -> Path:
    (root / "sweep" / best).mkdir(parents=True)
    (root / "sweep" / best / "config.json").write_text("{}")
    (root / "summary.json").write_text(json.dumps({"captioning": {"best": best}}))
    return root


def test_the_default_captioner_is_the_demos_best_and_without_a_demo_the_error_names_both_ways_out(tmp_path):
    folder, source = default_captioner(_demo(tmp_path / "demo"))
    assert folder == tmp_path / "demo" / "sweep" / "ia3" and "ia3" in source and "CIDEr-D" in source
    (folder / "best").mkdir()
    (folder / "best" / "config.json").write_text("{}")  # a sweep that validated keeps its best checkpoint
    assert default_captioner(tmp_path / "demo")[0] == folder / "best"
    with pytest.raises(VlkitError, match=r"make demo.*--captioner"):
        default_captioner(tmp_path / "nowhere")


@pytest.fixture(scope="module")
def video_models(tmp_path_factory, served):
    """AppModels over a tiny `seq` video captioner, and an MP4 of 6 frames of a square moving right."""
    from vlkit.data.video import write_video

    config, _, _ = served
    root = tmp_path_factory.mktemp("app_video")
    clip, _, gpt2 = save_tiny_parts(root)
    spec = CaptionerSpec(str(clip), str(gpt2), "cross-attn", None, 8, temporal="seq", frames=4)
    folder = build_captioner(spec).save(root / "video_captioner")
    frames = []
    for t in range(6):
        frame = np.zeros((64, 64, 3), dtype=np.uint8)
        frame[20:36, 4 + 8 * t : 20 + 8 * t] = (220, 40, 40)
        frames.append(frame)
    video = root / "moving.mp4"
    write_video(video, frames, fps=6)
    models = load_app_models(
        AppConfig(captioner=str(folder), clip=config.clip, device="cpu", precision="fp32")
    )
    return models, folder, video


def test_a_video_captioner_gets_the_video_tab_with_a_frames_by_words_figure(video_models, served, tmp_path):

    config, image_models, _ = served
    assert video_captioner_kind(Path(config.captioner)) is None and image_models.video_captioner is None
    models, folder, video = video_models
    assert video_captioner_kind(folder) == "seq"
    assert (
        models.captioner is None and models.video_captioner is not None and "Video tab" in models.video_note
    )
    view = video_view(models, str(video), DecodingConfig(batch_size=1))
    assert len(view.timestamps) == 4 and view.timestamps == sorted(view.timestamps)  # 4 of the 6 frames
    assert 1 <= len(view.words) <= 9  # the tokens of a caption of at most 8, the end token included
    figure = Image.open(io.BytesIO(view.figure))
    assert figure.format == "PNG" and figure.size[0] > 100 and "4 frames (seq)" in view.note

    frames = read_video(video, video_sampling(models.video_captioner)).frames
    again = attend_clips(models.video_captioner, [frames], ["moving"], DecodingConfig(batch_size=1))[0]
    assert again.caption == view.caption and again.words == view.words  # what `caption attend` gives
    assert again.weights.shape == (4, len(view.words))
    bad = tmp_path / "clip.mp4"
    bad.write_text("not a video")
    with pytest.raises(VlkitError, match="upload 'clip.mp4'"):
        video_view(models, str(bad), DecodingConfig(batch_size=1))
    page = build_page(models, config.clip, [])
    ids = {getattr(block, "elem_id", None) for block in page.blocks.values()}
    assert {"video", "video-button", "video-figure"} <= ids and "caption-button" not in ids
    assert "video-button" not in {
        getattr(b, "elem_id", None) for b in build_page(image_models, "c", []).blocks.values()
    }


def test_caption_view_gives_one_overlay_per_generated_token_and_the_clip_score(served):
    _, models, image = served
    view = caption_view(models, image, decoding_from_page("greedy", 3, 1.0, 1.0, 0, 1.0, 0, 0, 1.0))
    assert len(view.overlays) == len(view.words) >= 1 and view.decoding == "greedy"
    pieces = [w for w in view.words if w != "<end>"]
    assert view.caption.replace(" ", "") == "".join(pieces).replace(" ", "")
    assert all(o.mode == "RGB" and min(o.size) >= 224 for o in view.overlays)
    assert 0.0 <= view.clip_score <= 2.5
    beam = caption_view(models, image, decoding_from_page("beam search", 2, 1.0, 1.0, 0, 1.0, 0, 0, 1.0))
    assert beam.decoding == "2-beam"
    sampled = decoding_from_page("sampling", 3, 1.0, 0.7, 5, 0.9, 3, 0, 1.0)
    assert sampled.sample and (sampled.temperature, sampled.top_k, sampled.top_p, sampled.seed) == (
        0.7,
        5,
        0.9,
        3,
    )
    with pytest.raises(ConfigError, match="top_p"):
        decoding_from_page("sampling", 1, 1.0, 1.0, 0, 1.5, 0, 0, 1.0)


def test_zeroshot_view_scores_the_ensemble_as_the_clip_was_trained_to(served):
    _, models, image = served
    labels = ["red circle", "blue star", "green square"]
    view = zeroshot_view(models, image, labels, "seed")
    assert list(view.confidences) == labels and view.scoring == "softmax" and view.templates == 3
    clip = models.clip
    texts = ensemble_embeddings(encode_templates(clip, labels, list(TEMPLATE_SETS["seed"])))
    expected = class_probabilities(clip.encode_images(clip.preprocess([image])) @ texts.T, clip)[0]
    assert np.allclose(list(view.confidences.values()), expected.numpy(), atol=1e-6)
    assert sum(view.confidences.values()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(VlkitError, match="unknown set"):
        zeroshot_view(models, image, labels, "/etc/passwd")


def test_labels_are_split_on_commas_and_an_empty_or_repeated_list_is_an_error():
    assert parse_labels(" red circle, ,blue star ,") == ["red circle", "blue star"]
    for bad, message in [("", "at least one"), (" , ,", "at least one"), ("a, b, a", "more than once")]:
        with pytest.raises(VlkitError, match=message):
            parse_labels(bad)
    with pytest.raises(VlkitError, match=f"at most {MAX_LABELS}"):
        parse_labels(",".join(f"label {i}" for i in range(MAX_LABELS + 1)))


def test_a_bad_upload_is_named_by_its_own_name_not_the_servers_path(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(VlkitError, match=r"^upload 'notes.png': not an image"):
        read_upload(str(text))
    with pytest.raises(VlkitError, match="no image"):
        read_upload(None)


def test_the_overlay_is_hottest_where_the_map_peaks():
    grid = np.zeros((4, 4))
    grid[0, 3] = 1.0  # top right patch
    overlay = np.asarray(attention_overlay(Image.new("RGB", (64, 64), (128, 128, 128)), grid), dtype=float)
    assert overlay.shape == (224, 224, 3)
    red_minus_blue = overlay[..., 0] - overlay[..., 2]
    assert red_minus_blue[:56, -56:].mean() > red_minus_blue[-56:, :56].mean() + 50  # jet: hot red, cold blue


def test_the_app_config_names_a_bad_port_or_upload_limit():
    with pytest.raises(ConfigError, match="port"):
        AppConfig(port=0)
    with pytest.raises(ConfigError, match="max_upload_mb"):
        AppConfig(max_upload_mb=0)
    assert AppConfig().host == "127.0.0.1"


def test_vlkit_app_without_a_demo_or_a_captioner_says_how_to_get_one(tmp_path, capsys):
    from vlkit.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["app", "--demo", str(tmp_path / "no_demo")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "make demo" in err and "--captioner" in err


def test_without_gradio_the_page_asks_for_the_app_extra(monkeypatch):
    import sys

    from vlkit.pipelines.app_page import _gradio

    monkeypatch.setitem(sys.modules, "gradio", None)  # as if it were not installed
    with pytest.raises(VlkitError, match=r"vlkit\[app\]"):
        _gradio()
