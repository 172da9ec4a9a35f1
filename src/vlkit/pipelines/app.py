"""`vlkit app`'s library half, without the web page: which models it serves, and what each tab computes.

The page itself (`vlkit.pipelines.app_page`) is Gradio's; this module is torch-and-vlkit only, so it is tested
without a server: `load_app_models` loads the captioner and the CLIP once, `caption_view` captions one image
with its CLIPScore and one attention overlay per generated token, `zeroshot_view` scores comma-separated
labels with a template set, as the model was trained to score them (softmax for CLIP, sigmoid for SigLIP).

The default captioner: vlkit ships no captioner (the stand-ins are a CLIP and a GPT-2), so without
`--captioner` the app serves the captioner `vlkit demo` chose as its best (by validation CIDEr-D) under the
demo's output folder, and says so on the page; with neither, it stops with one line naming both ways out.

A video captioner (`vlkit caption train --temporal ...`) is recognised by its config.json's `temporal`
entry (`video_captioner_kind`): the app then serves a video tab instead of the image caption tab
(`video_view`: the uploaded file read by vlkit's one video reader as the captioner was trained to sample it,
its caption, and the frames x words figure of `vlkit caption attend --videos`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlkit.errors import VlkitError
from vlkit.runtime.files import read_json
from vlkit.runtime.options import option, positive, require

if TYPE_CHECKING:
    from PIL import Image

    from vlkit.captioning.config import DecodingConfig
    from vlkit.models.captioner.model import Captioner
    from vlkit.models.clip import Clip

log = logging.getLogger(__name__)

DEMO_OUT = Path("runs/demo")  # `vlkit demo`'s and `make demo`'s default --out
VIDEO_CONFIG_KEY = "temporal"  # in a captioner's config.json: the temporal module of a video captioner
MAX_LABELS = 64  # a zero-shot request scores at most this many labels (each times every template)
MAX_LABEL_CHARS = 200
TEXT_CACHE_ENTRIES = 32  # (labels, templates) sets whose text embeddings stay in memory


@dataclass
class AppConfig:
    """What `vlkit app` serves and how; one field per option."""

    captioner: str | None = option(
        None,
        "--captioner",
        "Captioner folder (`vlkit caption train`); default: the best captioner of `vlkit demo` under --demo.",
    )
    clip: str = option(
        "vlkit:shapes-clip",
        "--clip",
        "CLIP or SigLIP for zero-shot labels and CLIPScore: hub id, folder, vlkit:NAME, open_clip:ARCH/TAG.",
    )
    demo: Path = option(DEMO_OUT, "--demo", "Where `vlkit demo` wrote its outputs (the default captioner).")
    host: str = option(
        "127.0.0.1", "--host", "Address to bind; 127.0.0.1 serves this machine only (0.0.0.0: every network)."
    )
    port: int = option(7860, "--port", "Port to serve on.")
    max_upload_mb: int = option(10, "--max-upload-mb", "Largest upload accepted, in megabytes.")
    device: str = option("auto", "--device", "auto, cpu, cuda, cuda:1, ...")
    precision: str = option("auto", "--precision", "fp32, bf16, fp16 or auto (bf16 where native).")

    def __post_init__(self) -> None:
        positive(self, "max_upload_mb")
        require(self, "port", 0 < self.port < 65536, f"must be a port number (1-65535), got {self.port}")


@dataclass
class AppModels:
    """The loaded models, and what the page says about where they came from."""

    clip: Clip
    captioner: Captioner | None  # the image captioner; None when the captioner reads video
    captioner_source: str  # one sentence for the page: which captioner, and why that one
    video_note: str | None = None  # set when the captioner reads video
    text_cache: Any = field(default=None, repr=False)
    video_captioner: Captioner | None = None  # a captioner trained with --temporal


@dataclass
class CaptionView:
    """One image's caption, its CLIPScore, and one attention overlay per generated token (end included)."""

    caption: str
    clip_score: float
    decoding: str  # DecodingConfig.describe()
    words: list[str]  # the tokens' texts, the end token as "<end>"
    overlays: list[Image.Image]  # overlays[i]: where the decoder looked when it wrote words[i]


@dataclass
class ZeroshotView:
    """Each label's probability (in the labels' order) and how they were made."""

    confidences: dict[str, float]
    scoring: str  # "softmax" (CLIP: over the labels, they sum to 1) or "sigmoid" (SigLIP: one per label)
    templates: int  # how many templates were ensembled


@dataclass
class VideoView:
    """One video's caption and where each word looked in time."""

    caption: str
    decoding: str  # DecodingConfig.describe()
    words: list[str]  # the tokens' texts, the end token as "<end>"
    timestamps: list[float]  # seconds: the frames the captioner read
    figure: bytes | None  # PNG, frames x words; None for meanp (its attention belongs to no frame)
    note: str  # what the figure shows, or why there is none


