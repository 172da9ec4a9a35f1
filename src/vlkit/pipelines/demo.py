"""`vlkit demo`'s library half: the whole study on the embedded default (the shapes world), end to end.

Each stage writes into its own folder under `out` and is skipped when its output is already complete, so a
demo stopped half way continues where it stopped (the CLIP resumes from its newest checkpoint). The stages
are the library's own: `embedded` makes the world and the from-scratch models, then zero-shot, captioner
training, prediction, evaluation, attention and the report run as their commands run them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from vlkit.captioning.generate import predict_captions
from vlkit.captioning.retrieval import retrieval_captions
from vlkit.data.captions import CaptionDataset
from vlkit.models.captioner.config import CaptionerSpec
from vlkit.models.captioner.model import load_captioner
from vlkit.models.clip import ClipSpec, load_clip
from vlkit.pipelines.attend import AttendRequest, run_attend
from vlkit.pipelines.embedded import (
    EmbeddedPlan,
    embedded_plan,
    ensure_clip,
    ensure_lm,
    ensure_world,
    is_made_from,
    start_from,
)
from vlkit.pipelines.evaluate import EvaluationRequest, run_evaluation
from vlkit.pipelines.report import write_report
from vlkit.pipelines.zeroshot import run_zeroshot
from vlkit.runtime.files import write_json_atomic
from vlkit.train.caption_trainer import train_captioner
from vlkit.train.config import CaptionTrainConfig

log = logging.getLogger(__name__)
ZEROSHOT_TEMPLATES = ("seed", "imagenet80")


def _stage(name: str) -> float:
    log.info("[bold]%s[/]", name, extra={"markup": True})
    return time.perf_counter()


def run_demo(out: Path, seed: int = 0, quick: bool = False) -> dict[str, Any]:
    """Run every stage into `out`; write `out/summary.json` and the report; return the summary (with the
    zero-shot results under `"zeroshot_results"` and the report's path under `"report"`, not written)."""
    plan, timings, reused = embedded_plan(seed, quick), {}, []
    world, clip_dir = out / "world", out / "clip"

    start = _stage("1. the shapes world")
    # Read (and checked) once, for the CLIP, the LM and the captioner.
    train_set, val_set, summary = ensure_world(plan.world, world)
    if summary is None:  # (a reused world is logged by ensure_world)
        reused.append(world)
    else:
        log.info(
            "%d train / %d val images, %d classes, held out: %s",
            summary.n_train,
            summary.n_val,
            len(summary.classes),
            ", ".join(f"{c} {s}" for c, s in summary.heldout),
        )
    timings["world_s"] = time.perf_counter() - start

    start = _stage("2. a CLIP trained from scratch on the world's alt-text corpus")
    if ensure_clip(plan.clip, world, clip_dir):
        reused.append(clip_dir)
    timings["clip_train_s"] = time.perf_counter() - start

    start = _stage("3. zero-shot prompt analysis")
    results = {}
    for templates in ZEROSHOT_TEMPLATES:
        results[templates] = run_zeroshot(
            ClipSpec(str(clip_dir)),
            world / "classification" / "val",
            templates,
            out / "zeroshot" / f"{templates}.json",
        )
    timings["zeroshot_s"] = time.perf_counter() - start

    captioning = _captioning_stages(plan, world, train_set, val_set, clip_dir, out, timings, reused)
    document = {
        "timings": timings,
        "zeroshot": {
            name: {"best_template": r["best_template"], "best": best_template(r), "ensemble": r["ensemble"]}
            for name, r in results.items()
        },
        "captioning": captioning,
    }
    write_json_atomic(out / "summary.json", document)
    index = write_report(out)
    return {**document, "zeroshot_results": results, "report": index, "reused": reused}


def best_template(result: dict) -> dict:
    """The row of the template with the highest top-1 in a RESULTS.json document."""
    return max(result["templates"], key=lambda t: t["top1"])


def _captioning_stages(
    plan: EmbeddedPlan,
    world: Path,
    train_set: CaptionDataset,
    val_set: CaptionDataset,
    clip_dir: Path,
    out: Path,
    timings: dict,
    reused: list[Path],
) -> dict:
    """The decoder LM, the cross-attention captioner on the CLIP's frozen vision tower, and its evaluation."""
    lm_dir, captioner_dir = out / "lm", out / "captioner"

    start = _stage("4. a GPT-2 trained on the captions alone")
    if ensure_lm(plan.lm, train_set, val_set, world, lm_dir):
        reused.append(lm_dir)
    timings["lm_train_s"] = time.perf_counter() - start

    start = _stage("5. the cross-attention captioner (CLIP vision tower and GPT-2 frozen)")
    if is_made_from(captioner_dir, world):
        reused.append(captioner_dir)
    else:
        config = CaptionTrainConfig(CaptionerSpec(str(clip_dir), str(lm_dir), "cross-attn"))
        config.loop.seed, config.loop.steps = plan.clip.loop.seed, plan.captioner_steps
        config.loop.checkpoint_every = max(1, plan.captioner_steps // 4)
        train_captioner(config, train_set, val_set, captioner_dir, resume=start_from(captioner_dir, world))
    timings["captioner_train_s"] = time.perf_counter() - start

    start = _stage("6. captions for the validation images, evaluated")
    captioner = load_captioner(captioner_dir)
    predictions_path = out / "captions" / "val_predictions.json"
    write_json_atomic(predictions_path, predict_captions(captioner, val_set.image_paths()))
    request = EvaluationRequest(
        predictions=predictions_path,
        annotations=world / "val.json",
        images=world / "images",
        out=out / "captions" / "evaluation",
        model=str(clip_dir),
        metrics=("cider", "clip_score", "ref_clip_score", "chair", "attributes"),
        allow_empty=True,  # a model's empty caption is a result to score, not a broken file
    )
    clip = load_clip(str(clip_dir))
    report = run_evaluation(request, clip)
    log.info("captions evaluated: %s", request.out / "metrics.json")
    # The bar to beat: the caption of the nearest training image by the same CLIP's image embedding.
    retrieval_path = out / "captions" / "retrieval_predictions.json"
    write_json_atomic(retrieval_path, retrieval_captions(clip, train_set, val_set.image_paths()))
    retrieval = run_evaluation(
        dataclasses.replace(
            request, predictions=retrieval_path, out=out / "captions" / "retrieval_evaluation"
        ),
        clip,
    )
    timings["captioning_eval_s"] = time.perf_counter() - start

    start = _stage("7. attention maps for every word, and grounding measured")
    pairs = report["pairs"]
    stems = {Path(p["file_name"]).stem for key in ("top", "bottom") for p in pairs.get(key, [])}
    attend = run_attend(
        captioner,
        AttendRequest(out=out / "attention", annotations=world / "val.json", figure_stems=stems),
    )
    timings["attention_s"] = time.perf_counter() - start
    return {
        "metrics_file": str(request.out / "metrics.json"),
        "metrics": report["metrics"],
        "retrieval_baseline": retrieval["metrics"],
        "grounding": attend.get("grounding"),
    }
