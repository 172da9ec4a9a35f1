"""WebDataset shards of a caption dataset: write them (`vlkit data shard`) and read them back as a stream.

The layout is img2dataset's: one tar member per field of a sample, sharing a key, `KEY.png` (or `.jpg`, the
image file's own bytes, never re-encoded), `KEY.txt` (the first caption) and `KEY.json` (`id`, `file_name`,
every caption and the annotation's other fields, e.g. the shapes world's objects). The `webdataset` library
writes and reads the tars, expands brace patterns (`data-{000000..000099}.tar`) and opens URLs; this module
adds only the mapping to vlkit's caption records, a seeded shuffling buffer whose order a position can be
resumed from (`skip`), and the all-or-nothing write of a shard set.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from PIL import Image

from vlkit.data.captions import CaptionDataset
from vlkit.errors import VlkitError

SHARD_PATTERN = "data-%06d.tar"
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp")


def _webdataset():
    try:
        import webdataset
    except ImportError as exc:  # an optional extra: shards are for users who outgrow folders
        raise VlkitError(
            "WebDataset shards need the `webdataset` package: pip install 'vlkit[shards]'"
        ) from exc
    return webdataset


@dataclass
class ShardSample:
    """One image of a shard set, decoded: the fields a caption dataset's image has."""

    key: str
    image: Image.Image
    id: int | str
    file_name: str
    captions: list[str]
    extra: dict[str, Any] = field(default_factory=dict)


def write_shards(dataset: CaptionDataset, out: Path, per_shard: int = 1000) -> list[Path]:
    """Write `dataset` as tar shards of `per_shard` samples into the folder `out`, in dataset order.

    The shards are written into a temporary folder beside `out`, which replaces `out` only when every shard
    is complete: a run that fails half way leaves no partial shard set (and an earlier one intact)."""
    if per_shard < 1:
        raise VlkitError(f"--per-shard: must be at least 1, got {per_shard}")
    wds = _webdataset()
    out = Path(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with wds.ShardWriter(str(tmp / SHARD_PATTERN), maxcount=per_shard, verbose=0) as sink:
            for index, image in enumerate(dataset.images):
                extension = image.path.suffix.lower().lstrip(".") or "png"
                if extension not in IMAGE_EXTENSIONS:
                    raise VlkitError(f"{image.path}: images of type .{extension} cannot go into shards")
                meta = {
                    "id": image.id,
                    "file_name": image.file_name,
                    "captions": image.captions,
                    **image.extra,
                }
                sink.write(
                    {
                        "__key__": f"{index:09d}",
                        extension: image.path.read_bytes(),
                        "txt": (image.captions[0] if image.captions else "").encode("utf-8"),
                        "json": json.dumps(meta, ensure_ascii=False).encode("utf-8"),
                    }
                )
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(out.glob("data-*.tar"))


def read_shards(
    urls: str | list[str], shuffle_buffer: int = 0, seed: int = 0, skip: int = 0
) -> Iterator[ShardSample]:
    """Stream the samples of shards named by a brace pattern, a list, local paths or URLs, shard by shard.

    With `shuffle_buffer` > 0 the samples pass through a shuffling buffer of that size seeded by `seed`, so
    the order is the same on every run; `skip` drops that many samples of that order first, which resumes a
    stream at a position (a training step times the batch size) without keeping any state on disk.
    """
    wds = _webdataset()
    if isinstance(urls, str):
        _check_local(urls)
    stream = wds.WebDataset(urls, shardshuffle=False, empty_check=False, handler=_reraise)
    if shuffle_buffer > 0:
        stream = stream.shuffle(shuffle_buffer, rng=random.Random(seed))
    for raw in islice(stream, skip, None):
        yield _decode(raw)


def _reraise(exc: Exception) -> bool:
    raise VlkitError(f"shards: {exc}") from exc


def _check_local(pattern: str) -> None:
    """A local pattern whose first shard is missing is one clear error (URLs are left to the stream)."""
    if "://" in pattern or pattern.startswith("pipe:"):
        return
    from braceexpand import braceexpand

    for path in braceexpand(pattern):
        if not Path(path).is_file():
            raise VlkitError(f"{path}: shard not found (pattern {pattern})")


def _decode(raw: dict[str, Any]) -> ShardSample:
    key = raw["__key__"]
    where = f"{raw.get('__url__', 'shard')}: sample {key}"
    image_field = next((name for name in IMAGE_EXTENSIONS if name in raw), None)
    if image_field is None or "json" not in raw:
        raise VlkitError(f"{where}: needs an image (.png/.jpg) and a .json member")
    try:
        meta = json.loads(raw["json"])
        image = Image.open(io.BytesIO(raw[image_field]))
        image.load()
    except (ValueError, OSError) as exc:
        raise VlkitError(f"{where}: {exc}") from exc
    captions = meta.pop("captions", None) or ([raw["txt"].decode("utf-8")] if "txt" in raw else [])
    return ShardSample(
        key=key,
        image=image.convert("RGB"),
        id=meta.pop("id", key),
        file_name=meta.pop("file_name", f"{key}.{image_field}"),
        captions=captions,
        extra=meta,
    )
