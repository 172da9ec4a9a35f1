"""Where a captioner looked for each word: its cross-attention over the image, one panel per generated token.

Each map is the mean over heads and decoder layers, a distribution over the encoder's patch grid (the CLS
token's share taken out), drawn over the image.

    .venv/bin/python examples/attention_maps.py --model runs/cap/best runs/demo/world/images/val_00000.png \
        --out runs/cap/attention.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import vlkit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a captioner folder (Captioner.save)")
    parser.add_argument("image", type=Path, help="one image file")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    args = parser.parse_args()
    captioner = vlkit.load_captioner(args.model, device=args.device)
    image = vlkit.read_image(args.image)
    output = vlkit.caption_images(captioner, [image], return_attentions=True)
    maps = vlkit.attention_maps(output, 0).maps  # (tokens, rows, columns)
    tokens = output.tokens[0]
    if not tokens:
        parser.error(f"{args.image}: the captioner generated no token")
    width, height = image.size
    figure, axes = plt.subplots(1, len(tokens), figsize=(2.2 * len(tokens), 2.6), squeeze=False)
    for axis, token, grid_map in zip(axes[0], tokens, maps, strict=True):
        axis.imshow(image)
        axis.imshow(grid_map, cmap="jet", alpha=0.5, extent=(0, width, height, 0), interpolation="bilinear")
        axis.set_title(repr(token.strip() or token), fontsize=9)
        axis.axis("off")
    figure.suptitle(output.captions[0] or "(empty caption)", fontsize=10)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=100)
    plt.close(figure)
    print(f"{output.captions[0]!r}: {len(tokens)} token maps -> {args.out}")


if __name__ == "__main__":
    main()
