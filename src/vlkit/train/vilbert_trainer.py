"""Pre-train and fine-tune ViLBERT (or a peer VL model) on a shapes world.

Pre-training is the paper's three objectives on the world's captions: masked words (cross-entropy on the
masked word pieces), masked regions (KL from each masked region's class distribution to the predicted one,
`heads.masked_region_loss`) and image-text alignment (cross-entropy on true and mismatched pairs).
Fine-tuning trains VQA (cross-entropy over `ANSWERS`), referring expressions (cross-entropy over the real
regions) and retrieval (cross-entropy over each caption's candidates, the true pair first) together: every
step holds a batch of each task and the loss is their weighted sum.

`vlkit.train.loop.run_training` does the rest (accelerate, AdamW with warm-up and cosine decay, checkpoints,
exact resume, the loss log); the data side's batches are functions of the step, so a resumed run sees what an
uninterrupted one would. A run's folder is the model in the HF layout (config.json naming the VL model
class, model.safetensors, the tokenizer), `vlkit_vilbert_train.json` (this run's `VilbertTrainConfig`),
`train_log.jsonl` (each logged step's loss, its parts and the validation figure), `checkpoints/`,
`vlkit_vilbert_result.json`, and for fine-tuning `best/`: the weights of the best validation VQA accuracy
(on the first `val_limit` questions), the folder itself holding the last.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate.utils import extract_model_from_parallel

from vlkit.errors import VlkitError
from vlkit.models.vilbert.heads import masked_region_loss
from vlkit.models.vilbert.tokenizer import load_tokenizer
from vlkit.models.vilbert.vl_models import load_vl_model, vl_model_kind
from vlkit.runtime.distributed import process_state
from vlkit.runtime.files import write_json_atomic
from vlkit.train.loop import LOSS_LOG, run_training
from vlkit.train.vilbert_batches import ViLBertBatches, model_inputs
from vlkit.train.vilbert_data import ViLBertData
from vlkit.train.vilbert_eval import accuracy, vqa_predictions
from vlkit.train.vilbert_setup import (
    build_model,
    check_variant,
    load_data,
    torch_threads,
    with_model_fields_of,
    write_train_config,
)
from vlkit.train.vilbert_train_config import VilbertTrainConfig

log = logging.getLogger(__name__)

RESULT_FILE = "vlkit_vilbert_result.json"
BEST_DIR = "best"
FINETUNE_TASKS = ("vqa", "referring", "retrieval")


@dataclass
class TrainOutcome:
    """Where a run went and how it did."""

    out_dir: Path
    steps: int
    seconds: float  # the training loop's wall time (data loading not included)
    final_loss: float
    parameters: int = 0
    step_seconds: float = float("nan")
    best_dir: Path | None = None  # fine-tuning: the weights of the best validation VQA accuracy
    best_val_vqa_accuracy: float | None = None


# ----------------------------------------------------------------------------------------------- losses


def masked_word_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the masked word pieces: logits (B, T, V), labels (B, T) with -100 off target;
    the mean over the targets (0 when the batch has none)."""
    total = F.cross_entropy(
        logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum"
    )
    return total / (labels != -100).sum().clamp(min=1)


