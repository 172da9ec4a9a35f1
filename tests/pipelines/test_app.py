"""`vlkit app` served for real: its API through gradio_client, bad uploads, and the page in headless Chromium.

One server per module (tiny random models), started on a free loopback port. The browser is Debian's
`chromium`, driven by Playwright (its own browser download is not used). With VLKIT_APP_SCREENSHOT=PATH the
page's screenshot is also copied to PATH, and with VLKIT_APP_DEMO=DIR the server serves the demo's best
captioner and `vlkit:shapes-clip` instead (`make app-screenshot` does both, for docs/images/app.png).
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.models.tiny_captioner import save_tiny_parts
from vlkit.models.captioner.model import CaptionerSpec, build_captioner
from vlkit.pipelines.app import AppConfig, caption_view, example_images, load_app_models, read_upload
from vlkit.pipelines.app_page import decoding_from_page

gradio_client = pytest.importorskip("gradio_client", reason="the app extra: pip install 'vlkit[app]'")
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb(path: Path) -> Path:
    """A 200-byte PNG whose header claims 30000 x 30000 pixels: refused before any pixel is decoded."""
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    body = (
        _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(the running app, its models, an example image): one server for the whole module."""
    from vlkit.pipelines.app_page import serve

    root = tmp_path_factory.mktemp("app")
    demo = os.environ.get("VLKIT_APP_DEMO")
    if demo:
        config = AppConfig(demo=Path(demo), precision="fp32")
    else:
        clip, _, gpt2 = save_tiny_parts(root)
        spec = CaptionerSpec(str(clip), str(gpt2), "cross-attn", None, 8)
        config = AppConfig(captioner=str(build_captioner(spec).save(root / "captioner")), clip=str(clip))
    config.port, config.max_upload_mb, config.device = _free_port(), 1, "cpu"
    models = load_app_models(config)
    with pytest.MonkeyPatch.context() as patch:
        _record_other_hosts(patch)
        # gradio_client (the test's side, not the server's) asks huggingface.co for its agent registry when a
        # Client starts, unless huggingface_hub is offline; HF_HUB_OFFLINE=1 does this for a script.
        patch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
        running = serve(models, config, block=False)
        yield running, models, example_images(root / "examples", count=2)[1]
        running.close()


LOOPBACK = ("127.0.0.1", "localhost", "::1")
OTHER_HOSTS: list[str] = []  # hosts this process looked up or connected to while the server ran


def _record_other_hosts(patch: pytest.MonkeyPatch) -> None:
    """Record (and refuse) every look-up of, or connection to, a host other than this machine."""
    lookup, connect = socket.getaddrinfo, socket.socket.connect

    def guarded_lookup(host, *args, **kwargs):
        if str(host) not in LOOPBACK:
            OTHER_HOSTS.append(str(host))
            raise OSError(f"the app test refuses to look up {host}")
        return lookup(host, *args, **kwargs)

    def guarded_connect(self, address):
        if isinstance(address, tuple) and str(address[0]) not in LOOPBACK:
            OTHER_HOSTS.append(str(address[0]))
            raise OSError(f"the app test refuses to connect to {address[0]}")
        return connect(self, address)

    patch.setattr(socket, "getaddrinfo", guarded_lookup)
    patch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture(scope="module")
def client(app):
    return _client(app[0].url)


def _client(url: str):
    """A client that sends no telemetry: gradio_client's own switch needs the environment's too."""
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"  # set by the server's start (quiet_gradio)
    return gradio_client.Client(url, verbose=False, analytics_enabled=False)


def test_the_server_binds_loopback_with_analytics_off(app):
    running = app[0]
    assert running.url.startswith("http://127.0.0.1:")
    assert running.blocks.analytics_enabled is False and os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    api = _client(running.url).view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/caption", "/zeroshot"}
    assert OTHER_HOSTS == []  # the server's start (no version check, no telemetry) and its answers


def test_the_caption_api_gives_the_caption_its_clip_score_and_one_map_per_token(app, client):
    _, models, image_path = app
    caption, score, gallery = client.predict(gradio_client.handle_file(str(image_path)), api_name="/caption")
    greedy = decoding_from_page("greedy", 1, 1.0, 1.0, 0, 1.0, 0, 0, 1.0)
    expected = caption_view(models, read_upload(str(image_path)), greedy)
    assert caption == expected.caption and score == pytest.approx(expected.clip_score, abs=1e-4)
    assert [item["caption"] for item in gallery] == expected.words
    assert all(Image.open(item["image"]).size == expected.overlays[0].size for item in gallery)
    beam = client.predict(
        gradio_client.handle_file(str(image_path)), decoding="beam search", beams=2, api_name="/caption"
    )
    two_beams = decoding_from_page("beam search", 2, 1.0, 1.0, 0, 1.0, 0, 0, 1.0)
    assert beam[0] == caption_view(models, read_upload(str(image_path)), two_beams).caption


