"""Caption image files with a trained captioner (greedy search, or beam search with --beams).

.venv/bin/python examples/caption_images.py --model runs/cap/best runs/demo/world/images/*.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import vlkit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a captioner folder (Captioner.save)")
    parser.add_argument("images", type=Path, nargs="+", help="image files")
    parser.add_argument("--beams", type=int, default=1, help="beam width; 1 is greedy search")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    args = parser.parse_args()
    captioner = vlkit.load_captioner(args.model, device=args.device)
    images = [vlkit.read_image(path) for path in args.images]
    output = vlkit.caption_images(captioner, images, vlkit.DecodingConfig(num_beams=args.beams))
    for path, caption in zip(args.images, output.captions, strict=True):
        print(f"{path.name}: {caption}")


if __name__ == "__main__":
    main()
