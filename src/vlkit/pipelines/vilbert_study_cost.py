"""The cost of a training step of each model of the study, measured side by side under the same conditions.

The runs' own step times (`TrainOutcome.step_seconds`) depend on what else the machine ran meanwhile (the
other worker, other jobs), so the notes' question "at what cost?" gets its own measurement: in one process,
one torch thread, each model's pre-training step and fine-tuning step (forward, the trainer's losses,
backward) on the same batch, the models taken in turn for `rounds` rounds so that a change of load touches
them all alike; the median of each. New weights are timed (a step's time does not depend on their values).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from vlkit.pipelines.vilbert_study_runs import MODELS, StudyContext, data_key, new_model

ROUNDS = 5  # timed rounds after one untimed (warm-up) round


def step_costs(context: StudyContext, names: list[str], rounds: int = ROUNDS) -> dict[str, dict[str, float]]:
    """{model: {"pretrain_step_s", "finetune_step_s"}}: the median seconds of each step over `rounds`."""
    from vlkit.train.vilbert_setup import torch_threads
    from vlkit.train.vilbert_trainer import (
        FinetuneBatches,
        WeightedLoss,
        finetuning_losses,
        pretraining_losses,
    )

    base = context.base
    pre_weights = {"word": base.word_loss, "region": base.region_loss, "alignment": base.alignment_loss}
    fine_weights = {"vqa": base.vqa_loss, "referring": base.referring_loss, "retrieval": base.retrieval_loss}
    steps = {
        "pretrain_step_s": WeightedLoss(pretraining_losses, pre_weights),
        "finetune_step_s": WeightedLoss(finetuning_losses, fine_weights),
    }
    models, batches = {}, {}
    for name in names:
        spec = MODELS[name]
        data = context.data[data_key(spec)]
        models[name] = new_model(spec, context.config(spec, 0, context.finetune_steps), data).train()
        rows = {"referring": base.referring_rows, "retrieval": base.retrieval_rows}
        batches[name] = {
            "pretrain_step_s": data.train.pretraining(0),
            "finetune_step_s": FinetuneBatches(data.train, fine_weights, rows)(0),
        }
    times: dict[str, dict[str, list[float]]] = {name: {key: [] for key in steps} for name in names}
    with torch_threads(1):
        for round_index in range(rounds + 1):
            for name in names:
                for key, loss in steps.items():
                    seconds = _time_step(models[name], loss, batches[name][key])
                    if round_index:  # the first round warms up
                        times[name][key].append(seconds)
    return {
        name: {key: statistics.median(values) for key, values in keys.items()} for name, keys in times.items()
    }


def _time_step(model: Any, loss: Any, batch: dict[str, Any]) -> float:
    start = time.perf_counter()
    loss(model, batch).backward()
    seconds = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    return seconds
