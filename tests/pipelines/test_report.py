"""`vlkit report`: a self-contained HTML folder, escaped data, rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlkit.cli.main import main
from vlkit.pipelines.report import SECTIONS

XSS = "<img src=x onerror=alert(1)>"
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _png(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 24), colour).save(path)


@pytest.fixture()
def run_dir(shapes_world, tmp_path) -> Path:
    """A run folder like `vlkit demo` writes, with a caption that tries to inject HTML."""
    run = tmp_path / "run"
    shutil.copytree(shapes_world, run / "world")
    template = {
        "template": "a photo of a {object}.",
        "top1": 0.5,
        "top5": 0.9,
        "seen_top1": 0.6,
        "unseen_top1": 0.2,
    }
    zeroshot = {"templates": [template, {**template, "template": "{object} <b>bold</b>"}], "n_images": 4,
                "ensemble": {k: v for k, v in template.items() if k != "template"}}  # fmt: skip
    (run / "zeroshot").mkdir()
    (run / "zeroshot" / "seed.json").write_text(json.dumps(zeroshot))
    _png(run / "zeroshot" / "seed_templates.png", (200, 30, 30))
    first = json.loads((shapes_world / "val.json").read_text())["images"][0]["file_name"]
    pair = {"image_id": 0, "file_name": first, "caption": XSS, "clip_score": 0.5}
    metrics = {"n_images": 1, "predictions": "p.json", "metrics": {"cider": {"value": 0.7}},
               "pairs": {"metric": "clip_score", "top": [pair], "bottom": [pair]}}  # fmt: skip
    (run / "captions" / "evaluation").mkdir(parents=True)
    (run / "captions" / "evaluation" / "metrics.json").write_text(json.dumps(metrics))
    _png(run / "attention" / "figures" / f"{Path(first).stem}.png", (30, 30, 200))
    sweep = {"methods": [{"tuning": "cross-attn", "cider": 0.7, "clip_score": 0.6, "chair_i": 0.1,
                          "trainable_params": 10, "step_time_s": 0.1, "peak_rss_mib": 500}],
             "baselines": {"retrieval": {"cider": 0.5, "clip_score": 0.4, "chair_i": 0.2}}}  # fmt: skip
    (run / "sweep").mkdir()
    (run / "sweep" / "SWEEP.json").write_text(json.dumps(sweep))
    return run


def test_report_escapes_data_and_needs_no_other_host(run_dir):
    main(["--quiet", "report", str(run_dir)])
    page = (run_dir / "report" / "index.html").read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and XSS not in page
    assert "{object} &lt;b&gt;bold&lt;/b&gt;" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched from elsewhere
    sources = re.findall(r'src="([^"]+)"', page)
    assert sources and all(s.startswith("assets/") and (run_dir / "report" / s).is_file() for s in sources)
    assert all(f'<section id="{name}">' in page for name in SECTIONS)


def test_report_of_an_empty_folder_says_what_is_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    main(["--quiet", "report", str(tmp_path / "empty")])
    page = (tmp_path / "empty" / "report" / "index.html").read_text()
    assert page.count('class="missing"') >= 5 and "vlkit caption sweep" in page


def test_report_of_a_missing_folder_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path / "nope")])
    assert exit_info.value.code == 2 and "run folder not found" in capsys.readouterr().err


HARNESS = """<!DOCTYPE html><html><body><iframe id="f" src="{src}" width="1200" height="900"></iframe><script>
document.getElementById('f').onload = () => {{
  let out;
  try {{
    const d = document.getElementById('f').contentDocument;
    const images = [...d.images];
    out = {{sections: [...d.querySelectorAll('section')].map(s => s.id), images: images.length,
           loaded: images.filter(i => i.complete && i.naturalWidth > 0).length,
           injected: d.querySelectorAll('img[src="x"]').length, shown: d.body.innerText.includes({xss})}};
  }} catch (e) {{ out = {{error: String(e)}}; }}
  const pre = document.createElement('pre'); pre.id = 'result'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}};
</script></body></html>"""


def _chromium(tmp_path: Path, *args: str) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    done = subprocess.run(
        [BROWSER, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000", *args],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return done.stdout


def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    if BROWSER is None:
        if os.environ.get("VLKIT_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (make test installs Debian's chromium)")
        pytest.skip("chromium is not installed; `make test` installs it and then requires this test")
    main(["--quiet", "report", str(run_dir)])
    index = run_dir / "report" / "index.html"
    harness = tmp_path / "harness.html"
    harness.write_text(HARNESS.format(src=index.as_uri(), xss=json.dumps(XSS)))
    dom = _chromium(tmp_path, "--allow-file-access-from-files", "--dump-dom", harness.as_uri())
    found = re.search(r'<pre id="result">(.*?)</pre>', dom)
    assert found, dom[-500:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["sections"] == list(SECTIONS)
    assert result["images"] >= 4 and result["loaded"] == result["images"]
    assert result["injected"] == 0 and result["shown"] is True
    shot = tmp_path / "shot.png"
    _chromium(tmp_path, "--window-size=1200,1600", f"--screenshot={shot}", index.as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.std() > 20 and len(np.unique(pixels)) > 50  # text, tables and figures, not a blank page
