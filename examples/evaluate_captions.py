"""Score predicted captions against COCO-layout references: CIDEr-D, BLEU, METEOR, ROUGE-L and, given a
CLIP, CLIPScore and RefCLIPScore. A metric that cannot run is shown as unavailable, with the reason.
PRED.json holds {file stem: caption} for images of the annotation file (as `vlkit caption predict` writes).

    .venv/bin/python examples/evaluate_captions.py --predictions PRED.json \
        --annotations runs/demo/world/val.json --images runs/demo/world/images \
        --clip openai/clip-vit-base-patch32
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import vlkit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=Path, required=True, help='JSON {"file stem": "caption"}')
    parser.add_argument("--annotations", type=Path, required=True, help="COCO-layout caption file")
    parser.add_argument("--images", type=Path, required=True, help="the folder its file names start from")
    parser.add_argument("--clip", help="CLIP for CLIPScore (hub id or folder); without it, no CLIPScore")
    parser.add_argument("--metrics", default="cider,bleu,meteor,rouge_l,clip_score,ref_clip_score")
    args = parser.parse_args()
    predictions = json.loads(args.predictions.read_text(encoding="utf-8"))
    by_stem = vlkit.load_caption_dataset(args.annotations, args.images).stem_to_image()
    unknown = sorted(set(predictions) - set(by_stem))
    if unknown:
        parser.error(
            f"{args.predictions}: {len(unknown)} stem(s) not in {args.annotations}, e.g. {unknown[0]!r}"
        )
    references = {stem: by_stem[stem].captions for stem in predictions}
    images = {stem: by_stem[stem].path for stem in predictions}
    clip = vlkit.load_clip(args.clip) if args.clip else None
    scores = vlkit.evaluate_captions(predictions, references, images, clip, args.metrics.split(","))
    print(f"{len(predictions)} of {len(by_stem)} images scored")
    for name, value in scores.metrics.items():
        print(
            f"{name}: {f'{value:.4f}' if value is not None else f'unavailable: {scores.unavailable[name]}'}"
        )


if __name__ == "__main__":
    main()