def default_captioner(demo: Path = DEMO_OUT) -> tuple[Path, str]:
    """The captioner `vlkit demo` chose as best under `demo` and a sentence saying so; VlkitError when the
    demo has not run there."""
    summary = demo / "summary.json"
    if not summary.is_file():
        raise VlkitError(
            f"no captioner: {summary} not found (vlkit ships none); run `make demo` (or `vlkit demo`) to "
            "train one, or pass --captioner FOLDER"
        )
    best = (read_json(summary).get("captioning") or {}).get("best")
    if not isinstance(best, str):
        raise VlkitError(f"{summary}: no 'captioning.best' entry (an unfinished demo?); rerun `vlkit demo`")
    from vlkit.train.caption_trainer import BEST_DIR

    run = demo / "sweep" / best
    folder = run / BEST_DIR if (run / BEST_DIR / "config.json").is_file() else run
    if not (folder / "config.json").is_file():
        raise VlkitError(f"{folder}: the demo's best captioner ({best}) is missing; rerun `vlkit demo`")
    return folder, f"the demo's best captioner ({best}, chosen by validation CIDEr-D) from {folder}"


def video_captioner_kind(folder: Path) -> str | None:
    """The temporal module named in a captioner folder's config.json (a video captioner), else None."""
    config = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    kind = config.get(VIDEO_CONFIG_KEY) if isinstance(config, dict) else None
    return str(kind) if kind else None


def load_app_models(config: AppConfig, allow_pickle: bool = False) -> AppModels:
    """Load the CLIP and the captioner the app serves (the captioner: `default_captioner` unless given)."""
    from vlkit.models.captioner.model import load_captioner
    from vlkit.models.clip import PRECISIONS, ClipSpec, load_clip, resolve_device
    from vlkit.runtime.precision import resolve_precision_name

    if config.captioner is None:
        folder, source = default_captioner(config.demo)
    else:
        folder, source = Path(config.captioner), f"--captioner {config.captioner}"
    device = resolve_device(config.device)
    clip = load_clip(ClipSpec(config.clip, config.device, config.precision, allow_pickle))
    kind = video_captioner_kind(folder)
    dtype = PRECISIONS[resolve_precision_name(config.precision, device)]
    captioner = load_captioner(folder, device, dtype)
    if kind is not None:
        note = f"{folder} is a video captioner (temporal module {kind!r}): upload a video in the Video tab"
        return AppModels(clip, None, source, note, _text_cache(), video_captioner=captioner)
    return AppModels(clip, captioner, source, None, _text_cache())


def _text_cache() -> Any:
    from vlkit.zeroshot.classifier import TextEmbeddingCache

    return TextEmbeddingCache(max_entries=TEXT_CACHE_ENTRIES)  # a server takes labels from anyone


def read_upload(path: str | None) -> Image.Image:
    """An uploaded file as RGB, through vlkit's one image reader (not an image, truncated, a decompression
    bomb: one VlkitError naming the upload by its own name, not the server's temporary path)."""
    from vlkit.data.images import read_image

    if not path:
        raise VlkitError("no image: upload one or pick an example")
    try:
        return read_image(path)
    except VlkitError as exc:
        raise VlkitError(str(exc).replace(str(path), f"upload {Path(path).name!r}")) from None


def caption_view(
    models: AppModels, image: Image.Image, decoding: DecodingConfig, heads: str = "mean", layers: str = "mean"
) -> CaptionView:
    """Caption `image` with `decoding`; its CLIPScore with the app's CLIP; one overlay per generated token,
    the maps reduced over heads and layers as `vlkit caption attend --heads --layers` reduces them."""
    from vlkit.captioning.attention import Aggregation, attention_maps
    from vlkit.captioning.clipscore import clip_score
    from vlkit.captioning.generate import caption_images
    from vlkit.pipelines.attend import token_labels
    from vlkit.viz.overlay import attention_overlay

    captioner = models.captioner
    if captioner is None:
        raise VlkitError(models.video_note or "this app serves no image captioner")
    output = caption_images(captioner, [image], decoding, return_attentions=True)
    maps = attention_maps(output, 0, Aggregation.parse(heads, layers)).maps
    caption = output.captions[0]
    score = clip_score(models.clip, [image], [caption]).score
    words = token_labels(output, 0, captioner.tokenizer.eos_token_id)
    overlays = [attention_overlay(image, grid_map) for grid_map in maps]
    return CaptionView(caption, score, decoding.describe(), words, overlays)


