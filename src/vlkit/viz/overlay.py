"""One word's attention map laid over its image, as one RGB picture (the app's gallery shows one per word).

The look is `vlkit.viz.plots.attention_figure`'s panels (the "jet" colour map at half opacity), but made as a
plain image, not a figure: matplotlib only supplies the colour map; the blend is two lines of numpy, which
keeps a picture per word at the image's own size and takes milliseconds instead of a figure's layout pass.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image

from vlkit.captioning.attention import upsample

OVERLAY_OPACITY = 0.5
MIN_SIDE = 224  # small images (the shapes world's 64 px) are enlarged first, so a gallery tile is not a blur


def attention_overlay(
    image: Image.Image, grid_map: np.ndarray, opacity: float = OVERLAY_OPACITY
) -> Image.Image:
    """`grid_map` (rows, columns), a distribution over the patch grid, upsampled bilinearly to the image and
    drawn over it in the "jet" colour map, scaled so the map's peak is the colour map's top."""
    image = _at_least(image.convert("RGB"), MIN_SIDE)
    heat = upsample(grid_map, image.size)  # (height, width), sums to 1
    peak = heat.max()
    scaled = heat / peak if peak > 0 else heat
    colours = colormaps["jet"](scaled)[..., :3]  # (height, width, 3) in 0..1
    pixels = np.asarray(image, dtype=np.float64) / 255.0
    blended = (1.0 - opacity) * pixels + opacity * colours
    return Image.fromarray(np.round(blended * 255.0).astype(np.uint8), mode="RGB")


def _at_least(image: Image.Image, side: int) -> Image.Image:
    shortest = min(image.size)
    if shortest >= side:
        return image
    factor = side / shortest
    size = (round(image.width * factor), round(image.height * factor))
    return image.resize(size, Image.Resampling.NEAREST)
