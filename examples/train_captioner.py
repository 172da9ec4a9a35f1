"""Train a captioner (a pretrained vision encoder + GPT-2 with new cross-attention) on COCO-layout captions.

Validation CIDEr-D after every epoch picks the best weights (OUT/best/); the last ones are in OUT/.

    .venv/bin/python examples/train_captioner.py --data runs/demo/world \
        --encoder openai/clip-vit-base-patch32 --decoder gpt2 --tuning cross-attn --steps 1000 --out runs/cap
"""

from __future__ import annotations

import argparse
from pathlib import Path

import vlkit
from vlkit.train.config import LoopConfig  # not exported at the package root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with train.json, val.json, images/")
    parser.add_argument("--encoder", default="openai/clip-vit-base-patch32", help="CLIP, SigLIP or ViT")
    parser.add_argument("--decoder", default="gpt2", help="GPT-2-family decoder: hub id or folder")
    parser.add_argument("--tuning", default="cross-attn", help="lora, cross-attn, adapter, prefix, ia3, full")
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps")
    parser.add_argument("--out", type=Path, required=True, help="captioner folder to write")
    args = parser.parse_args()
    train = vlkit.load_caption_dataset(args.data / "train.json", args.data / "images")
    val_file = args.data / "val.json"
    val = vlkit.load_caption_dataset(val_file, args.data / "images") if val_file.is_file() else None
    spec = vlkit.CaptionerSpec(encoder=args.encoder, decoder=args.decoder, tuning=args.tuning)
    config = vlkit.CaptionTrainConfig(spec, loop=LoopConfig(steps=args.steps))
    result = vlkit.train_captioner(config, train, val, args.out)
    print(f"{args.tuning}: {result.parameters.describe()}")
    print(f"final loss {result.final_loss:.4f}; saved {result.out_dir}")
    if result.best_cider is not None:
        print(
            f"best validation CIDEr-D {result.best_cider:.4f} at step {result.best_step}: {result.best_dir}"
        )
    else:
        print("best validation CIDEr-D: unavailable (no val.json)")


if __name__ == "__main__":
    main()
