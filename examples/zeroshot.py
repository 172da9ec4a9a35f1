"""Zero-shot classification with a CLIP: every prompt template's top-1 accuracy, and the ensemble's.

Each image is encoded once; each template alone and the template ensemble are scored on the same embeddings.

    .venv/bin/python examples/zeroshot.py --model openai/clip-vit-base-patch32 \
        --data runs/demo/world/classification/val --templates imagenet80
"""

from __future__ import annotations

import argparse
from pathlib import Path

import vlkit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="openai/clip-vit-base-patch32", help="CLIP: hub id or folder")
    parser.add_argument("--data", type=Path, required=True, help="a classification folder (either layout)")
    parser.add_argument("--templates", default="seed", help="a named set (seed, imagenet80) or a text file")
    args = parser.parse_args()
    dataset = vlkit.load_classification_dataset(args.data)
    templates = vlkit.resolve_templates(args.templates)
    clip = vlkit.load_clip(args.model)
    analysis = vlkit.analyse_prompts(clip, dataset.paths, dataset.labels, dataset.class_names, templates)
    print(f"{len(analysis.labels)} images, {len(dataset.class_names)} classes, {len(templates)} templates")
    for score in analysis.templates:
        print(f"{score.top1:7.1%}  {score.template}")
    print(f"{analysis.ensemble.top1:7.1%}  ensemble")


if __name__ == "__main__":
    main()
