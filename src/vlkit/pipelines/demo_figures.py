"""The demo's figures on the shipped stand-ins, recorded once and compared at the end of every default run.

`vlkit standins record-demo --summary runs/demo/summary.json` writes `vlkit/models/standins/demo_figures.json`
from a reference `vlkit demo` (default seed, the shipped stand-ins); every later default demo compares its
own figures with it and warns, naming each figure, where one drifted beyond the stated noise (`NOISE`): the
captioners' figures are too slow to check in the test suite, so the demo checks itself.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vlkit.errors import VlkitError
from vlkit.models.hub import STANDINS_DIR
from vlkit.runtime.files import read_json, write_json_atomic

log = logging.getLogger(__name__)
FIGURES_FILE = STANDINS_DIR / "demo_figures.json"
# Allowed drift from the recorded figures. Repeated runs on one machine give the same figures; on another CPU
# (other float rounding in the matmuls) a few greedy tokens may change, which these margins allow for.
NOISE = {
    "zeroshot": 0.005,
    "clip_eval": 0.005,
    "cider": 0.05,
    "clip_score": 0.03,
    "chair_i": 0.02,
    "pointing_game": 0.03,
}


def demo_figures(summary: dict[str, Any]) -> dict[str, float]:
    """The checked figures of a demo summary, flat: `zeroshot.seed.best`, `cross-attn.cider`, ..."""
    figures: dict[str, float] = {}
    for name, entry in summary["zeroshot"].items():
        figures[f"zeroshot.{name}.best"] = entry["best"]["top1"]
        figures[f"zeroshot.{name}.ensemble"] = entry["ensemble"]["top1"]
    for method in summary["captioning"]["methods"]:
        for key in ("cider", "clip_score", "chair_i"):
            if method[key] is not None:
                figures[f"{method['tuning']}.{key}"] = method[key]
    clip_eval = summary.get("clip_eval")
    if clip_eval:
        for direction in ("image_to_text", "text_to_image"):
            figures[f"clip_eval.{direction}.R@1"] = clip_eval["retrieval"][direction]["R@1"]
        figures["clip_eval.probe.top1"] = clip_eval["probe"]["top1"]
    pointing = summary.get("bars", {}).get("pointing_game")
    if pointing is not None:
        figures["best.pointing_game"] = pointing
    return figures


def _noise(name: str) -> float:
    for prefix in ("zeroshot", "clip_eval"):
        if name.startswith(f"{prefix}."):
            return NOISE[prefix]
    return NOISE[name.rsplit(".", 1)[1]]


def record_demo_figures(summary_path: Path, target: Path = FIGURES_FILE) -> dict[str, Any]:
    summary = read_json(summary_path)
    models = summary.get("models", {})
    if models.get("from_scratch", True) or not str(models.get("clip", "")).startswith("vlkit:"):
        raise VlkitError(
            f"{summary_path}: not a demo on the shipped stand-ins (run `vlkit demo` without flags)"
        )
    document = {
        "made_by": "vlkit demo (default seed, the shipped stand-ins)",
        "budget": summary["captioning"].get("budget"),
        "noise": NOISE,
        "figures": demo_figures(summary),
    }
    write_json_atomic(target, document)
    return document


def drifted_figures(summary: dict[str, Any], expected_path: Path = FIGURES_FILE) -> list[dict[str, Any]]:
    """The figures of `summary` beyond the noise of the recorded ones (warned about); [] when none, or when
    nothing is recorded for this budget."""
    if not expected_path.is_file():
        return []
    expected = read_json(expected_path)
    if expected.get("budget") != summary["captioning"].get("budget"):
        log.info("demo figures: recorded for another budget, not compared")
        return []
    drifted = []
    for name, value in demo_figures(summary).items():
        reference = expected["figures"].get(name)
        if reference is not None and abs(value - reference) > _noise(name):
            drifted.append({"figure": name, "value": value, "recorded": reference, "noise": _noise(name)})
            log.warning(
                "demo figure %s is %.4f, recorded %.4f (noise allowed: %.3f)",
                name,
                value,
                reference,
                _noise(name),
            )
    return drifted
