"""`vlkit app`'s web page: Gradio lays it out, serves it and its API; this module wires the tabs to
`vlkit.pipelines.app` and sets Gradio's safety switches.

Gradio (the `app` extra) is imported only when a page is built, and only after `quiet_gradio` has turned its
telemetry off: with analytics on, Gradio posts usage to api.gradio.app and asks it for the newest version on
every `Blocks()` (its `analytics.py`); off, it also sets huggingface_hub's HF_HUB_DISABLE_TELEMETRY. The
theme names system fonts only, so the page loads no font from any host (Gradio's GoogleFont would fetch
fonts.googleapis.com), and server-side rendering (a Node process), MCP, PWA, monitoring and share links are
all off. The page binds 127.0.0.1 unless told otherwise and refuses uploads over `AppConfig.max_upload_mb`.

The image inputs are read with `preprocess=False`: Gradio's own Image preprocessing opens every upload with
Pillow before the handler runs, so a non-image or a decompression bomb would fail inside Gradio with a
generic error; here the handler gets the uploaded file's path (already checked by Gradio to lie in its
upload cache) and vlkit's one image reader says what is wrong, on the page, as a `gr.Error`.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlkit.errors import VlkitError
from vlkit.pipelines.app import (
    AppConfig,
    AppModels,
    caption_view,
    example_images,
    parse_labels,
    read_upload,
    video_view,
    zeroshot_view,
)

log = logging.getLogger(__name__)

DECODING_MODES = ("greedy", "beam search", "sampling")
DEFAULT_LABELS = "red circle, blue square, green triangle, yellow star"
SCORING_NOTES = {
    "softmax": "a softmax over the labels (CLIP was trained with a contrastive softmax): they sum to 1, so "
    "each label's probability depends on the others given",
    "sigmoid": "a sigmoid per label with the model's logit bias (SigLIP was trained with a sigmoid loss): "
    "each label's probability stands alone and they need not sum to 1",
}
SYSTEM_FONTS = (["ui-sans-serif", "system-ui", "sans-serif"], ["ui-monospace", "Consolas", "monospace"])


def quiet_gradio() -> None:
    """No analytics, version checks or hub telemetry, whatever the environment said (set before import;
    huggingface_hub, imported already by transformers, is told directly: it read its environment then)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None:
        hub_constants.HF_HUB_DISABLE_TELEMETRY = True


def _gradio() -> Any:
    quiet_gradio()
    try:
        import gradio
    except ImportError:
        raise VlkitError("vlkit app needs Gradio: pip install 'vlkit[app]'") from None
    return gradio


@dataclass
class RunningApp:
    """A page being served (from `serve`): its address, the Gradio app and its examples' folder, to close."""

    url: str
    blocks: Any
    examples: Path

    def close(self) -> None:
        self.blocks.close()
        shutil.rmtree(self.examples, ignore_errors=True)


def _payload_path(payload: Any) -> str | None:
    """An image input's value under preprocess=False: Gradio's FileData as a dict (or None)."""
    if payload is None:
        return None
    if isinstance(payload, dict):
        return payload.get("path")
    raise VlkitError(f"image: expected an uploaded file, got {type(payload).__name__}")


def _number(value: Any, name: str, kind: type = float) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise VlkitError(f"{name}: expected a number, got {value!r}") from None


def decoding_from_page(
    mode: str,
    beams: Any,
    length_penalty: Any,
    temperature: Any,
    top_k: Any,
    top_p: Any,
    seed: Any,
    no_repeat_ngram: Any,
    repetition_penalty: Any,
) -> Any:
    """The page's decoding controls -> a DecodingConfig (its own checks name what is out of range)."""
    from vlkit.captioning.config import DecodingConfig

    if mode not in DECODING_MODES:
        raise VlkitError(f"decoding: unknown mode {mode!r} (choose {', '.join(DECODING_MODES)})")
    common: dict[str, Any] = {
        "batch_size": 1,
        "no_repeat_ngram_size": _number(no_repeat_ngram, "no repeated n-grams", int),
        "repetition_penalty": _number(repetition_penalty, "repetition penalty"),
    }
    if mode == "beam search":
        beam = {
            "num_beams": _number(beams, "beams", int),
            "length_penalty": _number(length_penalty, "penalty"),
        }
        return DecodingConfig(**beam, **common)
    if mode == "sampling":
        drawn = {
            "temperature": _number(temperature, "temperature"),
            "top_k": _number(top_k, "top-k", int),
            "top_p": _number(top_p, "top-p"),
            "seed": _number(seed, "seed", int),
        }
        return DecodingConfig(sample=True, **drawn, **common)
    return DecodingConfig(**common)


