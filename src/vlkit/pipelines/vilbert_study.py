"""`vlkit vilbert study`'s library half: ViLBERT's ablations, its peers and its baselines, trained the same
way on the same world and regions, side by side; the notes' two questions answered from the figures.

    1. the shapes world (`embedded.ensure_world`, the embedded plan's, or one given) and the region features
       of both region sources (`train.vilbert_setup.load_data`: cached by the data side)
    2. every model of `vilbert_study_runs.MODELS`, each seed: the same pre-training and fine-tuning budget,
       evaluated by the trainer's `evaluate` (VQA by question type, referring, retrieval re-ranking)
    3. the baselines without a model of their own: the CLIP the regions are read with, re-ranking the same
       candidates by its cosine (`vilbert_clip`), and the centre and largest boxes for referring
    4. study.json, study.md (the table), study.png (the chart), figures/ (the co-attention maps), and the
       bars met or missed

Every model's run is skipped when done with the same inputs, so a rerun trains nothing it has and a run
stopped half way continues. `quick` is a tiny world and a few steps of a tiny model: the whole path in
seconds, for the tests. `vlkit report RUN` shows the study when it was written to RUN/vilbert.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlkit.pipelines.demo import Stages
from vlkit.pipelines.embedded import ensure_world
from vlkit.pipelines.vilbert_study_runs import BASELINE_MODELS, load_context
from vlkit.pipelines.vilbert_study_schedule import schedule_runs
from vlkit.runtime.files import write_bytes_atomic, write_json_atomic, write_text_atomic
from vlkit.runtime.machine import cpu_name, load_average
from vlkit.shapes.world import ShapesConfig

log = logging.getLogger(__name__)

STUDY_FILE = "study.json"
# Fine-tuning steps of every model: half the trainer's default (800), so that ten models fit the 25 minutes
# on two cores; validation VQA is within a point of its 800-step figure by then (docs/vilbert.md).
STUDY_FINETUNE_STEPS = 400
METRICS = ("vqa_accuracy", "vqa_heldout_accuracy", "retrieval_r1", "refer_accuracy", "seconds_per_step")


@dataclass
class StudyPlan:
    """The study's sizes: the world, the model and batches every run starts from, the budget, the seeds."""

    world: ShapesConfig
    base: Any  # VilbertTrainConfig
    pretrain_steps: int
    finetune_steps: int
    seeds: tuple[int, ...]
    figure_models: tuple[str, ...] | None = None  # the models whose co-attention is drawn (None: all)
    budget_s: float | None = None  # the whole study's time; a later seed's run only when it fits (None: all)
    workers: int = 1  # runs at a time, each in its own process with one torch thread (1: in this process)


def study_plan(seed: int, quick: bool) -> StudyPlan:
    """The default world (seed 0: the one `vlkit:shapes-clip` was trained on) and the budget measured to fit
    the whole study in 25 minutes on 2 CPU cores (docs/vilbert.md, "The study"); `quick`: seconds."""
    from vlkit.train.vilbert_train_config import PHASE_STEPS, VilbertTrainConfig

    if quick:
        world = ShapesConfig(
            seed=0, n_train=48, n_val=12, per_class_train=1, per_class_val=1, n_alt_text=16,
            n_alt_text_val=4, workers=1,
        )  # fmt: skip
        base = VilbertTrainConfig(
            hidden_size=16, attention_heads=2, text_layers=1, vision_layers=1, coattention_layers=1,
            ffn_size=32, retrieval_rows=2, eval_every=1000, val_limit=16, eval_batch_size=64,
            rerank_candidates=4,
        )  # fmt: skip
        base = dataclasses.replace(base, data=dataclasses.replace(base.data, batch_size=8))
        return StudyPlan(world, base, 2, 2, seeds=(seed,), figure_models=("two-stream",))
    return StudyPlan(
        ShapesConfig(seed=0), VilbertTrainConfig(), PHASE_STEPS["pretrain"], STUDY_FINETUNE_STEPS,
        (seed, seed + 1), budget_s=25 * 60, workers=2,
    )  # fmt: skip


