"""The training loop every vlkit trainer shares: accelerate for devices and mixed precision, AdamW with
warm-up and cosine decay (transformers' schedule), periodic crash-safe checkpoints, exact resume, a loss log.

Batches are a pure function of the step (`batch_for_step(step)`), and torch's generator is reseeded from
(seed, step) before each step (for dropout), so a resumed run sees exactly the batches and dropout masks an
uninterrupted run would have seen, and the weights come out identical. Checkpoints hold the parameters that
train (a tied tensor once) and the persistent buffers: a frozen 1B-parameter model with a small adapter
checkpoints the adapter and its optimizer state, not the billion frozen weights. accelerate does device
placement, autocast and (under `accelerate launch`) gradient all-reduce; this module only adds what it
lacks: the safetensors-only checkpoints of `vlkit.train.checkpoint`, the NaN guard and the step-indexed data
contract.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from transformers import get_cosine_schedule_with_warmup

from vlkit.errors import ConfigError, VlkitError
from vlkit.runtime import progress
from vlkit.runtime.distributed import launched_on_cpu, process_state
from vlkit.train.checkpoint import TrainState, latest_complete, load_checkpoint, save_checkpoint
from vlkit.train.config import LoopConfig

log = logging.getLogger(__name__)

LOSS_LOG = "train_log.jsonl"


@dataclass
class LoopResult:
    steps_done: int
    final_loss: float
    seconds: float
    resumed_from: int
    step_seconds: float = float("nan")  # mean time of one optimizer step (batch, forward, backward, update)


def resolve_mixed_precision(choice: str) -> str:
    """'auto' -> bf16 on a GPU that has it (else fp16), and no autocast on a CPU.

    On the CPU, even one with AMX, bf16 autocast made the embedded default's small CLIP slower to train
    (0.38 s against 0.33 s a step: the backward pass's casts cost more than its small matmuls save), so it is
    only used there when asked for.
    """
    if choice != "auto":
        if choice not in ("no", "bf16", "fp16"):
            problem = f"unknown value {choice!r} (choose no, bf16, fp16 or auto)"
            raise ConfigError(LoopConfig, "mixed_precision", problem)
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def make_accelerator(mixed_precision: str) -> Accelerator:
    """An Accelerator for this run. accelerate keeps one process-wide state and refuses a second
    Accelerator with other settings, which a notebook or a test running several trainings needs: reset it
    first unless this process was started by `accelerate launch` (whose settings must win)."""
    from accelerate.state import AcceleratorState

    if PartialState._shared_state and process_state().num_processes == 1:
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=resolve_mixed_precision(mixed_precision), cpu=launched_on_cpu())


def _truncate_log(path: Path, step: int) -> None:
    """After a resume from `step`, drop the log lines of steps the crashed run did after its checkpoint."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def run_training(
    model: torch.nn.Module,
    parameters: Iterable[torch.nn.Parameter],
    batch_for_step: Callable[[int], dict[str, torch.Tensor]],
    loss_fn: Callable[[torch.nn.Module, dict[str, torch.Tensor]], torch.Tensor],
    config: LoopConfig,
    out_dir: Path,
    resume: bool = False,
    on_log: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None,
    extra_log_steps: Collection[int] = (),
    batches_are_shares: bool = False,
) -> LoopResult:
    """Train `model` for `config.steps` steps; checkpoints go to `out_dir/checkpoints`, the log to `out_dir`.

    `batch_for_step(step)` returns the global batch of step `step` (0-based); under `accelerate launch` with N
    processes each process trains on its N-th share (`process_share`) and DDP averages the gradients.
    `loss_fn(model, batch)` returns a scalar loss. `on_log(step, record)` may add fields (e.g. a validation
    loss) to each log record; a record is written every `config.log_every` steps, at the last step and at
    each of `extra_log_steps` (e.g. the ends of epochs, for a per-epoch validation). With
    `batches_are_shares`, `batch_for_step` already returns this process's share (a shard stream's batches
    decode only their own images).
    """
    accelerator = make_accelerator(config.mixed_precision)
    params = [p for p in parameters if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, config.steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    ckpt_dir, log_path = out_dir / "checkpoints", out_dir / LOSS_LOG
    out_dir.mkdir(parents=True, exist_ok=True)
    start = 0
    if resume:
        start = _restore(accelerator, model, optimizer, scheduler, ckpt_dir)
        if accelerator.is_main_process:
            _truncate_log(log_path, start)
    elif accelerator.is_main_process and log_path.exists():
        log_path.unlink()
    t0, loss_value, in_steps = time.perf_counter(), float("nan"), 0.0
    model.train()
    with progress.make_progress() as bar:
        task = bar.add_task("train", total=config.steps, completed=start, status="")
        for step in range(start, config.steps):
            step_start = time.perf_counter()
            torch.manual_seed(_step_seed(config.seed, step, accelerator.process_index))
            batch = batch_for_step(step)
            if accelerator.num_processes > 1 and not batches_are_shares:
                batch = process_share(batch, accelerator.process_index, accelerator.num_processes)
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            with accelerator.autocast():
                loss = loss_fn(model, batch)
            # The logged loss is the global batch's: the mean of the processes' (equal-sized) shares.
            detached = loss.detach()
            if accelerator.num_processes > 1:
                detached = accelerator.reduce(detached, "mean")
            loss_value = float(detached)
            if not math.isfinite(loss_value):
                raise VlkitError(
                    f"loss became {loss_value} at step {step + 1}; training stopped, the last good checkpoint"
                    f" in {ckpt_dir} is kept (lower --learning-rate or check the data)"
                )
            accelerator.backward(loss)
            if config.max_grad_norm:
                accelerator.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            in_steps += time.perf_counter() - step_start
            done = step + 1
            bar.update(task, completed=done, status=f"loss {loss_value:.4f}")
            if done % config.log_every == 0 or done == config.steps or done in extra_log_steps:
                record = {
                    "step": done,
                    "loss": loss_value,
                    "lr": scheduler.get_last_lr()[0],
                    "seconds": round(time.perf_counter() - t0, 3),
                }
                record.update(on_log(done, record) if on_log else {})
                if accelerator.is_main_process:
                    with log_path.open("a") as handle:
                        handle.write(json.dumps(record) + "\n")
            if done % config.checkpoint_every == 0 or done == config.steps:
                _save(accelerator, model, optimizer, scheduler, ckpt_dir, done, config)
    accelerator.wait_for_everyone()
    steps_run = max(0, config.steps - start)
    return LoopResult(
        done if config.steps > start else start,
        loss_value,
        time.perf_counter() - t0,
        start,
        in_steps / steps_run if steps_run else float("nan"),
    )


def process_share(batch: dict[str, torch.Tensor], index: int, count: int) -> dict[str, torch.Tensor]:
    """Process `index`'s share of a global batch: the `index`-th of `count` equal consecutive slices of every
    tensor's rows. The global batch stays what one process would train on, so the same command gives the
    same loss curve on 1 process or N (gradients are averaged across processes by DDP)."""
    return {
        key: tensor[share_slice(tensor.shape[0], index, count, f"rows of {key!r}")]
        for key, tensor in batch.items()
    }


def share_slice(rows: int, index: int, count: int, what: str = "rows") -> slice:
    """Process `index`'s share of `rows` (a global batch's): the `index`-th of `count` equal consecutive
    slices; `what` names the rows in the error when they do not split evenly."""
    if rows % count:
        raise VlkitError(
            f"--batch-size: {rows} {what} do not split evenly over {count} processes; "
            f"use a multiple of {count}"
        )
    size = rows // count
    return slice(index * size, (index + 1) * size)


def _step_seed(seed: int, step: int, process: int) -> int:
    """A seed per (run seed, step, process): each process draws its own dropout masks, resumable by step."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{step}/{process}".encode()).digest()[:8], "little") >> 1


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What a checkpoint keeps: the parameters that train (`named_parameters` names a tied tensor once, so
    GPT-2's output layer, tied to its token embedding, is not written twice) and the persistent buffers."""
    state = {name: p for name, p in model.named_parameters() if p.requires_grad}
    persistent = model.state_dict(keep_vars=True)
    state.update({name: b for name, b in model.named_buffers() if name in persistent})
    return state


def _save(accelerator, model, optimizer, scheduler, ckpt_dir: Path, step: int, config: LoopConfig) -> None:
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = TrainState(
            step=step,
            model=trainable_state(accelerator.unwrap_model(model)),
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            extra={"loop_config": asdict(config)},
        )
        save_checkpoint(ckpt_dir, state)


def _restore(accelerator, model, optimizer, scheduler, ckpt_dir: Path) -> int:
    checkpoint = latest_complete(ckpt_dir)
    if checkpoint is None:
        log.info("--resume: no complete checkpoint in %s, starting from step 0", ckpt_dir)
        return 0
    state = load_checkpoint(checkpoint)
    unwrapped = accelerator.unwrap_model(model)
    expected = set(trainable_state(unwrapped))
    if set(state.model) != expected:
        missing, unexpected = sorted(expected - set(state.model)), sorted(set(state.model) - expected)
        raise VlkitError(
            f"{checkpoint}: its tensors do not match the model being trained "
            f"(missing {missing[:2]}, unexpected {unexpected[:2]}); resume with the settings of the first run"
        )
    unwrapped.load_state_dict(state.model, strict=False)
    optimizer.load_state_dict(state.optimizer)
    scheduler.load_state_dict(state.scheduler)
    log.info("resumed from %s (step %d)", checkpoint, state.step)
    return state.step


def validation_logger(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, dict[str, torch.Tensor]], torch.Tensor],
    batch: dict[str, torch.Tensor],
    every: int,
) -> Callable[[int, dict[str, Any]], dict[str, Any]]:
    """An `on_log` hook that adds the loss on a fixed validation batch every `every` steps."""

    def on_log(step: int, record: dict[str, Any]) -> dict[str, Any]:
        if step % every:
            return {}
        was_training = model.training
        model.eval()
        with torch.inference_mode():
            device = next(model.parameters()).device
            val_loss = float(loss_fn(model, {k: v.to(device) for k, v in batch.items()}))
        model.train(was_training)
        return {"val_loss": val_loss}

    return on_log
