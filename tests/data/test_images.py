from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlkit.data import images
from vlkit.data.images import read_image, read_images, scan_images, to_rgb
from vlkit.errors import VlkitError

from . import badfiles


def pixels(image: Image.Image) -> list[tuple[int, int, int]]:
    return [tuple(int(v) for v in p) for p in np.asarray(image).reshape(-1, 3)]


@pytest.mark.parametrize("case", sorted(badfiles.BAD_IMAGES))
def test_read_image_refuses_each_bad_file_naming_it(tmp_path: Path, case: str) -> None:
    make, fragment = badfiles.BAD_IMAGES[case]
    path = make(tmp_path)
    with pytest.raises(VlkitError) as raised:
        read_image(path)
    message = str(raised.value)
    assert str(path) in message
    assert fragment in message
    assert "\n" not in message


def test_bomb_error_names_the_image_size(tmp_path: Path) -> None:
    path = badfiles.make_bomb_png(tmp_path, 10_000, 10_000)
    with pytest.raises(VlkitError, match=r"bomb_10000x10000.png: .*bomb.*100000000 pixels"):
        read_image(path)


def test_vlkit_limit_holds_when_pillows_is_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    path = badfiles.make_bomb_png(tmp_path, 10_000, 10_000)
    expected = r"bomb_10000x10000.png: image is 10000x10000 \(100,000,000 pixels\)"
    with pytest.raises(VlkitError, match=expected):
        read_image(path)


def test_pixel_limit_is_vlkits_own_constant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "small.png"
    Image.new("RGB", (20, 10)).save(path)
    assert read_image(path).size == (20, 10)
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 199)
    expected = r"small.png: image is 20x10 \(200 pixels\), over vlkit's limit of 199"
    with pytest.raises(VlkitError, match=expected):
        read_image(path)


def test_truncated_image_is_an_error_even_though_its_header_is_fine(tmp_path: Path) -> None:
    path = badfiles.make_truncated_png(tmp_path)
    with Image.open(path) as header_only:
        assert header_only.size == (64, 64)  # Pillow opens it happily; only decoding finds the damage
    with pytest.raises(VlkitError, match="truncated"):
        read_image(path)


