"""Image-text retrieval speed: `vlkit retrieval`'s path against CLIP_benchmark's retrieval loop, same weights.

The peer is `clip_benchmark.metrics.zeroshot_retrieval.evaluate` itself (PyPI `clip-benchmark` 1.6.2, the
same file as LAION-AI/CLIP_benchmark at commit 48de38c): a DataLoader of (image tensor, captions) batches,
open_clip's `encode_image` / `encode_text` per batch, then its recall computation. Its model is open_clip's
`ViT-B-32` with random weights (`pretrained=None`); vlkit ranks with a transformers `CLIPModel` holding the
very same weights (converted below, GELU as open_clip's ViT-B-32 has it), saved as a model folder and loaded
through `load_clip`, as a user's model would be. Both start from the same PNG files (224 x 224, so neither
side resizes) and the same captions, read in the timed region; on identical weights in fp32 the recalls
must be identical, and the row checks that they are.

Two rows: each side at its default precision (vlkit `auto`: bf16 only where the CPU runs it natively;
CLIP_benchmark `amp=True`: bf16 autocast on the CPU), and both in fp32, which is what `auto` gives on a CPU
without native bf16.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TQDM_DISABLE", "1")  # CLIP_benchmark's progress bar; tqdm reads it when imported

import random
import tempfile
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from bench.common import BenchRow, best_of
from vlkit.data.captions import load_caption_dataset
from vlkit.models.clip import ClipSpec, load_clip
from vlkit.runtime import progress
from vlkit.zeroshot.retrieval import RetrievalResult, retrieve_files

COMMAND = "python -m bench retrieval"
KS = (1, 5, 10)
CAPTIONS_PER_IMAGE = 5
BATCH_SIZE = 64  # CLIP_benchmark's default --batch_size, and vlkit's
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
SHAPES = ("circle", "square", "triangle", "star")
PLACES = ("in the top left", "in the middle", "at the bottom", "on the right", "near the edge")
TEMPLATES = (
    "a {size} {colour} {shape} {place}",
    "a photo of a {colour} {shape}",
    "there is a {shape} {place}",
    "a {colour} {shape} next to a {other}",
    "two {colour} {shape}s {place}",
    "a picture with a {size} {shape} {place}",
)


def _caption(rng: random.Random) -> str:
    return rng.choice(TEMPLATES).format(
        size=rng.choice(("small", "large")),
        colour=rng.choice(COLOURS),
        shape=rng.choice(SHAPES),
        other=rng.choice(SHAPES),
        place=rng.choice(PLACES),
    )


def _unique_caption(rng: random.Random, seen: set[str]) -> str:
    # No caption twice: two images' identical captions tie exactly, and CLIP_benchmark's topk orders ties
    # as its kernel likes, so the recalls would compare tie-breaking, not the definitions.
    caption = _caption(rng)
    while caption in seen:
        caption = _caption(rng)
    seen.add(caption)
    return caption


def _write_set(folder: Path, n_images: int, seed: int = 0) -> Path:
    """n_images PNGs of a few filled shapes (224 x 224) and 5 captions each, as a COCO-layout file."""
    rng, seen = random.Random(seed), set()
    (folder / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(n_images):
        image = Image.new("RGB", (224, 224), tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x, y, size = rng.randrange(160), rng.randrange(160), rng.randrange(20, 64)
            fill = tuple(rng.randrange(256) for _ in range(3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x, y, x + size, y + size), fill=fill)
        image.save(folder / "images" / f"{i:05d}.png")
        images.append({"id": i, "file_name": f"{i:05d}.png"})
        for _ in range(CAPTIONS_PER_IMAGE):
            annotations.append({"id": len(annotations), "image_id": i, "caption": _unique_caption(rng, seen)})
    (folder / "captions.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    return folder / "captions.json"


RENAMES = (
    ("attn.out_proj", "self_attn.out_proj"),
    ("ln_1", "layer_norm1"),
    ("ln_2", "layer_norm2"),
    ("mlp.c_fc", "mlp.fc1"),
    ("mlp.c_proj", "mlp.fc2"),
)  # open_clip's residual block -> transformers' CLIPEncoderLayer


def _hf_state_dict(peer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """open_clip's CLIP (OpenAI layout) -> transformers' CLIPModel names; q, k, v split from in_proj."""
    sd, out = peer.state_dict(), {}
    for side, prefix, hf in (
        ("text", "transformer.", "text_model."),
        ("vision", "visual.transformer.", "vision_model."),
    ):
        layers = peer.transformer.resblocks if side == "text" else peer.visual.transformer.resblocks
        for i in range(len(layers)):
            old, new = f"{prefix}resblocks.{i}.", f"{hf}encoder.layers.{i}."
            for part in ("weight", "bias"):
                q, k, v = sd[f"{old}attn.in_proj_{part}"].chunk(3)
                out |= {f"{new}self_attn.q_proj.{part}": q, f"{new}self_attn.k_proj.{part}": k,
                        f"{new}self_attn.v_proj.{part}": v}  # fmt: skip
                for a, b in RENAMES:
                    out[f"{new}{b}.{part}"] = sd[f"{old}{a}.{part}"]
    out |= {
        "text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": sd["positional_embedding"],
        "text_model.final_layer_norm.weight": sd["ln_final.weight"],
        "text_model.final_layer_norm.bias": sd["ln_final.bias"],
        "text_projection.weight": sd["text_projection"].T,
        "vision_model.embeddings.class_embedding": sd["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": sd["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": sd["visual.positional_embedding"],
        "vision_model.pre_layrnorm.weight": sd["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": sd["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": sd["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": sd["visual.ln_post.bias"],
        "visual_projection.weight": sd["visual.proj"].T,
        "logit_scale": sd["logit_scale"],
    }
    return {name: tensor.contiguous() for name, tensor in out.items()}


def _save_hf_copy(peer: torch.nn.Module, folder: Path) -> Path:
    """The peer's weights as a transformers CLIP folder, with CLIP's tokenizer and image processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from tests.models.clip_tokenizer import save_clip_tokenizer

    save_clip_tokenizer(folder)
    config = CLIPConfig(
        text_config={
            "hidden_act": "gelu",
            "bos_token_id": 49406,
            "eos_token_id": 49407,
            "pad_token_id": 49407,
        },
        vision_config={"hidden_act": "gelu"},
        projection_dim=512,
    )  # otherwise CLIPConfig() is ViT-B/32 (quick_gelu is OpenAI's checkpoints' activation)
    model = CLIPModel(config)
    missing, unexpected = model.load_state_dict(_hf_state_dict(peer), strict=False)
    if unexpected or [name for name in missing if "position_ids" not in name]:
        raise RuntimeError(f"weight conversion: missing {missing}, unexpected {unexpected}")
    model.save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(
        folder
    )  # OpenAI's: shortest edge 224, bicubic, centre crop, mean/std
    return folder