def video_view(
    models: AppModels, path: str | None, decoding: DecodingConfig, heads: str = "mean", layers: str = "mean"
) -> VideoView:
    """Caption an uploaded video as the video captioner was trained to read it (its frame count and
    sampling), with the frames x words figure of its cross-attention (heads and decoder layers reduced as
    `vlkit caption attend --videos` reduces them)."""
    import numpy as np

    from vlkit.captioning.attention import Aggregation
    from vlkit.captioning.video import video_sampling
    from vlkit.data.video import read_video
    from vlkit.pipelines.attend_video import attend_clips
    from vlkit.viz.plots import frames_words_figure

    captioner = models.video_captioner
    if captioner is None:
        raise VlkitError("this app serves no video captioner (pass --captioner with one trained --temporal)")
    if not path:
        raise VlkitError("no video: upload one")
    try:
        video = read_video(path, video_sampling(captioner))
    except VlkitError as exc:
        raise VlkitError(str(exc).replace(str(path), f"upload {Path(path).name!r}")) from None
    kind = captioner.video_settings().temporal
    if kind == "meanp":
        from vlkit.captioning.video import caption_videos
        from vlkit.pipelines.attend import token_labels

        output = caption_videos(captioner, [video.frames], decoding)
        words = token_labels(output, 0, captioner.tokenizer.eos_token_id)
        note = "meanp averages the frames before the decoder reads them: no word looks at one frame"
        return VideoView(output.captions[0], decoding.describe(), words, video.timestamps, None, note)
    found = attend_clips(
        captioner, [video.frames], [Path(path).stem], decoding, Aggregation.parse(heads, layers)
    )
    clip = found[0]
    figure = frames_words_figure(
        [np.asarray(f) for f in video.frames], clip.words, clip.weights, clip.caption
    )
    note = f"{len(video.frames)} frames ({kind}); a column: one word's attention over the frames (sums to 1)"
    return VideoView(clip.caption, decoding.describe(), clip.words, video.timestamps, figure, note)


def parse_labels(text: str | None) -> list[str]:
    """Comma-separated labels -> a list: blanks dropped; none, too many, too long or repeated is an error."""
    labels = [label.strip() for label in (text or "").split(",") if label.strip()]
    if not labels:
        raise VlkitError(
            "labels: give at least one label, separated by commas (e.g. 'red circle, blue star')"
        )
    if len(labels) > MAX_LABELS:
        raise VlkitError(f"labels: {len(labels)} given, at most {MAX_LABELS}")
    long = next((label for label in labels if len(label) > MAX_LABEL_CHARS), None)
    if long is not None:
        raise VlkitError(f"labels: {long[:40]!r}... is over {MAX_LABEL_CHARS} characters")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise VlkitError(f"labels: {', '.join(map(repr, repeated))} given more than once")
    return labels


def zeroshot_view(
    models: AppModels, image: Image.Image, labels: Sequence[str], templates: str
) -> ZeroshotView:
    """Each label's probability for `image`: the template set's ensemble of text embeddings (normalized per
    template, averaged, renormalized, as `vlkit zeroshot`), scored as the CLIP was trained to score."""
    import torch

    from vlkit.models.clip import class_probabilities
    from vlkit.zeroshot.classifier import encode_templates, ensemble_embeddings, resolve_templates
    from vlkit.zeroshot.templates import TEMPLATE_SETS

    if templates not in TEMPLATE_SETS:  # a named set only: a file name from a web page is not read
        raise VlkitError(f"templates: unknown set {templates!r} (choose {', '.join(TEMPLATE_SETS)})")
    clip = models.clip
    template_list = resolve_templates(templates)
    texts = ensemble_embeddings(encode_templates(clip, labels, template_list, models.text_cache))  # (C, D)
    with torch.inference_mode():
        image_embedding = clip.encode_images(clip.preprocess([image])).cpu()  # (1, D)
    probabilities = class_probabilities(image_embedding @ texts.T.cpu(), clip)[0]
    confidences = {label: float(p) for label, p in zip(labels, probabilities, strict=True)}
    return ZeroshotView(confidences, clip.scoring, len(template_list))


def example_images(folder: Path, count: int = 3, seed: int = 0) -> list[Path]:
    """`count` shapes-world scenes (64 px, drawn by the world's own renderer from `seed`) as PNGs in
    `folder`: the page's examples, so that it has some without the demo having run."""
    from vlkit.shapes.grammar import COLOURS, SHAPES
    from vlkit.shapes.scenes import image_rng, png_bytes, render_scene, sample_kinds, sample_layout

    folder.mkdir(parents=True, exist_ok=True)
    combos = [(colour, shape) for colour in COLOURS for shape in SHAPES]
    paths = []
    for index in range(count):
        rng = image_rng(seed, "val", 10_000 + index)  # past the world's own val images
        layout = sample_layout(rng, 64, 1 + index % 3)
        scene = render_scene(rng, 64, layout, sample_kinds(rng, combos, len(layout)))
        path = folder / f"example_{index}.png"
        path.write_bytes(png_bytes(scene.image))
        paths.append(path)
    return paths