def test_png_named_jpg_is_read_by_content(tmp_path: Path) -> None:
    image = read_image(badfiles.make_png_named_jpg(tmp_path))
    assert image.mode == "RGB" and image.size == (5, 4)
    assert set(pixels(image)) == {(10, 200, 30)}


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    image = read_image(badfiles.make_cmyk_jpeg(tmp_path))
    assert image.mode == "RGB"
    red, green, blue = np.asarray(image).reshape(-1, 3).mean(axis=0)
    assert red > 240 and green < 15 and blue > 240  # magenta


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = badfiles.make_gray16_png(tmp_path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")  # really 16-bit on disk, as Pillow reads it
    image = read_image(path)
    assert image.mode == "RGB"
    assert pixels(image) == [(v, v, v) for v in badfiles.GRAY16_EXPECTED_8BIT]


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L"])
def test_every_sixteen_bit_byte_order_scales_the_same(mode: str) -> None:
    values = np.array([badfiles.GRAY16_VALUES], dtype=np.uint16)
    dtype = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2"}[mode]
    image = Image.frombytes(mode, (4, 1), values.astype(dtype).tobytes())
    assert pixels(to_rgb(image)) == [(v, v, v) for v in badfiles.GRAY16_EXPECTED_8BIT]


def test_thirty_two_bit_ints_use_the_sixteen_bit_scale_and_clip_outside_it() -> None:
    image = Image.fromarray(np.array([[-5, 32768, 65535, 100_000]], dtype=np.int32))
    assert image.mode == "I"
    assert [p[0] for p in pixels(to_rgb(image))] == [0, 128, 255, 255]


def test_float_images_in_unit_range_scale_by_255_otherwise_clip_to_255() -> None:
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert [p[0] for p in pixels(to_rgb(unit))] == [0, 128, 255]
    wide = Image.fromarray(np.array([[0.0, 100.0, 300.0, np.nan]], dtype=np.float32))
    assert [p[0] for p in pixels(to_rgb(wide))] == [0, 100, 255, 0]


def test_palette_transparency_is_composited_over_white(tmp_path: Path) -> None:
    image = read_image(badfiles.make_palette_png_with_transparency(tmp_path))
    assert pixels(image) == [(255, 255, 255), (0, 255, 0)]


def test_gray_alpha_is_composited_over_white(tmp_path: Path) -> None:
    image = read_image(badfiles.make_la_png(tmp_path))
    assert pixels(image) == [(255, 255, 255), (100, 100, 100)]


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    image = read_image(badfiles.make_rgba_png(tmp_path))
    transparent, half, opaque = pixels(image)
    assert transparent == (255, 255, 255)
    assert all(abs(v - 127) <= 1 for v in half)  # black at alpha 128 over white
    assert opaque == (255, 0, 0)


def test_one_by_one_and_bilevel_images(tmp_path: Path) -> None:
    assert pixels(read_image(badfiles.make_one_pixel(tmp_path))) == [(1, 2, 3)]
    assert pixels(read_image(badfiles.make_one_bit_png(tmp_path))) == [(0, 0, 0), (255, 255, 255), (0, 0, 0)]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = badfiles.make_exif_rotated_jpeg(tmp_path)
    with Image.open(path) as raw:
        assert raw.size == (32, 16)
    image = read_image(path)
    assert image.size == (16, 32)
    array = np.asarray(image).astype(int)
    top, bottom = array[4, 8], array[28, 8]
    assert top[0] > 200 and top[2] < 60  # red on top
    assert bottom[2] > 200 and bottom[0] < 60  # blue at the bottom


def test_read_image_returns_a_loaded_copy_with_the_file_closed(tmp_path: Path) -> None:
    path = badfiles.make_one_pixel(tmp_path)
    image = read_image(path)
    path.unlink()  # the image must not need the file any more
    assert image.getpixel((0, 0)) == (1, 2, 3)


def test_read_images_with_error_policy_stops_at_the_first_bad_file(tmp_path: Path) -> None:
    good = badfiles.make_one_pixel(tmp_path)
    bad = badfiles.make_zero_byte(tmp_path)
    with pytest.raises(VlkitError, match="empty.png: empty file"):
        read_images([good, bad, good])


def test_read_images_with_skip_policy_counts_logs_and_keeps_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = badfiles.make_one_pixel(tmp_path)
    gray = badfiles.make_gray16_png(tmp_path)
    zero = badfiles.make_zero_byte(tmp_path)
    missing = badfiles.make_missing(tmp_path)
    with caplog.at_level(logging.WARNING, logger="vlkit.data.images"):
        batch = read_images([zero, good, missing, gray], on_bad_image="skip")
    assert batch.kept == [1, 3]
    assert [image.size for image in batch.images] == [(1, 1), (4, 1)]
    assert [skipped.path for skipped in batch.skipped] == [zero, missing]
    assert "empty file" in batch.skipped[0].reason and "not found" in batch.skipped[1].reason
    assert "skipped 2 of 4 images" in caplog.text
    assert str(zero) in caplog.text


def test_scan_images_keeps_sizes_and_skips(tmp_path: Path) -> None:
    good = badfiles.make_png_named_jpg(tmp_path)
    truncated = badfiles.make_truncated_jpeg(tmp_path)
    scan = scan_images([good, truncated], on_bad_image="skip")
    assert scan.sizes == [(5, 4)] and scan.kept == [0]
    assert len(scan.skipped) == 1 and scan.skipped[0].path == truncated


def test_unknown_policy_is_an_error_naming_the_option(tmp_path: Path) -> None:
    with pytest.raises(VlkitError, match="on_bad_image: unknown policy 'ignore'"):
        read_images([badfiles.make_one_pixel(tmp_path)], on_bad_image="ignore")  # type: ignore[arg-type]
