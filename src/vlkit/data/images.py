"""The one image reader of vlkit: every image any command or model sees comes through `read_image`.

Pillow decodes; this module only decides what to do with what Pillow hands back, the same way everywhere:

- **RGB, fully loaded, file closed.** Every mode becomes 8-bit RGB. Pillow's own `convert` is used where it
  is right and bypassed where it is not: it *clips* 16-bit and 32-bit integer images to 0..255 (so a 16-bit
  grayscale scan turns almost white), so those are scaled here instead (65535 -> 255, 32768 -> 128).
- **Transparency is composited over white**, a fixed background so the same file always gives the same
  pixels (dropping alpha instead would expose whatever colour the transparent pixels happen to store).
- **EXIF orientation is applied** (`ImageOps.exif_transpose`), so a phone photo is upright as its viewer
  shows it. Animated images give their first frame.
- **Bad files are errors, never guesses.** A missing file, a directory, a 0-byte file, an unknown format, a
  truncated or corrupt file and a decompression bomb each raise one `VlkitError` that names the file.
  Truncated images are never padded: Pillow's `ImageFile.LOAD_TRUNCATED_IMAGES` is left False (a warning is
  logged if some other code turned it on, since Pillow then loads truncated files silently).

`read_images` / `scan_images` apply a `BadImagePolicy` to many files: "error" stops at the first bad one,
"skip" logs it, counts it and goes on.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from vlkit.errors import VlkitError
from vlkit.runtime import progress

logger = logging.getLogger(__name__)

BadImagePolicy = Literal["error", "skip"]
BAD_IMAGE_POLICIES: tuple[str, ...] = ("error", "skip")

# Pillow's own default (about 89.5 megapixels: a 1024 x 1024 x 4-byte image times 85/2). An image over it is
# refused before any pixel is decoded. Pillow's `Image.MAX_IMAGE_PIXELS` still applies too: whichever limit is
# smaller wins.
MAX_IMAGE_PIXELS = 89_478_485

# The background transparent pixels are composited over.
BACKGROUND_RGB = (255, 255, 255)

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


@dataclass
class SkippedImage:
    """A file the "skip" policy left out, and why (the `VlkitError` message it raised)."""

    path: Path
    reason: str


@dataclass
class ImageBatch:
    """What `read_images` read: `images[k]` came from `paths[kept[k]]`; the rest are in `skipped`."""

    images: list[Image.Image]
    kept: list[int]
    skipped: list[SkippedImage] = field(default_factory=list)


@dataclass
class ImageScan:
    """What `scan_images` found without keeping pixels: the sizes (width, height) of the readable files."""

    sizes: list[tuple[int, int]]
    kept: list[int]
    skipped: list[SkippedImage] = field(default_factory=list)


def read_image(path: str | os.PathLike[str]) -> Image.Image:
    """Read one image file as a fully loaded 8-bit RGB image, upright per its EXIF orientation.

    The format is taken from the file's content, not its name (a PNG named `.jpg` reads fine). Raises
    `VlkitError` naming the file for a missing file, a directory, an empty, unidentifiable, truncated or
    corrupt file, and an image over `MAX_IMAGE_PIXELS`.
    """
    path = Path(path)
    check_nonempty_file(path)
    _warn_if_truncated_images_allowed()
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice its limit; a refused image must be an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_pixel_count(path, image.size)
                image.load()
                upright = _exif_transpose(path, image)
    except VlkitError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise VlkitError(f"{path}: refused as a possible decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise VlkitError(f"{path}: not an image file (Pillow cannot identify its format)") from exc
    except PermissionError as exc:
        raise VlkitError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    # Pillow reports bad pixel data as OSError ("image file is truncated"), SyntaxError, ValueError or
    # EOFError depending on the format plugin.
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise VlkitError(f"{path}: truncated or corrupt image data ({exc})") from exc
    return to_rgb(upright)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a loaded image of any Pillow mode to 8-bit RGB (a new image; see the module docstring)."""
    if image.mode in _SIXTEEN_BIT_MODES:
        return _gray_to_rgb(_scale_to_uint8(np.asarray(image), 65535.0))
    if image.mode == "I":
        # 32-bit ints come from 16-bit PNGs in older Pillows and from TIFFs; read them on the 16-bit scale.
        return _gray_to_rgb(_scale_to_uint8(np.asarray(image), 65535.0))
    if image.mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        # Float images are usually 0..1; otherwise read them on Pillow's 0..255 scale.
        top = 1.0 if values.size and values.min() >= 0.0 and values.max() <= 1.0 else 255.0
        return _gray_to_rgb(_scale_to_uint8(values, top))
    if image.has_transparency_data:  # alpha modes, a "transparency" key, or a palette with alpha
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND_RGB, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def read_images(
    paths: Sequence[str | os.PathLike[str]], on_bad_image: BadImagePolicy = "error"
) -> ImageBatch:
    """Read many images with `read_image`; a bad one raises ("error") or is logged and left out ("skip")."""
    batch = ImageBatch(images=[], kept=[], skipped=[])
    for index, result in _read_each(paths, on_bad_image, None):
        if isinstance(result, SkippedImage):
            batch.skipped.append(result)
        else:
            batch.images.append(result)
            batch.kept.append(index)
    _log_skip_count(len(batch.skipped), len(paths))
    return batch