def build_page(models: AppModels, clip_name: str, examples: list[Path]) -> Any:
    """The Blocks of the page: a caption tab (when the captioner reads images) and a zero-shot tab."""
    gr = _gradio()

    def on_error(function):
        @functools.wraps(function)  # the signature too: Gradio names the API's parameters after it
        def handler(*args):
            try:
                return function(*args)
            except VlkitError as exc:
                raise gr.Error(str(exc), print_exception=False) from None

        return handler

    def caption(
        image, decoding, beams, length_penalty, temperature, top_k, top_p, seed, no_repeat_ngram,
        repetition_penalty, heads, layers,
    ):  # fmt: skip
        config = decoding_from_page(
            decoding,
            beams,
            length_penalty,
            temperature,
            top_k,
            top_p,
            seed,
            no_repeat_ngram,
            repetition_penalty,
        )
        view = caption_view(models, read_upload(_payload_path(image)), config, str(heads), str(layers))
        return view.caption, round(view.clip_score, 4), list(zip(view.overlays, view.words, strict=True))

    def caption_video(video, decoding, beams, heads, layers):
        config = decoding_from_page(decoding, beams, 1.0, 1.0, 0, 1.0, 0, 0, 1.0)
        view = video_view(models, _payload_path(video), config, str(heads), str(layers))
        figure = None if view.figure is None else _png_image(view.figure)
        return view.caption, figure, view.note

    def zeroshot(image, labels, templates):
        picture = read_upload(_payload_path(image))
        return zeroshot_view(models, picture, parse_labels(labels), str(templates)).confidences

    with gr.Blocks(title="vlkit", analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        gr.Markdown(_header(models, clip_name))
        if models.video_note:
            gr.Markdown(f"**Video:** {models.video_note}.", elem_id="video-note")
        with gr.Tabs():
            if models.captioner is not None:
                with gr.Tab("Caption", id="caption-tab"):
                    button, inputs, outputs = _caption_tab(gr, models, examples)
                    button.click(on_error(caption), inputs, outputs, api_name="caption", preprocess=False)
            if models.video_captioner is not None:
                with gr.Tab("Video", id="video-tab"):
                    button, inputs, outputs = _video_tab(gr, models)
                    button.click(
                        on_error(caption_video), inputs, outputs, api_name="caption_video", preprocess=False
                    )
            with gr.Tab("Zero-shot", id="zeroshot-tab"):
                button, inputs, output = _zeroshot_tab(gr, models, examples)
                button.click(on_error(zeroshot), inputs, output, api_name="zeroshot", preprocess=False)
    return page


def _caption_tab(gr: Any, models: AppModels, examples: list[Path]) -> tuple[Any, list[Any], list[Any]]:
    """(the button, its inputs, its outputs: caption, CLIPScore, the gallery of maps)."""
    n_layers = int(models.captioner.model.decoder.config.n_layer) if models.captioner else 0
    with gr.Row():
        with gr.Column():
            image = gr.Image(type="filepath", label="image", sources=["upload", "clipboard"], elem_id="image")
            if examples:
                gr.Examples([[str(p)] for p in examples], [image], label="examples")
            mode = gr.Radio(list(DECODING_MODES), value="greedy", label="decoding")
            with gr.Accordion("decoding settings", open=False):
                beams = gr.Slider(1, 8, value=3, step=1, label="beams (beam search)")
                penalty = gr.Slider(0.0, 2.0, value=1.0, step=0.1, label="length penalty (beam search)")
                temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.1, label="temperature (sampling)")
                top_k = gr.Slider(0, 100, value=0, step=1, label="top-k, 0: all (sampling)")
                top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="top-p (sampling)")
                seed = gr.Number(value=0, precision=0, label="seed (sampling)")
                ngram = gr.Slider(0, 4, value=0, step=1, label="no repeated n-grams of N tokens (0: off)")
                repetition = gr.Slider(1.0, 2.0, value=1.0, step=0.05, label="repetition penalty (1: off)")
            with gr.Accordion("attention maps", open=False):
                heads = gr.Radio(["mean", "max"], value="mean", label="heads")
                layer_choices = ["mean", "rollout", "last", *map(str, range(n_layers))]
                layers = gr.Dropdown(layer_choices, value="mean", label="decoder layers")
            button = gr.Button("Caption", variant="primary", elem_id="caption-button")
        with gr.Column():
            caption = gr.Textbox(label="caption", interactive=False, elem_id="caption")
            score = gr.Number(label="CLIPScore", interactive=False, elem_id="score")
            gallery = gr.Gallery(
                label="attention maps, one per generated token",
                columns=4, object_fit="contain", format="png", elem_id="maps", allow_preview=False,
            )  # fmt: skip
    controls = [
        image,
        mode,
        beams,
        penalty,
        temperature,
        top_k,
        top_p,
        seed,
        ngram,
        repetition,
        heads,
        layers,
    ]
    return button, controls, [caption, score, gallery]


