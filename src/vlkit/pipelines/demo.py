"""`vlkit demo`'s library half: the course study, end to end, on the embedded default (the shapes world).

The study's three parts, as the course report lays them out:

- P1: zero-shot prompt analysis: the three seed templates and the 80 CLIP templates, each alone and
  ensembled, top-1 on seen and unseen classes (`zeroshot/`), and the same CLIP's image-text retrieval and
  linear probe (`clip_eval/`);
- P2: the captioner (CLIP vision tower and GPT-2 frozen) with `cross-attn` and three PEFT attempts trained
  on the same budget, side by side with the retrieval baseline (`sweep/`); the best by validation CIDEr-D
  evaluated with every metric (`captions/`);
- P3: per-word attention maps of the best captioner for five fixed validation images and the top-1 and
  last-1 images by CLIPScore, and their grounding (`attention/`).

As in the real study nothing is pretrained here: the CLIP and the GPT-2 are the shipped stand-ins
`vlkit:shapes-clip` and `vlkit:shapes-gpt2` (`vlkit.models.hub`), checked against the world's digest; with
`from_scratch` they are trained again on this world (`vlkit.pipelines.embedded`). Each stage writes into its
own folder and is skipped when its output is complete and made from the same inputs (`Stages`), so a second
run takes seconds and a run stopped half way continues where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vlkit.errors import VlkitError
from vlkit.pipelines.embedded import (
    EmbeddedPlan,
    embedded_plan,
    ensure_clip,
    ensure_lm,
    ensure_world,
    world_digest,
)
from vlkit.runtime.files import read_json, write_bytes_atomic, write_json_atomic

log = logging.getLogger(__name__)
ZEROSHOT_TEMPLATES = ("seed", "imagenet80")
# fp32 on every machine, not `auto`: the figures are compared with the recorded ones (demo_figures.json),
# and bf16 where a CPU has it would move them by more than the stated noise.
DEMO_PRECISION = "fp32"
DEMO_METHODS = ("cross-attn", "lora", "ia3", "prefix")
FIXED_FIGURES = 5  # P3: attention figures for the first five validation images, whatever the captioner
FULL_METRICS = ("cider", "clip_score", "ref_clip_score", "chair", "attributes")
STAGE_FILE = "vlkit_stage.json"


def run_demo(out: Path, seed: int = 0, quick: bool = False, from_scratch: bool = False) -> dict[str, Any]:
    """Run every stage into `out`; write `out/summary.json` and the report; return the summary (with the
    zero-shot results under `"zeroshot_results"` and the report's path under `"report"`, not written).
    `quick` (a tiny world, a few steps) always trains its own CLIP and GPT-2: the stand-ins were trained on
    the default world."""
    plan, stages = embedded_plan(seed, quick), Stages()
    from_scratch = from_scratch or quick
    if not from_scratch:
        from vlkit.pipelines.standins import check_standins_seed

        check_standins_seed(seed)  # before minutes of world generation

    with stages.timed("world_s", "1. the shapes world"):
        train_set, val_set, summary = ensure_world(plan.world, out / "world")
        if summary is None:
            stages.reused.append(out / "world")
    world = out / "world"
    with stages.timed("models_s", "2. the pretrained CLIP and GPT-2"):
        clip_name, lm_name = _models(plan, world, train_set, val_set, out, from_scratch, stages)

    inputs = {"world": world_digest(world), "clip": _identity(clip_name), "lm": _identity(lm_name)}
    with stages.timed("zeroshot_s", "3. P1: zero-shot prompt analysis"):
        results = _prompt_analysis(clip_name, world, out / "zeroshot", stages, inputs)

    from vlkit.pipelines.demo_clip import clip_evaluation

    with stages.timed("clip_eval_s", "4. P1: retrieval and the linear probe"):
        clip_eval = clip_evaluation(clip_name, world, out / "clip_eval", stages, inputs)

    from vlkit.pipelines.demo_captioning import captioning_stages

    captioning, grounding = captioning_stages(
        plan, clip_name, lm_name, world, train_set, val_set, out, stages, inputs
    )
    document = {
        "timings": stages.timings,
        "models": {"clip": clip_name, "lm": lm_name, "from_scratch": from_scratch},
        "zeroshot": {
            name: {"best_template": r["best_template"], "best": best_template(r), "ensemble": r["ensemble"]}
            for name, r in results.items()
        },
        "clip_eval": clip_eval,
        "captioning": captioning,
        "grounding": grounding,
    }
    document["bars"] = study_bars(document)
    if not from_scratch and seed == 0:
        from vlkit.pipelines.demo_figures import drifted_figures

        document["drift"] = drifted_figures(document)  # against the figures recorded with the stand-ins
    from vlkit.pipelines.report import write_report

    with stages.timed("report_s", "8. the HTML report"):
        write_json_atomic(out / "summary.json", document)
        index = write_report(out)
    write_json_atomic(out / "summary.json", document)  # with the report's time
    return {**document, "zeroshot_results": results, "report": index, "reused": stages.reused}


def best_template(result: dict) -> dict:
    """The row of the template with the highest top-1 in a RESULTS.json document."""
    return max(result["templates"], key=lambda t: t["top1"])


def study_bars(document: dict[str, Any]) -> dict[str, Any]:
    """The bars of the best captioner: CIDEr-D and CLIPScore above the retrieval baseline, CHAIR-i at most
    half the baseline's, the best aggregation's pointing game 15 points above the centre baseline."""
    captioning, grounding = document["captioning"], document.get("grounding") or {}
    best = next(m for m in captioning["methods"] if m["tuning"] == captioning["best"])
    base = captioning["retrieval_baseline"]
    scored = [
        a["pointing_game"] for a in grounding.get("aggregations", []) if a.get("pointing_game") is not None
    ]
    pointing, centre = (max(scored) if scored else None), grounding.get("baselines", {}).get("center")

    def above(a, b):
        return None if a is None or b is None else a > b

    return {
        "cider_above_retrieval": above(best["cider"], base["cider"]),
        "clip_score_above_retrieval": above(best["clip_score"], base["clip_score"]),
        "chair_i_at_most_half_retrieval": None
        if best["chair_i"] is None or base["chair_i"] is None
        else best["chair_i"] <= base["chair_i"] / 2,
        "chair_i": best["chair_i"],
        "chair_i_limit": None if base["chair_i"] is None else base["chair_i"] / 2,
        "pointing_game_15_above_centre": None
        if pointing is None or centre is None
        else pointing >= centre + 0.15,
        "pointing_game": pointing,
        "pointing_game_centre": centre,
    }


def _models(
    plan: EmbeddedPlan, world: Path, train_set, val_set, out: Path, from_scratch: bool, stages: Stages
) -> tuple[str, str]:
    """The CLIP and GPT-2 names: the shipped stand-ins (checked against this world), or both trained here."""
    if not from_scratch:
        from vlkit.pipelines.standins import CLIP_NAME, LM_NAME, check_standins_world

        check_standins_world(world)
        log.info("using the shipped stand-ins vlkit:%s and vlkit:%s", CLIP_NAME, LM_NAME)
        return f"vlkit:{CLIP_NAME}", f"vlkit:{LM_NAME}"
    log.info("training a CLIP on the world's alt-text corpus, then a GPT-2 on its captions")
    if ensure_clip(plan.clip, world, out / "clip"):
        stages.reused.append(out / "clip")
    if ensure_lm(plan.lm, train_set, val_set, world, out / "lm"):
        stages.reused.append(out / "lm")
    return str(out / "clip"), str(out / "lm")


def _identity(name: str) -> str:
    """A model's identity for the stage stamps: the digest of its weights (a hub id stands for itself)."""
    from vlkit.models.hub import resolve_model_name

    weights = Path(resolve_model_name(name)) / "model.safetensors"
    if not weights.is_file():
        return name
    digest = hashlib.sha256()
    with weights.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{name}:{digest.hexdigest()}"


def _prompt_analysis(clip_name: str, world: Path, folder: Path, stages: Stages, inputs: dict) -> dict:
    from vlkit.models.clip import ClipSpec, load_clip
    from vlkit.pipelines.zeroshot import run_zeroshot
    from vlkit.viz.plots import template_bar_chart

    files = {name: folder / f"{name}.json" for name in ZEROSHOT_TEMPLATES}
    key = {**inputs, "templates": list(ZEROSHOT_TEMPLATES)}
    if stages.done(folder, key) and all(f.is_file() for f in files.values()):
        return {name: read_json(path) for name, path in files.items()}
    spec = ClipSpec(clip_name, precision=DEMO_PRECISION)
    clip = load_clip(spec)
    data = world / "classification" / "val"
    results = {name: run_zeroshot(spec, data, name, path, clip=clip) for name, path in files.items()}
    # One chart of both sets: the course's three templates first, then the 80 ranked, both ensembles.
    rows = [t for name in ZEROSHOT_TEMPLATES for t in results[name]["templates"]]
    chart = template_bar_chart(
        [t["template"] for t in rows],
        [t["top1"] for t in rows],
        {f"{name} ensemble": results[name]["ensemble"]["top1"] for name in ZEROSHOT_TEMPLATES},
        "zero-shot top-1: the 3 seed templates (orange) and the 80 CLIP templates",
        pinned=len(results["seed"]["templates"]),
    )
    write_bytes_atomic(folder / "prompts.png", chart)
    stages.mark(folder, key)
    return results


class Stages:
    """Times the stages and remembers which are complete: a stage's folder holds `vlkit_stage.json` with the
    digest of what it was made from, written once its outputs are."""

    def __init__(self):
        self.timings: dict[str, float] = {}
        self.reused: list[Path] = []

    @contextlib.contextmanager
    def timed(self, name: str, title: str) -> Iterator[None]:
        log.info("[bold]%s[/]", title, extra={"markup": True})
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = time.perf_counter() - start

    @staticmethod
    def _digest(key: dict) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()

    def done(self, folder: Path, key: dict) -> bool:
        try:
            stamp = read_json(folder / STAGE_FILE)
        except VlkitError:  # absent or unreadable: not done (as embedded's model stamps)
            return False
        if isinstance(stamp, dict) and stamp.get("inputs_sha256") == self._digest(key):
            self.reused.append(folder)
            log.info("reusing %s", folder)
            return True
        return False

    def mark(self, folder: Path, key: dict) -> None:
        write_json_atomic(folder / STAGE_FILE, {"inputs_sha256": self._digest(key), "inputs": key})


def stage_key(*parts: Any) -> dict:
    """Dataclasses and dicts merged into one JSON-able stage key."""
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(dataclasses.asdict(part) if dataclasses.is_dataclass(part) else dict(part))
    return merged
