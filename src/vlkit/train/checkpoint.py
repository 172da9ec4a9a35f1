"""Training checkpoints that survive a kill at any moment and never unpickle anything.

A checkpoint is a folder `step-000123/` holding the model's weights, the optimizer's state and the
scheduler's and loop's counters, all as safetensors + JSON, and a `manifest.json` with the SHA-256 of every
file. It is written under a temporary name and renamed into place, and the manifest is written last, so a
folder without a manifest, or whose files don't match it, is partial and is never loaded.

accelerate's `save_state` would pickle the optimizer (torch.save); we keep to safetensors so that a resume
never runs untrusted code, which is why this small module exists.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vlkit.errors import VlkitError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_STEP_DIR = re.compile(r"^step-(\d{9})$")


@dataclass
class TrainState:
    """Everything a resume needs, apart from the config (which lives beside the checkpoints)."""

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    extra: dict[str, Any]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (for safetensors) and the JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, per_param in state_dict["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param_id}/{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        param_id, key = name.split("/", 1)
        state.setdefault(int(param_id), {})[key] = tensor
    for param_id, values in rest["scalars"].items():
        state.setdefault(int(param_id), {}).update(values)
    # JSON turns tuples into lists; the optimizers' own state dicts hold `betas` as a tuple.
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in rest["param_groups"]]
    return {"state": state, "param_groups": groups}


def _fault_pause(step: int) -> None:
    """Fault injection for the crash tests: with VLKIT_FAULT_PAUSE_IN_CHECKPOINT=SECONDS set, stop half way
    through writing each checkpoint (its weights written, its manifest not), so that a test can kill the
    process there; with SECONDS@STEP, only in the checkpoint of step STEP. Unset, this does nothing."""
    pause = os.environ.get("VLKIT_FAULT_PAUSE_IN_CHECKPOINT")
    if pause:
        seconds, _, only_step = pause.partition("@")
        if not only_step or int(only_step) == step:
            time.sleep(float(seconds))


def save_checkpoint(folder: Path, state: TrainState, keep: int = 2) -> Path:
    """Write `folder/step-XXXXXXXXX/` atomically (temp folder, manifest last, rename); keep `keep`."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{state.step:09d}"
    tmp = folder / f".tmp-step-{state.step:09d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model = {k: v.detach().contiguous().cpu() for k, v in state.model.items()}
    save_file(model, str(tmp / "model.safetensors"))
    _fault_pause(state.step)
    opt_tensors, opt_rest = _flatten_optimizer(state.optimizer)
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    meta = {"step": state.step, "optimizer": opt_rest, "scheduler": state.scheduler, "extra": state.extra}
    (tmp / "state.json").write_text(json.dumps(meta))
    files = ["model.safetensors", "optimizer.safetensors", "state.json"]
    manifest = {"step": state.step, "files": {name: _sha256(tmp / name) for name in files}}
    with (tmp / MANIFEST).open("w") as handle:
        json.dump(manifest, handle)
        handle.flush()
        os.fsync(handle.fileno())
    if final.exists():
        _discard(final)
    os.replace(tmp, final)
    _prune(folder, keep)
    return final


def _discard(checkpoint: Path) -> None:
    """Delete a step folder so that a kill at any moment never leaves a partial `step-*` behind: one rename
    takes it out of the step names first, then the renamed folder is deleted (a leftover is swept later)."""
    trash = checkpoint.with_name(f".trash-{checkpoint.name}-{os.getpid()}")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(checkpoint, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _prune(folder: Path, keep: int) -> None:
    complete = list_checkpoints(folder)
    for old in complete[:-keep] if keep > 0 else []:
        _discard(old)
    for leftover in [*folder.glob(".tmp-step-*"), *folder.glob(".trash-step-*")]:
        shutil.rmtree(leftover, ignore_errors=True)


def is_complete(checkpoint: Path) -> bool:
    """True when the manifest exists and every file it lists matches its checksum."""
    manifest_path = checkpoint / MANIFEST
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text())
        return all(
            (checkpoint / name).is_file() and _sha256(checkpoint / name) == digest
            for name, digest in manifest["files"].items()
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def list_checkpoints(folder: Path) -> list[Path]:
    """Step folders in `folder` that have a manifest, oldest first (checksums are checked on load)."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _STEP_DIR.match(p.name) and (p / MANIFEST).is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_complete(folder: Path) -> Path | None:
    """The newest checkpoint whose files all match the manifest; partial ones are skipped with a warning."""
    for checkpoint in reversed(list_checkpoints(folder)):
        if is_complete(checkpoint):
            return checkpoint
        log.warning("skipping partial checkpoint %s (files do not match its manifest)", checkpoint)
    return None


def load_checkpoint(checkpoint: Path) -> TrainState:
    """Load a complete checkpoint; a partial or corrupt one is refused with a VlkitError naming it."""
    if not is_complete(checkpoint):
        raise VlkitError(f"{checkpoint}: partial or corrupt checkpoint (files do not match {MANIFEST})")
    meta = json.loads((checkpoint / "state.json").read_text())
    optimizer = _unflatten_optimizer(load_file(str(checkpoint / "optimizer.safetensors")), meta["optimizer"])
    return TrainState(
        step=int(meta["step"]),
        model=load_file(str(checkpoint / "model.safetensors")),
        optimizer=optimizer,
        scheduler=meta["scheduler"],
        extra=meta["extra"],
    )