@dataclass
class StudyRequest:
    """What to run; one field per option of `vlkit vilbert study`."""

    out: Path
    seed: int = 0
    quick: bool = False
    world: Path | None = None  # an existing shapes world (default: made in OUT/world)
    seeds: int | None = None  # how many seeds (default: the plan's)
    budget_s: float | None = None  # seeds after the first run only while they fit (default: the plan's)
    threads: int | None = None  # torch CPU threads of every run (default: the plan's)
    workers: int | None = None  # runs at a time, each in its own process (default: the plan's)


def run_study(request: StudyRequest) -> dict[str, Any]:
    """Run (or reuse) every model and baseline into `request.out`; write study.json, study.md and study.png;
    return the study.json document."""
    start, load = time.perf_counter(), load_average()
    plan = study_plan(request.seed, request.quick)
    seeds = plan.seeds if request.seeds is None else tuple(request.seed + k for k in range(request.seeds))
    stages, out = Stages(), request.out
    with stages.timed("world_s", "1. the shapes world and the region features"):
        world = request.world or out / "world"
        if request.world is None:
            ensure_world(plan.world, world)
        workers = request.workers if request.workers is not None else plan.workers
        threads = request.threads if request.threads is not None else (1 if workers > 1 else None)
        if threads is not None:
            plan.base = dataclasses.replace(plan.base, threads=threads)
        if plan.base.feature_cache_dir is None:  # the study's own cache: it builds what it needs
            plan.base = dataclasses.replace(plan.base, feature_cache_dir=str(out / "region_features"))
        context = load_context(out, world, plan.base, plan.pretrain_steps, plan.finetune_steps, stages)
    budget = request.budget_s if request.budget_s is not None else plan.budget_s
    with stages.timed("models_s", "2. the models, each seed"):
        results = schedule_runs(context, seeds, start, budget, workers, plan.figure_models)
    from vlkit.pipelines.vilbert_clip import clip_rerank

    with stages.timed("cost_s", "3. the cost of a training step, every model side by side"):
        costs = _step_costs(context, [name for name in results if name not in BASELINE_MODELS])

    with stages.timed("baselines_s", "4. the CLIP baseline"):
        paths = [
            context.image_paths[image_id] for image_id in context.data["boxes"].val.regions.regions.image_ids
        ]
        clip = clip_rerank(context.base, context.data["boxes"].val, paths)
    document = study_document(results, clip, plan, seeds, request.quick)
    for row in document["variants"]:
        row.update(costs.get(row["name"], {}))
    document["budget"].update(workers=workers, threads=context.base.threads, budget_s=budget)
    document["timings"] = stages.timings
    document["models_wall_s"] = sum(run["wall_s"] for runs in results.values() for run in runs)
    document["total_s"] = time.perf_counter() - start
    document["cpu"], document["load"] = cpu_name(), {"start": load, "end": load_average()}
    document["world"] = {"folder": str(world), "meta_sha256": context.world_digest}
    write_study(out, document)
    return document


def _step_costs(context: Any, names: list[str]) -> dict[str, dict[str, float]]:
    """The step costs (`vilbert_study_cost`), measured once per set of inputs and read back after."""
    from vlkit.pipelines.vilbert_study_cost import step_costs
    from vlkit.runtime.files import read_json

    folder, key = context.out / "cost", {name: context.key(name, 0) for name in names}
    if context.stages.done(folder, key) and (folder / "cost.json").is_file():
        return read_json(folder / "cost.json")
    costs = step_costs(context, names)
    write_json_atomic(folder / "cost.json", costs)
    context.stages.mark(folder, key)
    return costs


def mean_over_seeds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A model's row: each figure's mean over its seeds (None where a seed lacks it), the seeds' own rows."""

    def mean(values: list[Any]) -> float | None:
        present = [v for v in values if v is not None]
        return sum(present) / len(present) if present and len(present) == len(values) else None

    row: dict[str, Any] = {"name": runs[0]["name"]}
    for key in (*METRICS, "train_s"):
        row[key] = mean([run.get(key) for run in runs])
    types = sorted({t for run in runs for t in run.get("vqa_by_type") or {}})
    row["vqa_by_type"] = {t: mean([(run.get("vqa_by_type") or {}).get(t) for run in runs]) for t in types}
    row["params"] = runs[0].get("params")
    row["step_seconds"] = {
        phase: mean([run["phases"][phase]["step_seconds"] for run in runs])
        for phase in ("pretrain", "finetune")
        if all(phase in run["phases"] for run in runs)
    }
    row["seeds"] = [run["seed"] for run in runs]
    row["per_seed"] = [{k: run.get(k) for k in ("seed", *METRICS, "train_s")} for run in runs]
    return row


