"""Captioning at real sizes with random weights: a CLIP ViT-L/14 vision tower (224 px) joined to GPT-2 124M.

Three comparisons, all through vlkit's own training and generation code:
- each tuning method's training step time and peak memory against `full` (the peer: train everything);
  frozen-encoder methods train as vlkit trains them, from the feature cache, `full` from pixels;
- the cross-attention step from cached features against the same step from image files (the encoder then
  runs every step, as in a trainer without the cache);
- generation captions/s (greedy and beam 3, 20 new tokens) against a plain
  `VisionEncoderDecoderModel.generate` loop over the same model in fp32, with vlkit in fp32 and in bf16.

Each training measurement runs in a child process of its own so that its peak memory is its own: a thread
samples the resident set (/proc/self/statm) during the training steps only (after the models are loaded,
before the final checkpoint is written). Step time is the median of the steps after the first.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench.common import BenchRow

COMMAND = "python -m bench captioning"
METHODS = ("full", "cross-attn", "lora", "ia3", "prefix", "adapter")
BATCH = 8
CAPTION_TOKENS = 32
NEW_TOKENS = 20
WORDS = "a the red green blue small large circle square star photo of with and near left right".split()


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "vision": dict(
                image_size=64,
                patch_size=16,
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=2,
                num_attention_heads=2,
            ),
            "gpt2": dict(n_embd=64, n_layer=2, n_head=2, vocab_size=1000),
            "image_px": 64,
            "steps": 3,
            "images": 16,
        }
    return {
        # CLIP ViT-L/14 at 224 px (a 16x16 patch grid), the course study's encoder size
        "vision": dict(
            image_size=224, patch_size=14, hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
            num_attention_heads=16,
        ),
        "gpt2": dict(),  # GPT2Config() is GPT-2 124M (50,257 tokens)
        "image_px": 224,
        "steps": 5,
        "images": 40,
    }


def _save_parts(root: Path, quick: bool) -> tuple[Path, Path, Path]:
    """Random encoder and decoder folders in the HF layout, and a COCO-layout caption set of random images."""
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        CLIPVisionModel,
        GPT2Config,
        GPT2LMHeadModel,
    )

    from vlkit.models.text_tokenizer import train_bpe_tokenizer

    sizes = _sizes(quick)
    torch.manual_seed(0)
    encoder = root / "encoder"
    CLIPVisionModel(CLIPVisionConfig(**sizes["vision"])).save_pretrained(encoder)
    side = sizes["vision"]["image_size"]
    CLIPImageProcessorPil(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side}
    ).save_pretrained(encoder)
    rng = np.random.default_rng(0)
    captions = [" ".join(rng.choice(WORDS, size=12)) for _ in range(sizes["images"] * 2)]
    tokenizer = train_bpe_tokenizer(captions, 300, wrap_with_bos_eos=False, model_max_length=1024)
    decoder = root / "decoder"
    end = tokenizer.eos_token_id
    GPT2LMHeadModel(GPT2Config(bos_token_id=end, eos_token_id=end, **sizes["gpt2"])).save_pretrained(decoder)
    tokenizer.save_pretrained(decoder)
    images = root / "images"
    images.mkdir()
    px = sizes["image_px"]
    entries, annotations = [], []
    for i in range(sizes["images"]):
        name = f"{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (px, px, 3), dtype=np.uint8)).save(images / name)
        entries.append({"id": i, "file_name": name})
        annotations += [{"id": 2 * i + k, "image_id": i, "caption": captions[2 * i + k]} for k in range(2)]
    data = root / "train.json"
    data.write_text(json.dumps({"images": entries, "annotations": annotations}))
    return encoder, decoder, data


class _RssSampler:
    """Largest resident set seen by a thread reading /proc/self/statm every millisecond."""

    def __init__(self) -> None:
        self.peak, self._stop = 0, threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.001)

    def start(self) -> _RssSampler:
        self.peak = self._rss()
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _measure_training(args: dict[str, Any]) -> None:
    """Child process: train `steps` steps of one method through vlkit's loop; write step time and peak RSS."""
    torch.set_num_threads(args["threads"])
    os.environ["VLKIT_PROGRESS"] = "0"
    from vlkit.data.captions import load_caption_dataset
    from vlkit.models.captioner.model import CaptionerSpec, build_captioner
    from vlkit.runtime import progress
    from vlkit.train.caption_trainer import (
        CachedFeatures,
        CaptionBatches,
        ImagePixels,
        make_caption_loss,
        tokenize_captions,
    )
    from vlkit.train.config import LoopConfig
    from vlkit.train.feature_cache import build_feature_cache
    from vlkit.train.loop import run_training

    progress.set_enabled(False)
    root = Path(args["root"])
    data = load_caption_dataset(root / "train.json", root / "images")
    captioner = build_captioner(
        CaptionerSpec(str(root / "encoder"), str(root / "decoder"), args["method"], None, CAPTION_TOKENS)
    )
    trains_encoder = captioner.method.trains_encoder
    if args["cached"]:
        cache = build_feature_cache(captioner, data.image_paths(), root / "cache", BATCH, "float32")
        images: Any = CachedFeatures(cache)
    else:
        images = ImagePixels(captioner, data.image_paths())
    tokens = [tokenize_captions(captioner, image.captions, CAPTION_TOKENS) for image in data.images]
    batches = CaptionBatches(images, tokens, BATCH, seed=0)
    steps = args["steps"]
    loop = LoopConfig(
        steps=steps,
        learning_rate=1e-4,
        warmup_steps=1,
        checkpoint_every=10**9,
        log_every=1,
        mixed_precision="no",
    )
    seconds: list[float] = []
    sampler = _RssSampler().start()

    def on_log(step: int, record: dict[str, Any]) -> dict[str, Any]:
        seconds.append(record["seconds"])
        if step == steps:
            sampler.stop()
        return {}

    run_training(
        captioner.model,
        captioner.model.parameters(),
        batches,
        make_caption_loss(trains_encoder),
        loop,
        root / "runs" / f"{args['method']}-{args['cached']}",
        on_log=on_log,
    )
    deltas = [b - a for a, b in zip(seconds, seconds[1:], strict=False)]
    result = {
        "step_s": statistics.median(deltas),
        "peak_rss_mib": sampler.peak / 2**20,
        "trainable": captioner.parameter_count().trainable,
    }
    Path(args["out"]).write_text(json.dumps(result))


