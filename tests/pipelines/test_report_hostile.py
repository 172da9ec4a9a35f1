"""`vlkit report` on a run folder whose JSON files are hostile: markup in every field that comes from data,
and file names that escape their root (absolute, `..`, a symlink leading out). Nothing is injected into the
page, nothing from outside the image root or the run folder is copied into the report, and the rest renders.
"""

from __future__ import annotations

import json
import shutil
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from vlkit.cli.main import main
from vlkit.pipelines.report import SECTIONS

PAYLOADS = ("<script>alert(1)</script>", '" onerror="x', "</td>")
HOSTILE = "".join(PAYLOADS)
SECRET = b"vlkit-hostile-report-secret-5f1e0c\n"
STEM = '<script>x" onerror="x'  # a result file's own name is data too
ESCAPING_NAMES = ("/etc/passwd", "../secret.txt", "../../../secret.txt", "link.png", "val_0000_link.png")


def _png(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 24), colour).save(path)


def _write(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


class _Page(HTMLParser):
    """The tags, attributes and text of the page as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(tag + "." + name, value) for name, value in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture()
def hostile_run(shapes_world, tmp_path) -> tuple[Path, list[Path]]:
    """A run folder whose every data-borne field carries markup; returns it and files outside its roots."""
    run = tmp_path / "run"
    shutil.copytree(shapes_world, run / "world")
    images = run / "world" / "images"
    secret = tmp_path / "secret.txt"  # beside the run
    secret.write_bytes(SECRET)
    (run / "world" / "secret.txt").write_bytes(SECRET)  # inside the run, outside the image root
    outside = tmp_path / "outside.png"
    _png(outside, (1, 2, 3))
    (images / "val_0000_link.png").symlink_to(outside)  # the data section's sample glob meets it
    (images / "link.png").symlink_to(secret)
    meta = json.loads((run / "world" / "meta.json").read_text())
    _write(run / "world" / "meta.json", {**meta, "heldout": [[HOSTILE, HOSTILE]], "classes": [HOSTILE]})

    first = json.loads((shapes_world / "val.json").read_text())["images"][0]["file_name"]
    names = [first, *ESCAPING_NAMES, str(secret), str(outside), HOSTILE]
    pairs = [{"image_id": i, "file_name": n, "caption": HOSTILE, HOSTILE: 0.5} for i, n in enumerate(names)]
    _write(run / "captions" / "evaluation" / "metrics.json",
           {"n_images": len(names), "predictions": HOSTILE,
            "metrics": {HOSTILE: {"value": 0.25}, "cider": {"value": 0.7}},
            "pairs": {"metric": HOSTILE, "top": pairs, "bottom": pairs[:1]}})  # fmt: skip
    _png(run / "attention" / "figures" / f"{Path(first).stem}.png", (30, 30, 200))
    (run / "attention" / "figures" / "secret.png").symlink_to(secret)  # the figure of "../../../secret.txt"
    (run / "attention" / "figures" / "zz_out.png").symlink_to(outside)
    _write(run / "attention" / "grounding.json",
           {"aggregations": [{"name": HOSTILE, "pointing_game": 0.5, "mass_in_mask": 0.4, "n_words": 3}],
            "baselines": {"center": 0.3, "random": 0.1}})  # fmt: skip

    template = {"template": HOSTILE, "top1": 0.5, "top5": 0.9, "seen_top1": 0.6, "unseen_top1": 0.2}
    _write(run / "zeroshot" / f"{STEM}.json",
           {"templates": [template, {**template, "template": "a photo of a {object}.", "top1": 0.4}],
            "n_images": 4, "ensemble": {k: v for k, v in template.items() if k != "template"}})  # fmt: skip
    _png(run / "zeroshot" / f"{STEM}_templates.png", (200, 30, 30))
    (run / "zeroshot" / f"{STEM}_confusion.png").symlink_to(secret)

    method = {"tuning": HOSTILE, "cider": 0.7, "clip_score": 0.6, "chair_i": 0.1, "trainable_params": 10,
              "step_time_s": 0.1, "peak_rss_mib": 500}  # fmt: skip
    _write(run / "sweep" / "SWEEP.json",
           {"methods": [method, {**method, "tuning": "cross-attn"}],
            "baselines": {HOSTILE: {"cider": 0.5, "clip_score": 0.4, "chair_i": 0.2}}})  # fmt: skip
    (run / "sweep" / "SWEEP.png").symlink_to(outside)
    _write(run / "summary.json", {"timings": {HOSTILE: 1.5}})
    _write(run / "clip" / "vlkit_train_config.json", {"model": HOSTILE, HOSTILE: HOSTILE})
    _write(tmp_path / "secret.json", {"token": SECRET.decode().strip()})  # a config that is a link out
    (run / "captioner").mkdir()
    (run / "captioner" / "vlkit_caption_train.json").symlink_to(tmp_path / "secret.json")
    return run, [secret, outside, run / "world" / "secret.txt", Path("/etc/passwd")]


def test_hostile_fields_are_text_and_nothing_outside_the_roots_is_copied(hostile_run):
    run, outside_files = hostile_run
    main(["--quiet", "report", str(run)])
    report = run / "report"
    page = (report / "index.html").read_text()

    # Markup from data shows as text, never as markup.
    assert "<script" not in page.lower() and '" onerror="x' not in page
    assert page.count("<td") == page.count("</td>")  # no data-borne </td> closes a cell early
    parsed = _Page()
    parsed.feed(page)
    assert "script" not in parsed.tags
    assert not [name for name, _ in parsed.attributes if name.split(".")[1].startswith("on")]
    text = "".join(parsed.text)
    # caption x 9, template, tuning, baseline, metric names, predictions, aggregation, timing, heldout
    assert text.count(HOSTILE) >= 15, text.count(HOSTILE)
    assert all(escape(payload) in page for payload in PAYLOADS)

    # Nothing from outside its root reaches the report folder, and no link does either.
    copied = [path for path in report.rglob("*") if path != report / "assets"]
    assert not [path for path in copied if path.is_symlink() or not path.is_file()]
    contents = {path.read_bytes() for path in copied}
    assert not [blob for blob in contents if SECRET.strip() in blob]
    for source in outside_files:
        if source.is_file():
            assert source.read_bytes() not in contents, source
    assets = sorted((report / "assets").iterdir())
    assert assets and all(path.read_bytes().startswith(b"\x89PNG") for path in assets)

    # Each refused file is left out with a note that names it; the other sections still render.
    figures = ("sweep/SWEEP.png", "attention/figures/secret.png", "attention/figures/zz_out.png")
    for name in (*ESCAPING_NAMES, *figures, f"zeroshot/{STEM}_confusion.png"):
        assert f"Left out: {escape(name)}" in page, name
    assert all(f'<section id="{name}">' in page for name in SECTIONS)
    sources = [value for name, value in parsed.attributes if name == "img.src"]
    assert len(sources) >= 5 and all(value.startswith("assets/") for value in sources)
    assert all((report / value).is_file() for value in sources)
    assert "cross-attn" in text and "a photo of a {object}." in text and "0.700" in text


def test_a_section_whose_json_has_the_wrong_shape_says_so_and_the_others_render(tmp_path):
    run = tmp_path / "run"
    pair = {"image_id": 0, "file_name": None, "caption": "a red circle", "clip_score": 0.5}
    _write(run / "captions" / "evaluation" / "metrics.json",
           {"n_images": 1.5, "metrics": {"cider": {"value": "high"}},
            "pairs": {"metric": "clip_score", "top": [pair, {"caption": 3}], "bottom": []}})  # fmt: skip
    _write(run / "sweep" / "SWEEP.json", {"methods": [{"tuning": "lora", "trainable_params": 1.5}]})
    main(["--quiet", "report", str(run)])
    page = (run / "report" / "index.html").read_text()
    assert all(f'<section id="{name}">' in page for name in SECTIONS)
    assert "lora" in page and "high" in page and "could not be read" in page