def test_the_zeroshot_api_returns_the_label_and_each_labels_confidence(app, client):
    image_path = app[2]
    result = client.predict(
        gradio_client.handle_file(str(image_path)),
        "red circle, blue star, green square",
        api_name="/zeroshot",
    )
    confidences = {row["label"]: row["confidence"] for row in result["confidences"]}
    assert set(confidences) == {"red circle", "blue star", "green square"}
    assert result["label"] == max(confidences, key=confidences.get)
    assert sum(confidences.values()) == pytest.approx(1.0, abs=1e-5)  # a CLIP: softmax over the labels


def test_a_bad_upload_is_an_error_and_the_server_keeps_serving(app, client, tmp_path):
    import httpx

    running, _, image_path = app
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    bad = [
        ((text, "red circle"), "upload 'notes.png': not an image"),
        ((_bomb(tmp_path / "bomb.png"), "red circle"), "decompression bomb"),
        ((image_path, " , "), "at least one label"),
    ]
    for (path, labels), message in bad:
        with pytest.raises(gradio_client.exceptions.AppError, match=message):
            client.predict(gradio_client.handle_file(str(path)), labels, api_name="/zeroshot")
    too_big = {"files": ("big.png", b"\0" * (1024 * 1024 + 1), "image/png")}
    refused = httpx.post(f"{running.url}gradio_api/upload", files=too_big, timeout=30)
    assert refused.status_code == 413  # over --max-upload-mb, refused by the server itself
    result = client.predict(
        gradio_client.handle_file(str(image_path)), "red circle, blue star", api_name="/zeroshot"
    )
    assert {row["label"] for row in result["confidences"]} == {"red circle", "blue star"}
    assert OTHER_HOSTS == []


def test_the_page_in_chromium_captions_maps_each_token_and_scores_typed_labels(app, client, tmp_path):
    if BROWSER is None:
        if os.environ.get("VLKIT_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (make test installs Debian's chromium)")
        pytest.skip("chromium is not installed; `make test` installs it and then requires this test")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python (the dev extra)")
    running, _, image_path = app
    words = [
        item["caption"]
        for item in client.predict(gradio_client.handle_file(str(image_path)), api_name="/caption")[2]
    ]
    elsewhere: list[str] = []

    def only_this_server(route):
        if route.request.url.startswith(running.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=BROWSER, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.route("**/*", only_this_server)
            page.goto(running.url)
            page.locator("#image input[type=file]").set_input_files(str(image_path))
            page.click("#caption-button")
            page.wait_for_function(
                "document.querySelector('#caption textarea').value.length > 0", timeout=60_000
            )
            page.wait_for_function(f"document.querySelectorAll('#maps img').length === {len(words)}")
            loaded = "[...document.querySelectorAll('#maps img')].every(i => i.complete && i.naturalWidth)"
            page.wait_for_function(loaded)  # every map's picture is served and decodes
            titles = page.locator("#maps .caption-label").all_inner_texts()
            assert [t.strip() for t in titles] == [w.strip() for w in words]
            shot = tmp_path / "app.png"
            page.screenshot(path=str(shot), full_page=True)

            page.get_by_role("tab", name="Zero-shot").click()
            page.locator("#zs-image input[type=file]").set_input_files(str(_bomb(tmp_path / "bomb.png")))
            page.click("#zeroshot-button")
            page.wait_for_selector("[data-testid=toast-text]:has-text('decompression bomb')", timeout=60_000)
            page.locator("#zs-image input[type=file]").set_input_files(str(image_path))
            page.locator("#labels textarea").fill("red circle, blue star")
            page.click("#zeroshot-button")
            page.wait_for_selector("#probabilities [data-testid='blue star-confidence-set']", timeout=60_000)
            shown = page.locator("#probabilities meter").evaluate_all(
                "m => m.map(x => [x.ariaLabel, x.value])"
            )
            scoring = page.locator("#scoring").inner_text()
        finally:
            browser.close()
    assert {label for label, _ in shown} == {"red circle", "blue star"}
    assert sum(value for _, value in shown) == pytest.approx(1.0, abs=1e-4) and "softmax" in scoring
    assert elsewhere == []  # the page asked no other host for anything (fonts, analytics, CDNs)
    assert OTHER_HOSTS == []  # nor did the server while it answered
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.std() > 20 and len(np.unique(pixels)) > 50  # text, controls and maps, not a blank page
    if os.environ.get("VLKIT_APP_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["VLKIT_APP_SCREENSHOT"])