def _collate(batch):
    """CLIP_benchmark's `image_captions_collate_fn` (clip_benchmark/datasets/builder.py), verbatim."""
    from torch.utils.data import default_collate

    transposed = list(zip(*batch))  # noqa: B905 (verbatim)
    return default_collate(transposed[0]), transposed[1]


class _CaptionImages(torch.utils.data.Dataset):
    """(transformed image, its captions), as CLIP_benchmark's retrieval datasets (flickr, mscoco) yield."""

    def __init__(self, dataset, transform):
        self.items, self.transform = [(image.path, image.captions) for image in dataset.images], transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        path, captions = self.items[index]
        return self.transform(Image.open(path).convert("RGB")), captions


def _peer_run(peer, tokenizer, dataset, transform, amp: bool):
    from clip_benchmark.metrics import zeroshot_retrieval

    loader = torch.utils.data.DataLoader(
        _CaptionImages(dataset, transform),
        batch_size=BATCH_SIZE,
        shuffle=False,
        num_workers=0,
        collate_fn=_collate,
    )
    return zeroshot_retrieval.evaluate(peer, loader, tokenizer, "cpu", amp=amp, recall_k_list=list(KS))


def _hits(recall: float, n: int) -> int:
    return round(recall * n)


def _recall_differences(result: RetrievalResult, peer: dict[str, float]) -> list[str]:
    """Where vlkit's and CLIP_benchmark's recalls count different hits (CLIP_benchmark's `text_retrieval` is
    image-to-text: images query the texts)."""
    n_images, n_texts = len(result.ranks.image_ranks), len(result.ranks.text_ranks)
    out = []
    for k in KS:
        ours, theirs = result.ranks.image_to_text.recall[k], peer[f"text_retrieval_recall@{k}"]
        if _hits(ours, n_images) != _hits(theirs, n_images):
            out.append(f"image-to-text R@{k} {ours:.4f} vs {theirs:.4f}")
        ours, theirs = result.ranks.text_to_image.recall[k], peer[f"image_retrieval_recall@{k}"]
        if _hits(ours, n_texts) != _hits(theirs, n_texts):
            out.append(f"text-to-image R@{k} {ours:.4f} vs {theirs:.4f}")
    return out


