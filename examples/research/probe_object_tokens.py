"""How much a frozen vision tower's tokens say about each object of a shapes-world scene: probes.

The captioner reads the vision tower's `last_hidden_state` (CLS + a grid of patch tokens). This script asks
whether an object's colour and shape can be read back from the tokens at its place, in scenes of two or
three objects (the scenes where the embedded captioner hallucinates): it trains a probe on the training
scenes' objects and scores it on the validation scenes' objects in multi-object scenes. Two readouts (the
single token under the object's centre; the 2x2 block of tokens nearest its centre, concatenated) and two
probes (linear; a one-hidden-layer MLP), so the figures separate "the information is not there" from "it is
there, but only a non-linear reader of several tokens gets it".

    .venv/bin/python examples/research/probe_object_tokens.py --world runs/demo/world --clip runs/demo/clip

An example, not part of the package: it uses the world's object boxes, which real datasets don't have.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from transformers import CLIPImageProcessorPil, CLIPVisionModel

from vlkit.data.images import read_image


def token_features(clip: Path, world: Path, split: str, limit: int) -> tuple[list[dict], torch.Tensor]:
    """The split's image records and their tokens (N, tokens, width) as the captioner reads them."""
    model = CLIPVisionModel.from_pretrained(clip).eval()
    processor = CLIPImageProcessorPil.from_pretrained(clip)
    records = json.loads((world / f"{split}.json").read_text())["images"][:limit]
    chunks = []
    for start in range(0, len(records), 256):
        images = [read_image(world / "images" / r["file_name"]) for r in records[start : start + 256]]
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            chunks.append(model(pixel_values=pixels).last_hidden_state)
    return records, torch.cat(chunks)


def object_rows(records, tokens, patch: int, grid: int, block: bool, multi_only: bool):
    rows, labels = [], []
    for record, image_tokens in zip(records, tokens, strict=True):
        if multi_only and len(record["objects"]) < 2:
            continue
        for obj in record["objects"]:
            x, y, w, h = obj["bbox"]
            cx, cy = x + w / 2, y + h / 2
            if block:
                gx = min(max(round(cx / patch) - 1, 0), grid - 2)
                gy = min(max(round(cy / patch) - 1, 0), grid - 2)
                cells = [(gy + a) * grid + gx + b for a in (0, 1) for b in (0, 1)]
            else:
                cells = [min(int(cy // patch), grid - 1) * grid + min(int(cx // patch), grid - 1)]
            rows.append(torch.cat([image_tokens[1 + c] for c in cells]))  # token 0 is CLS
            labels.append((obj["colour"], obj["shape"]))
    return torch.stack(rows), labels


def train_probe(x: torch.Tensor, y: torch.Tensor, classes: int, mlp: bool, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    if mlp:
        probe = torch.nn.Sequential(
            torch.nn.Dropout(0.3), torch.nn.Linear(x.shape[1], 256), torch.nn.GELU(), torch.nn.Dropout(0.3),
            torch.nn.Linear(256, classes),
        )
        steps, lr, decay, smoothing = 300, 2e-3, 0.05, 0.1
    else:
        probe = torch.nn.Linear(x.shape[1], classes)
        steps, lr, decay, smoothing = 400, 1e-2, 1e-3, 0.0
    optimizer = torch.optim.AdamW(probe.parameters(), lr, weight_decay=decay)
    probe.train()
    for _ in range(steps):  # full batch: a few thousand rows
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(probe(x), y, label_smoothing=smoothing).backward()
        optimizer.step()
    return probe.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--train-images", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    train_records, train_tokens = token_features(args.clip, args.world, "train", args.train_images)
    val_records, val_tokens = token_features(args.clip, args.world, "val", 10**9)
    config = json.loads((args.clip / "config.json").read_text())["vision_config"]
    patch = int(config["patch_size"])
    grid = int(config["image_size"]) // patch
    results = []
    for block in (False, True):
        x_train, train_labels = object_rows(train_records, train_tokens, patch, grid, block, False)
        x_val, val_labels = object_rows(val_records, val_tokens, patch, grid, block, True)
        classes = sorted(set(train_labels))
        index = {c: i for i, c in enumerate(classes)}
        kept = [i for i, c in enumerate(val_labels) if c in index]  # held-out combinations have no class
        mean, std = x_train.mean(0), x_train.std(0) + 1e-6
        x_train, x_val = (x_train - mean) / std, (x_val[kept] - mean) / std
        y_train = torch.tensor([index[c] for c in train_labels])
        truth = [val_labels[i] for i in kept]
        for mlp in (False, True):
            probe = train_probe(x_train, y_train, len(classes), mlp, args.seed)
            with torch.no_grad():
                guess = [classes[i] for i in probe(x_val).argmax(1).tolist()]
            row = {
                "tokens": "2x2 block" if block else "centre token",
                "probe": "MLP" if mlp else "linear",
                "objects": len(truth),
                "colour_and_shape": float(np.mean([g == t for g, t in zip(guess, truth, strict=True)])),
                "colour": float(np.mean([g[0] == t[0] for g, t in zip(guess, truth, strict=True)])),
                "shape": float(np.mean([g[1] == t[1] for g, t in zip(guess, truth, strict=True)])),
            }
            results.append(row)
            print(
                f"{row['tokens']:>12} {row['probe']:>6}: colour+shape {row['colour_and_shape']:.1%}, "
                f"colour {row['colour']:.1%}, shape {row['shape']:.1%} ({row['objects']} objects)"
            )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
