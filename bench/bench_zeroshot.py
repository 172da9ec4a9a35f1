"""Zero-shot classification speed: vlkit against open_clip's encode_image loop (how CLIP_benchmark
classifies), and the prompt analysis of T templates against T separate classification runs.

The `auto` row runs what `--precision auto` picks on this machine (`vlkit.runtime.precision`, its answer
measured here unless VLKIT_CPU_BF16 forces it, which the notes then say), against open_clip in fp32.

Both sides run the ViT-B/32 architecture with random weights on the same random pixel tensors, so neither
downloads anything; preprocessing is outside the timed region on both sides.
"""

from __future__ import annotations

import copy
import os
import time

import torch
from transformers import CLIPConfig, CLIPModel

from bench.common import BenchRow
from vlkit.models.clip import HFClip
from vlkit.runtime import precision
from vlkit.zeroshot.classifier import score_templates
from vlkit.zeroshot.templates import IMAGENET80_TEMPLATES

COMMAND = "python -m bench zeroshot"
CLASSES = ["dog", "cat", "car", "tree", "house", "boat", "bird", "horse", "plane", "chair"]


def _hf_clip(model: CLIPModel, dtype: torch.dtype) -> HFClip:
    return HFClip(
        "bench/vit-b-32", copy.deepcopy(model).to(dtype).eval(), None, None, torch.device("cpu"), dtype
    )


def _images_per_second(
    encode, pixels: torch.Tensor, batch_size: int, repeats: int = 2
) -> tuple[float, torch.Tensor]:
    with torch.inference_mode():
        encode(pixels[:batch_size])  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            out = torch.cat([encode(pixels[i : i + batch_size]) for i in range(0, len(pixels), batch_size)])
            best = min(best, time.perf_counter() - start)
    return len(pixels) / best, out


def _matmul_peak_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def _image_tower_flops(model: CLIPModel) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.get_image_features(
            pixel_values=torch.randn(1, 3, 224, 224, dtype=next(model.parameters()).dtype)
        )
    return float(counter.get_total_flops())


def _random_text_embeddings(n_templates: int, dim: int) -> torch.Tensor:
    # The text side is the same for both ways of scoring; random unit vectors stand in for it.
    generator = torch.Generator().manual_seed(1)
    return torch.nn.functional.normalize(
        torch.randn(n_templates, len(CLASSES), dim, generator=generator), dim=-1
    )


def run(quick: bool) -> list[BenchRow]:
    import open_clip

    n_images, batch = (64, 32) if quick else (256, 64)
    torch.manual_seed(0)
    pixels = torch.randn(n_images, 3, 224, 224)
    peer = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    peer_ips, _ = _images_per_second(peer.encode_image, pixels, batch)
    torch.manual_seed(0)
    weights = CLIPModel(CLIPConfig())  # CLIPConfig() is ViT-B/32
    fp32, bf16 = _hf_clip(weights, torch.float32), _hf_clip(weights, torch.bfloat16)
    fp32_ips, fp32_feats = _images_per_second(fp32.encode_images, pixels, batch)
    bf16_ips, bf16_feats = _images_per_second(bf16.encode_images, pixels, batch)
    texts = _random_text_embeddings(1, fp32_feats.shape[1])[0]
    agreement = float(((fp32_feats @ texts.T).argmax(-1) == (bf16_feats @ texts.T).argmax(-1)).float().mean())
    flops = _image_tower_flops(fp32.model)
    peak_fp32, peak_bf16 = _matmul_peak_gflops(torch.float32), _matmul_peak_gflops(torch.bfloat16)
    rows = [
        _auto_row(peer_ips, {"fp32": fp32_ips, "bf16": bf16_ips}),
        BenchRow(
            "zeroshot",
            "images/s, vlkit bf16 vs open_clip fp32 (ViT-B/32)",
            bf16_ips,
            peer_ips,
            "images/s",
            True,
            ">= 1.8x with >= 99% top-1 agreement",
            bf16_ips / peer_ips >= 1.8 and agreement >= 0.99,
            COMMAND,
            f"top-1 agreement bf16 vs fp32 {agreement:.1%} on {n_images} images x {len(CLASSES)} "
            f"classes; vlkit fp32 {fp32_ips:.1f} images/s",
        ),
        BenchRow(
            "zeroshot",
            "images/s, vlkit fp32 vs open_clip fp32 (ViT-B/32)",
            fp32_ips,
            peer_ips,
            "images/s",
            True,
            "report",
            True,
            COMMAND,
            "same precision on both sides",
        ),
        BenchRow(
            "zeroshot",
            "image tower GFLOP/s vs this CPU's fp32 matmul peak",
            fp32_ips * flops / 1e9,
            peak_fp32,
            "GFLOP/s",
            True,
            "report",
            True,
            COMMAND,
            f"{flops / 1e9:.2f} GFLOP per image; bf16: {bf16_ips * flops / 1e9:.0f} GFLOP/s against a bf16 "
            f"matmul peak of {peak_bf16:.0f} GFLOP/s",
        ),
    ]
    rows.append(_prompt_analysis_row(peer, fp32, pixels[: 32 if quick else 64], 8 if quick else 80))
    return rows