def _train_in_child(root: Path, method: str, cached: bool, steps: int) -> dict[str, Any]:
    out = root / f"result-{method}-{cached}.json"
    args = {
        "root": str(root),
        "method": method,
        "cached": cached,
        "steps": steps,
        "out": str(out),
        "threads": torch.get_num_threads(),
    }
    child = multiprocessing.get_context("spawn").Process(target=_measure_training, args=(args,))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"training {method} (cached={cached}) failed with exit code {child.exitcode}")
    return json.loads(out.read_text())


def _training_rows(root: Path, steps: int) -> list[BenchRow]:
    results = {m: _train_in_child(root, m, cached=m != "full", steps=steps) for m in METHODS}
    uncached = _train_in_child(root, "cross-attn", cached=False, steps=steps)
    full = results["full"]
    rows = []
    for method in METHODS[1:]:
        result = results[method]
        target = "<= 0.45x full" if method == "cross-attn" else "report"
        time_met = full["step_s"] / result["step_s"] >= 1 / 0.45 if method == "cross-attn" else True
        memory_met = (
            full["peak_rss_mib"] / result["peak_rss_mib"] >= 1 / 0.45 if method == "cross-attn" else True
        )
        share = f"{result['trainable']:,} trainable parameters against {full['trainable']:,}"
        rows.append(
            BenchRow(
                "captioning",
                f"train step time, {method} vs full",
                result["step_s"],
                full["step_s"],
                "s",
                False,
                target,
                time_met,
                COMMAND,
                f"batch {BATCH} x {CAPTION_TOKENS} tokens; {method} from the feature cache, full from "
                f"pixels; {share}",
            )
        )
        rows.append(
            BenchRow(
                "captioning",
                f"peak memory while training, {method} vs full",
                result["peak_rss_mib"],
                full["peak_rss_mib"],
                "MiB RSS",
                False,
                target,
                memory_met,
                COMMAND,
                "resident set sampled every ms during the steps (models loaded, AdamW state included)",
            )
        )
    cached = results["cross-attn"]
    rows.append(
        BenchRow(
            "captioning",
            "cross-attn train step, cached features vs from image files",
            cached["step_s"],
            uncached["step_s"],
            "s",
            False,
            ">= 2x faster",
            uncached["step_s"] / cached["step_s"] >= 2,
            COMMAND,
            "uncached: images read, preprocessed and encoded every step; peak RSS "
            f"{cached['peak_rss_mib']:.0f} vs {uncached['peak_rss_mib']:.0f} MiB; an epoch is steps x step "
            "time either way, plus the one-time cache build",
        )
    )
    return rows