def referring_loss(logits: torch.Tensor, target: torch.Tensor, region_mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the real regions: logits (B, R), target (B,) the referent, region_mask (B, R)."""
    scores = logits.float().masked_fill(~region_mask.bool(), torch.finfo(torch.float32).min)
    return F.cross_entropy(scores, target)


def candidates_loss(scores: torch.Tensor, rows: int) -> torch.Tensor:
    """Cross-entropy over each caption's candidates: scores (B * C,) in groups of C, the true pair first."""
    grouped = scores.float().view(rows, -1)  # (B, C)
    return F.cross_entropy(grouped, torch.zeros(rows, dtype=torch.long, device=grouped.device))


def pretraining_losses(model: Any, batch: dict[str, torch.Tensor], weights: dict[str, float]
                       ) -> dict[str, torch.Tensor]:  # fmt: skip
    """The pre-training objectives of weight > 0 on one batch (masked regions only where it has targets)."""
    inner = extract_model_from_parallel(model)
    out = model(**model_inputs(batch))
    parts = {}
    if weights["word"]:
        parts["word"] = masked_word_loss(inner.masked_word_logits(out), batch["masked_word_labels"])
    if weights["region"] and "region_targets" in batch:
        logits = inner.masked_region_logits(out)  # (B, R, K)
        parts["region"] = masked_region_loss(logits, batch["region_targets"], batch["masked_regions"])
    if weights["alignment"]:
        parts["alignment"] = F.cross_entropy(inner.alignment_logits(out).float(), batch["aligned"])
    return parts


def finetuning_losses(model: Any, batch: dict[str, torch.Tensor], weights: dict[str, float]
                      ) -> dict[str, torch.Tensor]:  # fmt: skip
    """The fine-tuning tasks of weight > 0, each on its part of the step's batch (`FinetuneBatches`)."""
    inner = extract_model_from_parallel(model)
    parts = {}
    for task in FINETUNE_TASKS:
        if not weights[task]:
            continue
        own = task_part(batch, task)
        out = model(**model_inputs(own))
        if task == "vqa":
            parts[task] = F.cross_entropy(inner.answer_logits(out).float(), own["answer"])
        elif task == "referring":
            logits = inner.referring_logits(out)
            parts[task] = referring_loss(logits, own["referring_target"], own["region_mask"])
        else:
            parts[task] = candidates_loss(inner.retrieval_scores(out), own["input_ids"].shape[0])
    return parts


class WeightedLoss:
    """The loop's `loss_fn`: the weighted sum of a phase's losses; the last step's parts are kept for the
    log (`parts`)."""

    def __init__(self, losses: Callable[..., dict[str, torch.Tensor]], weights: dict[str, float]):
        if not any(weights.values()):
            raise VlkitError(f"every loss weight is 0 ({', '.join(weights)}): nothing to train")
        self.losses, self.weights = losses, weights
        self.parts: dict[str, float] = {}

    def __call__(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = self.losses(model, batch, self.weights)
        if not parts:
            raise VlkitError("the batch holds none of the weighted objectives (no region targets?)")
        self.parts = {name: float(value.detach()) for name, value in parts.items()}
        return sum(self.weights[name] * value for name, value in parts.items())


# ---------------------------------------------------------------------------------------------- batches


def task_part(batch: dict[str, torch.Tensor], task: str) -> dict[str, torch.Tensor]:
    """One task's tensors of a fine-tuning batch (their keys without the task's prefix)."""
    prefix = f"{task}."
    return {key[len(prefix) :]: value for key, value in batch.items() if key.startswith(prefix)}


class FinetuneBatches:
    """Step `step`'s fine-tuning batch: the data side's VQA, referring and retrieval batches of that step
    (those of weight > 0), their keys prefixed by the task. Referring keeps its first `rows["referring"]`
    expressions and retrieval its first `rows["retrieval"]` captions (each with all its candidates: a
    caption's C pairs cost C forward passes), so that the step's time goes mostly to VQA."""

    def __init__(self, batches: ViLBertBatches, weights: dict[str, float], rows: dict[str, int]):
        self.batches, self.weights, self.rows = batches, weights, rows

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        out = {}
        for task in FINETUNE_TASKS:
            if not self.weights[task]:
                continue
            part = getattr(self.batches, task)(step)
            if task in self.rows:
                part = {key: value[: self.rows[task]] for key, value in part.items()}
            out.update({f"{task}.{key}": value for key, value in part.items()})
        return out


# ------------------------------------------------------------------------------------------------ runs


def pretrain(
    config: VilbertTrainConfig,
    world_dir: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    model: Any = None,
    data: ViLBertData | None = None,
) -> TrainOutcome:
    """Pre-train on the world's captions (masked words, masked regions, alignment) and save to `out_dir`.

    `model` is a VL model built elsewhere (a peer; default: a new ViLBERT of `config`'s size and variant)
    and `data` the world's batches already loaded (`vilbert_setup.load_data`; default: loaded here)."""
    if model is None:
        check_variant(config)
    data = data or load_data(config, world_dir)
    model = model if model is not None else build_model(config, data)
    weights = {"word": config.word_loss, "region": config.region_loss, "alignment": config.alignment_loss}
    loss = WeightedLoss(pretraining_losses, weights)
    on_log = _Monitor(loss, config, model, data, Path(out_dir), "loss")
    return _run("pretrain", config, data, model, data.train.pretraining, loss, on_log, Path(out_dir), resume)


def finetune(
    config: VilbertTrainConfig,
    world_dir: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    init_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    model: Any = None,
    data: ViLBertData | None = None,
) -> TrainOutcome:
    """Fine-tune on VQA, referring expressions and retrieval together and save to `out_dir`.

    The model is `model`, else the one in `init_dir` (a pre-training run: its tokenizer, regions, encoder
    and size come with it), else a new ViLBERT of `config` (no pre-training)."""
    tokenizer = None
    if model is None and init_dir is None:
        check_variant(config)
    if init_dir is not None:
        vl_model_kind(init_dir)  # a folder that holds no VL model is one error line, before any loading
        config = with_model_fields_of(config, init_dir)
        if data is None:
            tokenizer = load_tokenizer(init_dir)
    data = data or load_data(config, world_dir, tokenizer)
    if model is None:
        model = load_vl_model(init_dir) if init_dir is not None else build_model(config, data)
    weights = {"vqa": config.vqa_loss, "referring": config.referring_loss, "retrieval": config.retrieval_loss}
    loss = WeightedLoss(finetuning_losses, weights)
    rows = {"referring": config.referring_rows, "retrieval": config.retrieval_rows}
    batches = FinetuneBatches(data.train, weights, rows)
    on_log = _Monitor(loss, config, model, data, Path(out_dir), "vqa" if config.vqa_loss else None)
    outcome = _run("finetune", config, data, model, batches, loss, on_log, Path(out_dir), resume, init_dir)
    if on_log.best_step is not None:
        outcome.best_dir, outcome.best_val_vqa_accuracy = Path(out_dir) / BEST_DIR, on_log.best
    return outcome


def _run(phase: str, config: VilbertTrainConfig, data: ViLBertData, model: Any, batches: Callable,
         loss: WeightedLoss, on_log: _Monitor, out_dir: Path, resume: bool, init_dir: Any = None
         ) -> TrainOutcome:  # fmt: skip
    main = process_state().is_main_process
    out_dir.mkdir(parents=True, exist_ok=True)
    if main:
        write_train_config(out_dir, config)
    model.to(process_state().device)
    every = config.eval_every
    evaluated = set(range(every, config.loop.steps + 1, every)) | {config.loop.steps}
    on_log.steps = evaluated
    with torch_threads(config.threads):
        result = run_training(
            model, model.parameters(), batches, loss, config.loop, out_dir, resume, on_log,
            extra_log_steps=evaluated,
        )  # fmt: skip
    model.eval()
    parameters = model.count_parameters()
    outcome = TrainOutcome(
        out_dir, config.loop.steps, result.seconds, result.final_loss, parameters, result.step_seconds
    )
    if main:
        model.save_pretrained(out_dir, tokenizer=data.tokenizer)
        step_seconds = None if math.isnan(result.step_seconds) else result.step_seconds
        write_json_atomic(out_dir / RESULT_FILE, {
            "phase": phase, "steps": config.loop.steps, "final_loss": result.final_loss,
            "train_seconds": round(result.seconds, 3), "step_seconds": step_seconds, "parameters": parameters,
            "init": None if init_dir is None else str(init_dir), "best_step": on_log.best_step,
            "best_val_vqa_accuracy": on_log.best,
        })  # fmt: skip
    log.info("%s: %d steps in %.1f s, final loss %.4f; saved %s", phase, config.loop.steps, result.seconds,
             result.final_loss, out_dir)  # fmt: skip
    return outcome


class _Monitor:
    """The loop's `on_log`: each record gets the step's loss parts; at the validation steps, pre-training
    adds the loss on a fixed validation batch and fine-tuning the VQA accuracy on the first `val_limit`
    validation questions, saving the model to OUT/best when it beats the best so far (read back from the
    log on a resume)."""

    def __init__(self, loss: WeightedLoss, config: VilbertTrainConfig, model: Any, data: ViLBertData,
                 out_dir: Path, validation: str | None):  # fmt: skip
        self.loss, self.config, self.model, self.data, self.out_dir = loss, config, model, data, out_dir
        self.validation = validation if data.val is not None else None  # "loss", "vqa" or None
        self.val_batch = data.val.pretraining(0) if self.validation == "loss" else None
        self.steps: set[int] = set()
        self.best: float | None = None
        self.best_step: int | None = None
        self._read_best = False

    def __call__(self, step: int, record: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {f"loss_{name}": value for name, value in self.loss.parts.items()}
        if step in self.steps and self.validation == "loss":
            out["val_loss"] = self._val_loss()
        elif step in self.steps and self.validation == "vqa":
            out["val_vqa_accuracy"] = self._validate(step)
        return out

    def _val_loss(self) -> float:
        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            batch = {key: value.to(device) for key, value in self.val_batch.items()}
            parts = self.loss.losses(self.model, batch, self.loss.weights)
            value = float(sum(self.loss.weights[name] * part for name, part in parts.items()))
        self.model.train(was_training)
        return value

    def _validate(self, step: int) -> float | None:
        if not self._read_best:
            self._best_from_log()
        was_training = self.model.training
        self.model.eval()
        predicted = vqa_predictions(
            self.model, self.data.val, self.config.eval_batch_size, self.config.val_limit
        )
        self.model.train(was_training)
        score = accuracy(predicted["predicted"] == predicted["answer"])
        if score is not None and (self.best is None or score > self.best):
            self.best, self.best_step = score, step
            if process_state().is_main_process:
                self._save_best(step, score)
        return score

    def _best_from_log(self) -> None:
        self._read_best = True
        path = self.out_dir / LOSS_LOG if self.out_dir is not None else None
        if path is None or not path.exists():
            return
        for line in path.read_text().splitlines():
            record = json.loads(line)
            score = record.get("val_vqa_accuracy")
            if score is not None and (self.best is None or score > self.best):
                self.best, self.best_step = score, record["step"]

    def _save_best(self, step: int, score: float) -> None:
        final = self.out_dir / BEST_DIR
        tmp = self.out_dir / f".{BEST_DIR}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp, tokenizer=self.data.tokenizer)
        write_json_atomic(tmp / "best.json", {"step": step, "val_vqa_accuracy": score})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