def _auto_row(peer_ips: float, vlkit_ips: dict[str, float]) -> BenchRow:
    """`--precision auto` as it resolves here, from the fp32 and bf16 runs measured above."""
    forced = os.environ.get("VLKIT_CPU_BF16") in ("0", "1")
    native = precision.cpu_runs_bf16_natively()
    chosen = precision.resolve_precision_name("auto", torch.device("cpu"))
    fp32_s, bf16_s = precision.measure_matmul_seconds()  # measured again for the notes, never cached
    flags = precision.cpu_flags() or set()
    named = sorted(flag for flag in precision.BF16_FLAGS if flag in flags)
    ratio = vlkit_ips[chosen] / peer_ips
    return BenchRow(
        "zeroshot",
        "images/s, vlkit auto vs open_clip fp32 (ViT-B/32)",
        vlkit_ips[chosen],
        peer_ips,
        "images/s",
        True,
        ">= 1.0x (>= 1.8x where bf16 is native)",
        ratio >= (1.8 if native else 1.0),
        COMMAND,
        f"auto resolved to {chosen}: bf16 native on this CPU {'yes' if native else 'no'}"
        f"{' (forced by VLKIT_CPU_BF16)' if forced else ''}; CPU bf16 flags: {', '.join(named) or 'none'}; "
        f"a {precision.MIN_SPEEDUP}x bf16 matmul speedup is needed, measured {fp32_s / bf16_s:.2f}x",
    )


def _prompt_analysis_row(peer, clip: HFClip, pixels: torch.Tensor, n_templates: int) -> BenchRow:
    templates = list(IMAGENET80_TEMPLATES[:n_templates])
    texts = _random_text_embeddings(n_templates, 512)
    labels = [i % len(CLASSES) for i in range(len(pixels))]
    start = time.perf_counter()
    with torch.inference_mode():
        features = torch.cat([clip.encode_images(pixels[i : i + 32]) for i in range(0, len(pixels), 32)])
    score_templates(features, texts, labels, templates, CLASSES)
    vlkit_s = time.perf_counter() - start
    start = time.perf_counter()
    with torch.inference_mode():
        for t in range(n_templates):  # CLIP_benchmark: one full classification run per template
            feats = torch.cat([peer.encode_image(pixels[i : i + 32]) for i in range(0, len(pixels), 32)])
            feats = torch.nn.functional.normalize(feats, dim=-1)
            (feats @ texts[t].T).argmax(-1)
    peer_s = time.perf_counter() - start
    return BenchRow(
        "zeroshot",
        f"prompt analysis of {n_templates} templates, {len(pixels)} images",
        vlkit_s,
        peer_s,
        "s",
        False,
        ">= 20x faster",
        peer_s / vlkit_s >= 20,
        COMMAND,
        "vlkit: one image pass + per-template scoring; peer: one open_clip run per template "
        "(text encoding excluded on both sides)",
    )