def _video_tab(gr: Any, models: AppModels) -> tuple[Any, list[Any], list[Any]]:
    """(the button, its inputs: video file, decoding, beams, heads, layers; its outputs: caption, the
    frames x words figure, a note). A plain file input: Gradio's Video component would convert the upload
    with an ffmpeg program; vlkit's reader (PyAV) reads it as it is, or says what is wrong with it."""
    from vlkit.data.video import VIDEO_EXTENSIONS

    n_layers = int(models.video_captioner.model.decoder.config.n_layer) if models.video_captioner else 0
    with gr.Row():
        with gr.Column():
            video = gr.File(label="video", file_types=list(VIDEO_EXTENSIONS), elem_id="video")
            mode = gr.Radio(["greedy", "beam search"], value="greedy", label="decoding")
            beams = gr.Slider(1, 8, value=3, step=1, label="beams (beam search)")
            heads = gr.Radio(["mean", "max"], value="mean", label="heads")
            layers = gr.Dropdown(["mean", "last", *map(str, range(n_layers))], value="mean", label="layers")
            button = gr.Button("Caption the video", variant="primary", elem_id="video-button")
        with gr.Column():
            caption = gr.Textbox(label="caption", interactive=False, elem_id="video-caption")
            figure = gr.Image(label="frames x words", type="pil", interactive=False, elem_id="video-figure")
            note = gr.Markdown(elem_id="video-figure-note")
    return button, [video, mode, beams, heads, layers], [caption, figure, note]


def _png_image(data: bytes) -> Any:
    import io

    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


def _zeroshot_tab(gr: Any, models: AppModels, examples: list[Path]) -> tuple[Any, list[Any], Any]:
    """(the button, its inputs: image, labels, template set; its output, the probabilities)."""
    from vlkit.zeroshot.templates import TEMPLATE_SETS

    with gr.Row():
        with gr.Column():
            image = gr.Image(
                type="filepath", label="image", sources=["upload", "clipboard"], elem_id="zs-image"
            )
            if examples:
                gr.Examples([[str(p)] for p in examples], [image], label="examples")
            labels = gr.Textbox(value=DEFAULT_LABELS, label="labels, separated by commas", elem_id="labels")
            templates = gr.Radio(list(TEMPLATE_SETS), value="seed", label="prompt templates, ensembled")
            button = gr.Button("Score the labels", variant="primary", elem_id="zeroshot-button")
        with gr.Column():
            output = gr.Label(label="probabilities", elem_id="probabilities")
            gr.Markdown(f"Probabilities: {SCORING_NOTES[models.clip.scoring]}.", elem_id="scoring")
    return button, [image, labels, templates], output


def _header(models: AppModels, clip_name: str) -> str:
    captioner = models.captioner_source
    return (
        "## vlkit: caption, attention maps and zero-shot labels\n"
        f"Captioner: {captioner}. CLIP (zero-shot labels and CLIPScore): `{clip_name}`, "
        f"{models.clip.scoring} scoring."
    )


def serve(models: AppModels, config: AppConfig, block: bool = True) -> RunningApp:
    """Build the page and serve it on `config.host:config.port`; with `block`, until interrupted."""
    import inspect

    from vlkit.runtime import progress

    gr = _gradio()
    progress.set_enabled(False)  # a bar per request would only fill the server's console
    folder = Path(tempfile.mkdtemp(prefix="vlkit-app-examples-"))
    page = build_page(models, config.clip, example_images(folder))
    page.queue(default_concurrency_limit=1)  # one model, one request at a time; the rest wait their turn
    settings = {
        "server_name": config.host,
        "server_port": config.port,
        "share": False,
        "max_file_size": f"{config.max_upload_mb}mb",
        "allowed_paths": [str(folder)],
        "ssr_mode": False,
        "mcp_server": False,
        "pwa": False,
        "enable_monitoring": False,
        "run_history": False,  # kept in the browser or sent to a Hugging Face bucket (Gradio 6.24 on)
        "footer_links": ["api", "gradio", "settings"],
        "show_error": False,
        "quiet": True,  # the CLI prints the address; Gradio's own lines would suggest share=True
        "theme": gr.themes.Default(font=SYSTEM_FONTS[0], font_mono=SYSTEM_FONTS[1]),
        "prevent_thread_lock": not block,
    }
    known = inspect.signature(page.launch).parameters  # an older Gradio 6 lacks the newer features' switches
    running = RunningApp("", page, folder)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio checks its own start over HTTP: no log
    try:
        page.launch(**{name: value for name, value in settings.items() if name in known})
    except OSError as exc:  # the port is taken, or the address is not this machine's
        running.close()
        raise VlkitError(f"--host {config.host} --port {config.port}: cannot serve there ({exc})") from None
    except BaseException:
        running.close()
        raise
    running.url = f"http://{config.host}:{page.server_port}/"
    if block:
        running.close()  # launch returned: the server was stopped
    return running