def study_document(
    results: dict[str, list[dict[str, Any]]], clip: dict[str, Any], plan: StudyPlan, seeds: tuple[int, ...],
    quick: bool,
) -> dict[str, Any]:  # fmt: skip
    """study.json: the models' rows, the baselines, the bars, the pointing game, the budget."""
    rows = {name: mean_over_seeds(runs) for name, runs in results.items()}
    refer = results["two-stream"][0].get("refer_baselines") or {}
    prior = (results["two-stream"][0].get("vqa_baselines") or {}).get("type_prior")
    baselines = {
        "question_only": _baseline(rows["question-only"]),
        "image_only": _baseline(rows["image-only"]),
        "type_prior": {"vqa_accuracy": prior},  # each type's most frequent training answer
        "clip": clip,
        "refer_centre": {"refer_accuracy": refer.get("centre")},
        "refer_largest": {"refer_accuracy": refer.get("largest")},
        "refer_chance": {"refer_accuracy": refer.get("chance")},
    }
    pointing = {
        name: runs[0]["pointing"] for name, runs in results.items() if runs and runs[0].get("pointing")
    }
    return {
        "variants": [row for name, row in rows.items() if name not in BASELINE_MODELS],
        "baselines": baselines,
        "bars": study_bars(rows["two-stream"], baselines),
        "pointing": pointing,
        "seeds": list(seeds),
        "budget": {
            "pretrain_steps": plan.pretrain_steps,
            "finetune_steps": plan.finetune_steps,
            "batch_size": plan.base.data.batch_size,
            "model": {
                k: getattr(plan.base, k)
                for k in (
                    "hidden_size",
                    "attention_heads",
                    "text_layers",
                    "vision_layers",
                    "coattention_layers",
                    "ffn_size",
                )
            },
            "retrieval": results["two-stream"][0].get("retrieval_protocol"),
        },  # fmt: skip
        "quick": quick,
    }


def _baseline(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("vqa_accuracy", "vqa_heldout_accuracy", "vqa_by_type", "retrieval_r1", "refer_accuracy", "seeds")
    return {key: row.get(key) for key in (*keep, "per_seed")}


def study_bars(two_stream: dict[str, Any], baselines: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issue's first bars for the two-stream model: VQA >= 80%, VQA >= question-only + 30 points,
    referring above the centre and the largest box. Each: its text, the figure, the limit, met or not."""
    vqa, refer = two_stream.get("vqa_accuracy"), two_stream.get("refer_accuracy")
    question_only = baselines["question_only"].get("vqa_accuracy")

    def bar(text: str, value: float | None, limit: float | None, strict: bool = False) -> dict[str, Any]:
        met = None if value is None or limit is None else (value > limit if strict else value >= limit)
        return {"text": text, "value": value, "limit": limit, "met": met}

    centre = baselines["refer_centre"]["refer_accuracy"]
    largest = baselines["refer_largest"]["refer_accuracy"]
    return {
        "vqa_80": bar("two-stream VQA accuracy >= 80%", vqa, 0.8),
        "vqa_30_above_question_only": bar(
            "two-stream VQA >= question-only + 30 points",
            vqa,
            None if question_only is None else question_only + 0.3,
        ),
        "refer_above_centre": bar("two-stream referring > centre box", refer, centre, strict=True),
        "refer_above_largest": bar("two-stream referring > largest box", refer, largest, strict=True),
    }


def write_study(out: Path, document: dict[str, Any]) -> None:
    """study.json, study.md and study.png into `out` (each written whole or not at all)."""
    from vlkit.pipelines.vilbert_study_table import study_markdown
    from vlkit.viz.vilbert_chart import study_chart

    write_json_atomic(out / STUDY_FILE, document)
    write_text_atomic(out / "study.md", study_markdown(document))
    lines = {
        "question-only": document["baselines"]["question_only"],
        "image-only": document["baselines"]["image_only"],
        "type prior": document["baselines"]["type_prior"],
        "CLIP": document["baselines"]["clip"],
        "centre box": document["baselines"]["refer_centre"],
        "largest box": document["baselines"]["refer_largest"],
    }
    write_bytes_atomic(out / "study.png", study_chart(document["variants"], lines))