def scan_images(
    paths: Sequence[str | os.PathLike[str]], on_bad_image: BadImagePolicy = "error"
) -> ImageScan:
    """Read every image once to prove it readable, keeping only its size (for checking whole datasets)."""
    scan = ImageScan(sizes=[], kept=[], skipped=[])
    for index, result in _read_each(paths, on_bad_image, "Reading images"):
        if isinstance(result, SkippedImage):
            scan.skipped.append(result)
        else:
            scan.sizes.append(result.size)
            scan.kept.append(index)
    _log_skip_count(len(scan.skipped), len(paths))
    return scan


def check_policy(on_bad_image: str) -> BadImagePolicy:
    """Validate a policy given as text (e.g. a CLI option)."""
    if on_bad_image not in BAD_IMAGE_POLICIES:
        raise VlkitError(
            f"on_bad_image: unknown policy {on_bad_image!r}; choose one of {', '.join(BAD_IMAGE_POLICIES)}"
        )
    return on_bad_image  # type: ignore[return-value]


def _read_each(
    paths: Sequence[str | os.PathLike[str]], on_bad_image: str, bar: str | None
) -> Iterator[tuple[int, Image.Image | SkippedImage]]:
    """Each path's index and its image, or (under "skip") why it was left out; a progress bar named `bar`
    (none for a batch, whose caller shows the bar of the whole loop)."""
    policy = check_policy(on_bad_image)
    for index, path in enumerate(progress.track(paths, bar, total=len(paths)) if bar else paths):
        try:
            image = read_image(path)
        except VlkitError as exc:
            if policy == "error":
                raise
            logger.warning("skipping image: %s", exc)
            yield index, SkippedImage(path=Path(path), reason=str(exc))
        else:
            yield index, image


def _log_skip_count(skipped: int, total: int) -> None:
    if skipped:
        logger.warning("skipped %d of %d images (on_bad_image='skip')", skipped, total)


_warned_truncated = False


def _warn_if_truncated_images_allowed() -> None:
    global _warned_truncated
    if ImageFile.LOAD_TRUNCATED_IMAGES and not _warned_truncated:
        _warned_truncated = True  # once per process: the setting is global, so repeating it adds nothing
        logger.warning("PIL.ImageFile.LOAD_TRUNCATED_IMAGES was turned on elsewhere: Pillow now pads "
                       "truncated images instead of failing, so vlkit cannot report them")


def check_nonempty_file(path: Path, kind: str = "image") -> None:
    """A one-line VlkitError unless `path` is a readable file of at least one byte (`kind`: "image",
    "video", what the messages call it; the video reader uses it too)."""
    article = "an" if kind[0] in "aeiou" else "a"
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise VlkitError(f"{path}: {kind} file not found") from None
    except OSError as exc:
        raise VlkitError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if path.is_dir():
        raise VlkitError(f"{path}: is a directory, expected {article} {kind} file")
    if stat.st_size == 0:
        raise VlkitError(f"{path}: empty file (0 bytes), expected {article} {kind}")


def _check_pixel_count(path: Path, size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        raise VlkitError(
            f"{path}: image is {width}x{height} ({width * height:,} pixels), over vlkit's limit of "
            f"{MAX_IMAGE_PIXELS:,} pixels (refused as a possible decompression bomb)"
        )
    if width == 0 or height == 0:
        raise VlkitError(f"{path}: image has no pixels ({width}x{height})")


def _exif_transpose(path: Path, image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError) as exc:
        # A broken EXIF block does not make the pixels wrong; keep them as stored rather than drop the file.
        logger.warning("%s: unreadable EXIF orientation, image kept as stored (%s)", path, exc)
        return image.copy()


def _scale_to_uint8(values: np.ndarray, top: float) -> np.ndarray:
    """Map 0..top linearly onto 0..255, rounding to nearest; values outside 0..top are clipped."""
    scaled = np.clip(values.astype(np.float64), 0.0, top) * (255.0 / top)
    return np.floor(scaled + 0.5).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(gray)).convert("RGB")