def _captions_per_second(function, images: list, repeats: int = 2) -> tuple[float, Any]:
    function(images[:BATCH])  # warm-up
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = function(images)
        best = min(best, time.perf_counter() - start)
    return len(images) / best, out


def _generation_rows(root: Path, n_images: int) -> list[BenchRow]:
    from vlkit.captioning.generate import DecodingConfig, caption_images
    from vlkit.models.captioner.model import CaptionerSpec, build_captioner, load_captioner

    captioner = build_captioner(
        CaptionerSpec(str(root / "encoder"), str(root / "decoder"), "cross-attn", None, CAPTION_TOKENS)
    )
    folder = captioner.save(root / "captioner")
    fp32 = load_captioner(folder)
    bf16 = load_captioner(folder, dtype=torch.bfloat16)
    images = [Image.open(path).convert("RGB") for path in sorted((root / "images").glob("*.png"))[:n_images]]
    model, processor = fp32.model, fp32.image_processor
    rows = []
    for beams in (1, 3):
        label = "greedy" if beams == 1 else f"beam {beams}"

        def peer(batch: list, beams: int = beams) -> list[list[int]]:
            out = []
            with torch.inference_mode():
                for i in range(0, len(batch), BATCH):
                    pixels = processor(images=batch[i : i + BATCH], return_tensors="pt")["pixel_values"]
                    ids = model.generate(
                        pixel_values=pixels, num_beams=beams, max_new_tokens=NEW_TOKENS, do_sample=False
                    )
                    out += [row[1:].tolist() for row in ids]
            return out

        def ours(captioner, beams: int = beams):
            config = DecodingConfig(num_beams=beams, max_new_tokens=NEW_TOKENS, batch_size=BATCH)
            return lambda batch: caption_images(captioner, batch, config).token_ids

        peer_cps, peer_ids = _captions_per_second(peer, images)
        fp32_cps, fp32_ids = _captions_per_second(ours(fp32), images)
        bf16_cps, bf16_ids = _captions_per_second(ours(bf16), images)
        same = sum(_cut(a, fp32.tokenizer.eos_token_id) == b for a, b in zip(peer_ids, fp32_ids, strict=True))
        bf16_same = sum(a == b for a, b in zip(fp32_ids, bf16_ids, strict=True))
        rows.append(
            BenchRow(
                "captioning",
                f"captions/s, {label}, vlkit fp32 vs VisionEncoderDecoderModel.generate fp32",
                fp32_cps,
                peer_cps,
                "captions/s",
                True,
                ">= 1.0x",
                fp32_cps / peer_cps >= 1.0,
                COMMAND,
                f"{len(images)} images, batch {BATCH}, {NEW_TOKENS} new tokens, preprocessing timed on both "
                f"sides; identical token ids for {same}/{len(images)} captions",
            )
        )
        rows.append(
            BenchRow(
                "captioning",
                f"captions/s, {label}, vlkit bf16 vs VisionEncoderDecoderModel.generate fp32",
                bf16_cps,
                peer_cps,
                "captions/s",
                True,
                ">= 1.25x",
                bf16_cps / peer_cps >= 1.25,
                COMMAND,
                f"bf16 captions identical to fp32 for {bf16_same}/{len(images)} (random weights make "
                "near-ties between tokens common)",
            )
        )
    return rows


def _cut(ids: list[int], end: int) -> list[int]:
    return ids[: ids.index(end) + 1] if end in ids else ids


def run(quick: bool) -> list[BenchRow]:
    sizes = _sizes(quick)
    with tempfile.TemporaryDirectory(prefix="vlkit-bench-captioning-") as tmp:
        root = Path(tmp)
        _save_parts(root, quick)
        rows = _training_rows(root, sizes["steps"])
        rows += _generation_rows(root, 8 if quick else 16)
    return rows