def run(quick: bool) -> list[BenchRow]:
    try:
        import clip_benchmark.metrics.zeroshot_retrieval  # noqa: F401
        import open_clip
    except ImportError as exc:
        raise SystemExit(
            f"bench retrieval needs CLIP_benchmark and open_clip: pip install 'vlkit[bench]' ({exc})"
        ) from exc

    progress.set_enabled(False)
    n_images = 16 if quick else 64
    torch.manual_seed(0)
    peer, _, transform = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    peer.eval()
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    with tempfile.TemporaryDirectory() as tmp:
        dataset = load_caption_dataset(_write_set(Path(tmp) / "set", n_images), Path(tmp) / "set" / "images")
        folder = _save_hf_copy(peer, Path(tmp) / "clip")
        clips = {
            name: load_clip(ClipSpec(str(folder), device="cpu", precision=name)) for name in ("auto", "fp32")
        }
        items = n_images * (1 + CAPTIONS_PER_IMAGE)
        timed = {}
        for name, clip in clips.items():
            timed[name] = best_of(
                lambda clip=clip: retrieve_files(clip, dataset, BATCH_SIZE), 2, warmup=False
            )
        for amp in (True, False):
            timed[f"peer amp={amp}"] = best_of(
                lambda amp=amp: _peer_run(peer, tokenizer, dataset, transform, amp), 2
            )
        pixels = _pixel_difference(clips["fp32"], transform, dataset)
        lengths, context = clips["fp32"].text_lengths(dataset.all_captions())
    auto = clips["auto"].precision
    rows = []
    for ours, theirs, metric, target in (
        (
            "auto",
            "peer amp=True",
            f"images+texts/s, vlkit retrieval (auto: {auto}) vs CLIP_benchmark (amp)",
            ">= 1.5x",
        ),
        (
            "fp32",
            "peer amp=False",
            "images+texts/s, vlkit retrieval vs CLIP_benchmark, both fp32",
            ">= 1.5x with the same recalls",
        ),  # fmt: skip
    ):
        (vlkit_s, result), (peer_s, peer_metrics) = timed[ours], timed[theirs]
        differences = _recall_differences(result, peer_metrics)
        agreement = "recalls identical" if not differences else "recalls differ: " + "; ".join(differences)
        rows.append(
            BenchRow(
                "retrieval",
                metric,
                items / vlkit_s,
                items / peer_s,
                "items/s",
                True,
                target,
                items / vlkit_s >= 1.5 * items / peer_s and (ours != "fp32" or not differences),
                COMMAND,
                f"ViT-B/32 random weights, the same on both sides; {n_images} images x {CAPTIONS_PER_IMAGE} "
                f"captions, batch {BATCH_SIZE}, files read in the timed region; {agreement} (R@1/5/10 both "
                "ways); "
                f"preprocessed pixels differ by at most {pixels:.1e}; vlkit pads each caption batch to its "
                f"longest caption (at most {max(lengths)} tokens), open_clip to its {context}-token context; "
                f"{_cpu_note()}",
            )
        )
    return rows


def _pixel_difference(clip, transform, dataset) -> float:
    images = [Image.open(image.path).convert("RGB") for image in dataset.images[:4]]
    theirs = torch.stack([transform(image) for image in images])
    return float((clip.preprocess(images) - theirs).abs().max())


def _cpu_note() -> str:
    from vlkit.runtime.precision import cpu_flags

    flags = cpu_flags() or set()
    native = [flag for flag in ("avx512_bf16", "amx_bf16") if flag in flags]
    return f"CPU bf16 flags: {', '.join(native) or 'none'}; {torch.get_num_threads()} threads"
