"""The demo's P2 and P3 (`vlkit.pipelines.demo`): the tuning methods side by side, the best one evaluated with
every metric, and its attention maps and grounding.

P2 is a tuning sweep (`vlkit.pipelines.sweep`): every method of `DEMO_METHODS` trains on the same steps,
batch and captions from the shared cache of the frozen CLIP's features, two at a time on separate cores, and
is scored on all validation images; the best by validation CIDEr-D is evaluated again with every metric and
its best and worst pairs (`captions/evaluation/`), beside the retrieval baseline (`captions/
retrieval_evaluation/`). P3 draws its per-word attention for the five fixed validation images and the top-1
and last-1 by CLIPScore, and measures the grounding of every word on all validation images.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from vlkit.data.captions import CaptionDataset
from vlkit.pipelines.demo import DEMO_METHODS, DEMO_PRECISION, FIXED_FIGURES, FULL_METRICS, Stages, stage_key
from vlkit.pipelines.embedded import EmbeddedPlan
from vlkit.runtime.files import read_json

log = logging.getLogger(__name__)


def demo_sweep_config(plan: EmbeddedPlan, clip_name: str, lm_name: str):
    """The P2 budget every method shares (`EmbeddedPlan`: steps, batch, learning rate)."""
    from vlkit.models.captioner.config import CaptionerSpec
    from vlkit.pipelines.sweep import SweepConfig
    from vlkit.train.config import CaptionTrainConfig

    train = CaptionTrainConfig(
        CaptionerSpec(clip_name, lm_name, "cross-attn"), batch_size=plan.captioner_batch
    )
    train.loop.seed, train.loop.steps = plan.lm.loop.seed, plan.captioner_steps
    train.loop.learning_rate = plan.captioner_learning_rate
    train.loop.warmup_steps = min(train.loop.warmup_steps, max(1, plan.captioner_steps // 10))
    return SweepConfig(train, list(DEMO_METHODS), clip_model=clip_name, processes=2, validate=False)


def captioning_stages(
    plan: EmbeddedPlan,
    clip_name: str,
    lm_name: str,
    world: Path,
    train_set: CaptionDataset,
    val_set: CaptionDataset,
    out: Path,
    stages: Stages,
    inputs: dict,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """P2 and P3 into `out/sweep`, `out/captions`, `out/attention`; (the summary's captioning part, the best
    captioner's grounding)."""
    config = demo_sweep_config(plan, clip_name, lm_name)
    key = stage_key(inputs, {"sweep": dataclasses.asdict(config)})
    sweep_json = out / "sweep" / "SWEEP.json"
    with stages.timed("captioners_s", f"5. P2: {len(config.methods)} tuning methods, the same budget"):
        if stages.done(sweep_json.parent, key) and sweep_json.is_file():
            sweep = read_json(sweep_json)
        else:
            from vlkit.pipelines.sweep import run_sweep

            sweep = run_sweep(config, train_set, val_set, sweep_json, sweep_json.parent)
            stages.mark(sweep_json.parent, key)
    best = max(sweep["methods"], key=lambda row: row["cider"] if row["cider"] is not None else -1.0)
    log.info("best by validation CIDEr-D: %s (%.3f)", best["tuning"], best["cider"])

    with stages.timed("evaluation_s", "6. P2: the best captioner and the retrieval baseline, every metric"):
        evaluation, retrieval = _evaluate_best(best, clip_name, world, out, stages, key)
    with stages.timed("attention_s", "7. P3: attention maps for every word, and grounding"):
        grounding, p3 = _attention(best, evaluation, world, out, stages, key)

    baseline = sweep["baselines"].get("retrieval", {})
    captioning = {
        "methods": [
            {k: row[k] for k in ("tuning", "cider", "clip_score", "chair_i", "trainable_params")}
            | {"trainable_share": row["trainable_share"], "step_time_s": row["step_time_s"]}
            for row in sweep["methods"]
        ],
        "best": best["tuning"],
        "best_chosen_by": "validation CIDEr-D",
        "retrieval_baseline": {k: baseline.get(k) for k in ("cider", "clip_score", "chair_i")},
        "budget": sweep["budget"],
        "metrics_file": str(out / "captions" / "evaluation" / "metrics.json"),
        "metrics": evaluation["metrics"],
        "retrieval_baseline_metrics": retrieval["metrics"],
        "attention": p3,
        "grounding": grounding,
    }
    return captioning, grounding


def _evaluate_best(best: dict, clip_name: str, world: Path, out: Path, stages: Stages, key: dict):
    from vlkit.pipelines.evaluate import EvaluationRequest, run_evaluation

    folder = out / "captions"
    files = (folder / "evaluation" / "metrics.json", folder / "retrieval_evaluation" / "metrics.json")
    best_key = {**key, "best": best["tuning"]}
    if stages.done(folder, best_key) and all(f.is_file() for f in files):
        return read_json(files[0]), read_json(files[1])
    from vlkit.models.clip import ClipSpec, load_clip

    clip = load_clip(ClipSpec(clip_name, precision=DEMO_PRECISION))
    request = EvaluationRequest(
        predictions=out / "sweep" / best["tuning"] / "val_predictions.json",  # (written by the sweep)
        annotations=world / "val.json",
        images=world / "images",
        out=folder / "evaluation",
        model=clip_name,
        metrics=FULL_METRICS,
        allow_empty=True,  # a model's empty caption is a result to score, not a broken file
    )
    evaluation = run_evaluation(request, clip)
    retrieval = run_evaluation(
        dataclasses.replace(
            request,
            predictions=out / "sweep" / "retrieval" / "val_predictions.json",
            out=folder / "retrieval_evaluation",
        ),
        clip,
    )
    stages.mark(folder, best_key)
    return evaluation, retrieval


def _attention(best: dict, evaluation: dict, world: Path, out: Path, stages: Stages, key: dict):
    from vlkit.models.captioner.model import load_captioner
    from vlkit.pipelines.attend import AttendRequest, run_attend

    folder = out / "attention"
    pairs = evaluation.get("pairs") or {}
    ends = {
        label: pairs[side][0] for label, side in (("top_1", "top"), ("last_1", "bottom")) if pairs.get(side)
    }
    val = read_json(world / "val.json")
    fixed = [Path(image["file_name"]).stem for image in val["images"][:FIXED_FIGURES]]
    p3 = {
        "fixed": fixed,
        **{
            label: {
                "file_name": pair["file_name"],
                "caption": pair["caption"],
                "clip_score": pair.get("clip_score"),
                "figure": f"attention/figures/{Path(pair['file_name']).stem}.png",
            }
            for label, pair in ends.items()
        },
    }
    p3_key = {**key, "best": best["tuning"], "figures": p3}
    if stages.done(folder, p3_key) and (folder / "grounding.json").is_file():
        return read_json(folder / "grounding.json"), p3
    attend = run_attend(
        load_captioner(Path(best["checkpoint"])),
        AttendRequest(
            out=folder,
            annotations=world / "val.json",
            figures=FIXED_FIGURES,
            figure_stems={Path(pair["file_name"]).stem for pair in ends.values()},
        ),
    )
    stages.mark(folder, p3_key)
    return attend.get("grounding"), p3
