"""The bad-input corpus, generated at test time into a temporary folder (no binary fixtures in the repo).

Each `make_*` function writes one file (or folder, or nothing for a missing file) under `folder` and returns
its path. Images are drawn with Pillow or written as raw bytes where Pillow would refuse to make them (a
truncated file, a decompression bomb); every one is deterministic.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

# Pixel values of the 16-bit grayscale PNG, left to right, and what each must become in 8 bits.
GRAY16_VALUES = (0, 257, 32768, 65535)
GRAY16_EXPECTED_8BIT = (0, 1, 128, 255)


def noise_rgb(width: int, height: int, seed: int = 0) -> Image.Image:
    """Random RGB pixels (they compress badly, so a truncated copy really lacks pixel data)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def make_zero_byte(folder: Path) -> Path:
    path = folder / "empty.png"
    path.write_bytes(b"")
    return path


def make_truncated_png(folder: Path) -> Path:
    full = folder / "full.png"
    noise_rgb(64, 64).save(full)
    path = folder / "truncated.png"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    return path


def make_truncated_jpeg(folder: Path) -> Path:
    full = folder / "full.jpg"
    noise_rgb(64, 64).save(full, quality=95)
    path = folder / "truncated.jpg"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    return path


def make_random_bytes(folder: Path) -> Path:
    path = folder / "random.png"
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    return path


def make_text_named_png(folder: Path) -> Path:
    path = folder / "notes.png"
    path.write_text("this is not an image\n")
    return path


def make_missing(folder: Path) -> Path:
    return folder / "does_not_exist.png"


def make_directory(folder: Path) -> Path:
    path = folder / "a_folder.png"
    path.mkdir()
    return path


def make_bomb_png(folder: Path, width: int = 10_000, height: int = 10_000) -> Path:
    """A real, valid 1-bit PNG that is tiny on disk but `width * height` pixels when decoded."""
    row = b"\x00" + bytes((width + 7) // 8)  # filter byte "none", then all-black pixels
    compressor = zlib.compressobj(9)
    compressed = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit per pixel, grayscale
    path = folder / f"bomb_{width}x{height}.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", compressed)
                     + _png_chunk(b"IEND", b""))
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# Each bad file, and a fragment the VlkitError message must contain besides the file's name.
BAD_IMAGES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "zero_byte": (make_zero_byte, "empty file (0 bytes)"),
    "truncated_png": (make_truncated_png, "truncated or corrupt"),
    "truncated_jpeg": (make_truncated_jpeg, "truncated or corrupt"),
    "random_bytes": (make_random_bytes, "not an image file"),
    "text_named_png": (make_text_named_png, "not an image file"),
    "missing": (make_missing, "not found"),
    "directory": (make_directory, "is a directory"),
    "bomb_over_vlkit_limit": (make_bomb_png, "decompression bomb"),
    "bomb_over_pillow_error_limit": (lambda folder: make_bomb_png(folder, 20_000, 20_000), "bomb"),
}


def make_png_named_jpg(folder: Path) -> Path:
    path = folder / "really_a_png.jpg"
    Image.new("RGB", (5, 4), (10, 200, 30)).save(path, format="PNG")
    return path


def make_cmyk_jpeg(folder: Path) -> Path:
    """Pure magenta in CMYK (C=0, M=255, Y=0, K=0)."""
    path = folder / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 0, 0)).save(path, quality=100)
    return path


def make_gray16_png(folder: Path) -> Path:
    """A 4x1 16-bit grayscale PNG holding `GRAY16_VALUES`."""
    path = folder / "gray16.png"
    Image.fromarray(np.array([GRAY16_VALUES], dtype=np.uint16)).save(path)
    return path


def make_palette_png_with_transparency(folder: Path) -> Path:
    """2x1 palette PNG: pixel (0, 0) is index 0, red but fully transparent; pixel (1, 0) is opaque green."""
    image = Image.new("P", (2, 1), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)
    image.putpixel((1, 0), 1)
    path = folder / "palette_transparent.png"
    image.save(path, transparency=0)
    return path


def make_la_png(folder: Path) -> Path:
    """2x1 gray+alpha: (0, 0) black and fully transparent, (1, 0) gray 100 and opaque."""
    image = Image.new("LA", (2, 1), (0, 0))
    image.putpixel((1, 0), (100, 255))
    path = folder / "gray_alpha.png"
    image.save(path)
    return path


def make_rgba_png(folder: Path) -> Path:
    """3x1 RGBA: transparent blue, half-transparent black, opaque red."""
    image = Image.new("RGBA", (3, 1))
    for x, pixel in enumerate([(0, 0, 255, 0), (0, 0, 0, 128), (255, 0, 0, 255)]):
        image.putpixel((x, 0), pixel)
    path = folder / "rgba.png"
    image.save(path)
    return path


def make_one_pixel(folder: Path) -> Path:
    path = folder / "one_pixel.png"
    Image.new("RGB", (1, 1), (1, 2, 3)).save(path)
    return path


def make_one_bit_png(folder: Path) -> Path:
    """3x1 bilevel image: black, white, black."""
    image = Image.new("1", (3, 1), 0)
    image.putpixel((1, 0), 1)
    path = folder / "bilevel.png"
    image.save(path)
    return path


def make_exif_rotated_jpeg(folder: Path) -> Path:
    """Stored 32 wide x 16 high, left half red and right half blue, with EXIF orientation 6.

    Orientation 6 means "rotate 90 degrees clockwise to display", so the upright image is 16 wide x 32 high
    with red on top and blue at the bottom.
    """
    stored = Image.new("RGB", (32, 16), (255, 0, 0))
    stored.paste((0, 0, 255), (16, 0, 32, 16))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    path = folder / "rotated.jpg"
    stored.save(path, quality=95, exif=exif.tobytes())
    return path
