"""The video captioner's training step per temporal module, against the image captioner's step.

The study's captioner (`vlkit video study`): the stand-ins vlkit:shapes-clip (64 px, a 4x4 patch grid) and
vlkit:shapes-gpt2, cross-attn tuning, a frozen encoder read from the feature cache, so a step is the
temporal module, the decoder's forward and backward and AdamW's update. Each temporal module reads 8 frames
pooled to CLS + 2x2 (40 tokens); the peer is the same captioner on images (one frame's 17 tokens), which
is what time costs on top of an image. One thread, the median of the steps after two warm-up steps.
"""

from __future__ import annotations

import statistics
import time

import torch
from transformers.modeling_outputs import BaseModelOutput

from bench.common import BenchRow

COMMAND = "python -m bench video_step"
TEMPORAL = ("meanp", "concat", "seq")
BATCH, FRAMES, CAPTION_TOKENS = 32, 8, 16


def _captioner(temporal: str):
    from vlkit.models.captioner.model import CaptionerSpec, build_captioner

    spec = CaptionerSpec(
        "vlkit:shapes-clip", "vlkit:shapes-gpt2", "cross-attn", temporal=temporal, frames=FRAMES
    )
    return build_captioner(spec)


def _step_seconds(temporal: str, steps: int) -> float:
    captioner = _captioner(temporal)
    model = captioner.model
    tokens = captioner.video_settings().frame_tokens * FRAMES if temporal else captioner.token_layout().tokens
    width = int(model.config.encoder.hidden_size)
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(BATCH, tokens, width, generator=generator)
    vocab = len(captioner.tokenizer)
    ids = torch.randint(1, vocab, (BATCH, CAPTION_TOKENS), generator=generator)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    times = []
    for step in range(steps + 2):
        start = time.perf_counter()
        out = model(
            encoder_outputs=BaseModelOutput(last_hidden_state=features), decoder_input_ids=ids, labels=ids
        )
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(quick: bool) -> list[BenchRow]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        steps = 3 if quick else 40
        image = _step_seconds("", steps)
        rows = []
        for temporal in TEMPORAL:
            seconds = _step_seconds(temporal, steps)
            rows.append(
                BenchRow(
                    name="video_step",
                    metric=f"training step, --temporal {temporal} ({FRAMES} frames, batch {BATCH})",
                    vlkit=seconds,
                    peer=image,
                    unit="s",
                    higher_is_better=False,
                    target="report",
                    met=True,
                    command=COMMAND,
                    notes=(
                        f"peer: the same captioner on images (17 tokens); {FRAMES} frames x 5 pooled tokens, "
                        "vlkit:shapes-clip + vlkit:shapes-gpt2, cross-attn, cached features, 1 thread, median"
                    ),
                )
            )
        return rows
    finally:
        torch.set_num_threads(threads)
