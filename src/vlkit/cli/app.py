"""`vlkit app`: caption, per-word attention maps and zero-shot labels for an uploaded image, in the browser
(`vlkit.pipelines.app_page`, on Gradio; the `app` extra)."""

from __future__ import annotations

import typer
from rich.console import Console

from vlkit.cli.options import build, config_options
from vlkit.pipelines.app import AppConfig

console = Console()


@config_options(AppConfig, "settings")
def app(ctx: typer.Context, settings: dict) -> None:
    """Serve a page (and its API, /caption and /zeroshot) for trying the captioner and the CLIP on your own
    images: greedy, beam or sampled captions with their CLIPScore and one attention map per word; zero-shot
    probabilities for your labels. Binds 127.0.0.1 unless --host says otherwise; no analytics."""
    from vlkit.cli.context import allow_pickle
    from vlkit.pipelines.app import load_app_models
    from vlkit.pipelines.app_page import serve

    config = build(AppConfig, settings)
    models = load_app_models(config, allow_pickle(ctx))
    console.print(f"captioner: {models.captioner_source}")
    if models.video_note:
        console.print(f"[yellow]{models.video_note}[/]")
    console.print(f"starting the page on http://{config.host}:{config.port}/ (Ctrl+C stops it)")
    serve(models, config)
