"""The embedded default's two speed-ups, each against what a user gets without it (the peer):

- batch trimming: a training step of the stand-in GPT-2 (`vlkit:shapes-gpt2`) on batches cut after their
  longest caption (`vlkit.train.lm_trainer.LmBatches`) against the same rows padded to the LM's 40 positions,
  as a `padding="max_length"` collator gives them; the loss is the same (`tests/models/test_lm.py`);
- methods trained at once: the demo's four tuning methods (`vlkit.pipelines.method_runs.train_methods`) two
  at a time in one-thread processes against one after another with every core, the same steps and data.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench.common import BenchRow

COMMAND = "python -m bench embedded"


def _world(root: Path, quick: bool) -> Path:
    from vlkit.shapes.world import ShapesConfig, generate_world

    config = ShapesConfig(
        seed=0,
        n_train=200 if quick else 2000,
        n_val=20,
        per_class_train=1,
        per_class_val=1,
        n_alt_text=40,
        n_alt_text_val=8,
    )
    generate_world(config, root / "world")
    return root / "world"


def _lm_rows(world: Path, quick: bool) -> list[BenchRow]:
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from vlkit.data.captions import load_caption_dataset
    from vlkit.models.hub import resolve_model_name
    from vlkit.train.lm_trainer import LmBatches, lm_loss, token_rows

    folder = resolve_model_name("vlkit:shapes-gpt2")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = GPT2LMHeadModel.from_pretrained(folder, dtype=torch.float32).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    captions = load_caption_dataset(world / "train.json", world / "images").all_captions()
    rows = token_rows(tokenizer, captions, model.config.n_positions)
    batches = LmBatches(rows, batch_size=64, seed=0)
    steps = 5 if quick else 40

    def step_time(trim: bool) -> float:
        times = []
        for k in range(steps + 1):
            batch = batches(k)
            if not trim:  # the same rows at full width
                width = rows.input_ids.shape[1]
                batch = {
                    name: torch.nn.functional.pad(t, (0, width - t.shape[1]), value=pad)
                    for (name, t), pad in zip(batch.items(), (tokenizer.eos_token_id, 0, -100), strict=True)
                }
            start = time.perf_counter()
            optimizer.zero_grad()
            lm_loss(model, batch).backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
        return statistics.median(times[1:])

    trimmed, full = step_time(True), step_time(False)
    mean_length = float(rows.attention_mask.sum(dim=1).float().mean())
    return [
        BenchRow(
            name="embedded",
            metric="LM train step, batches cut after the longest caption vs padded to 40 positions",
            vlkit=trimmed,
            peer=full,
            unit="s",
            higher_is_better=False,
            target="report",
            met=True,
            command=COMMAND,
            notes=f"vlkit:shapes-gpt2, batch 64, median of {steps} steps; captions average {mean_length:.1f} "
            f"tokens of {rows.input_ids.shape[1]}",
        )
    ]


def _methods_rows(world: Path, root: Path, quick: bool) -> list[BenchRow]:
    from vlkit.data.captions import load_caption_dataset
    from vlkit.models.captioner.config import CaptionerSpec
    from vlkit.pipelines.demo import DEMO_METHODS
    from vlkit.pipelines.method_runs import train_methods
    from vlkit.pipelines.sweep import SweepConfig
    from vlkit.train.caption_trainer import prepare_feature_caches
    from vlkit.train.config import CaptionTrainConfig

    train = load_caption_dataset(world / "train.json", world / "images")
    config = CaptionTrainConfig(CaptionerSpec("vlkit:shapes-clip", "vlkit:shapes-gpt2", "cross-attn"))
    config.loop.steps = 10 if quick else 150
    sweep = SweepConfig(config, list(DEMO_METHODS))
    prepare_feature_caches(sweep.train_config(DEMO_METHODS[0], root / "cache", 30), train)  # not timed
    walls = {}
    for processes in (1, 2):
        runs = [(sweep.train_config(m, root / "cache", 30), root / f"p{processes}" / m) for m in DEMO_METHODS]
        start = time.perf_counter()
        train_methods(runs, train, None, processes=processes)
        walls[processes] = time.perf_counter() - start
    return [
        BenchRow(
            name="embedded",
            metric="the demo's 4 tuning methods, two at a time (1 thread each) vs one after another",
            vlkit=walls[2],
            peer=walls[1],
            unit="s",
            higher_is_better=False,
            target="report",
            met=True,
            command=COMMAND,
            notes=f"{config.loop.steps} steps of 32 each from the feature cache, vlkit:shapes-clip + "
            "vlkit:shapes-gpt2; wall time with each method's process start-up",
        )
    ]


def run(quick: bool) -> list[BenchRow]:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        world = _world(root, quick)
        return _lm_rows(world, quick) + _methods_rows(world, root, quick)
