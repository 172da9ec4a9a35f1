"""WebDataset shards of a caption dataset: write them (`vlkit data shard`) and read them back as a stream.

The layout is img2dataset's: one tar member per field of a sample, sharing a key, `KEY.png` (or `.jpg`, the
image file's own bytes, never re-encoded), `KEY.txt` (the first caption) and `KEY.json` (`id`, `file_name`,
every caption and the annotation's other fields, e.g. the shapes world's objects). The `webdataset` library
writes and reads the tars, expands brace patterns (`data-{000000..000099}.tar`) and opens URLs; this module
adds only the mapping to vlkit's caption records, a seeded shuffle (shard order and a sample buffer) whose
order a position can be resumed from (`skip`), each sample's ordinal (its place in the unshuffled shard set,
which indexes a feature cache), the sample count of each shard (a tar listing, no image decoded), and the
all-or-nothing write of a shard set. Images are decoded when first used, so a process that keeps only its
share of a batch decodes only that share.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import random
import shutil
import tarfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image, UnidentifiedImageError

from vlkit.data.captions import CaptionDataset
from vlkit.data.classification import ID2LABEL_FILE, ClassificationDataset
from vlkit.errors import VlkitError
from vlkit.runtime.distributed import gather_in_order, process_state
from vlkit.runtime.progress import track

SHARD_PATTERN = "data-%06d.tar"
UNSEEN_FILE = "unseen_classes.json"  # class names held out of training, for the seen/unseen split
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp")
T = TypeVar("T")


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
    """One sample of a shard set: the fields a caption dataset's image has, the image decoded on first use."""

    key: str
    id: int | str
    file_name: str
    captions: list[str]
    ordinal: int  # its place in the shard set read in order (shard after shard), from 0
    image_bytes: bytes = field(repr=False, default=b"")
    url: str = ""  # the shard it came from
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """How errors name the sample: "URL: sample KEY"."""
        return _where(self.url, self.key)

    @functools.cached_property
    def image(self) -> Image.Image:
        try:
            image = Image.open(io.BytesIO(self.image_bytes))
            image.load()
        except UnidentifiedImageError as exc:
            raise VlkitError(f"{self.where}: not an image file that can be read") from exc
        except OSError as exc:
            raise VlkitError(f"{self.where}: {exc}") from exc
        return image.convert("RGB")


def write_shards(dataset: CaptionDataset, out: Path, per_shard: int = 1000) -> list[Path]:
    """Write `dataset` as tar shards of `per_shard` samples into the folder `out`, in dataset order.

    The shards are written into a temporary folder beside `out`, which replaces `out` only when every shard
    is complete: a run that fails half way leaves no partial shard set (and an earlier one intact)."""

    def samples() -> Iterator[tuple[Path, dict[str, Any]]]:
        for image in dataset.images:
            meta = {"id": image.id, "file_name": image.file_name, "captions": image.captions, **image.extra}
            yield image.path, {"txt": image.captions[0] if image.captions else "", "json": meta}

    return _write_all(samples(), out, per_shard, {})


def write_classification_shards(
    dataset: ClassificationDataset, out: Path, per_shard: int = 1000, unseen_classes: Sequence[str] = ()
) -> list[Path]:
    """Write a classification dataset as tar shards (KEY.png, KEY.cls: the label, KEY.json: label, class
    name, file name), with `id2label.json` beside them (and `unseen_classes.json` when given), all or
    nothing as `write_shards`."""

    def samples() -> Iterator[tuple[Path, dict[str, Any]]]:
        for path, label in zip(dataset.paths, dataset.labels, strict=True):
            meta = {"file_name": path.name, "label": label, "class_name": dataset.class_names[label]}
            yield path, {"cls": str(label), "json": meta}

    extra = {ID2LABEL_FILE: {str(i): name for i, name in enumerate(dataset.class_names)}}
    if unseen_classes:
        extra[UNSEEN_FILE] = list(unseen_classes)
    return _write_all(samples(), out, per_shard, extra)


def _write_all(
    samples: Iterable[tuple[Path, dict[str, Any]]], out: Path, per_shard: int, extra: dict[str, Any]
) -> list[Path]:
    if per_shard < 1:
        raise VlkitError(f"--per-shard: must be at least 1, got {per_shard}")
    wds = _webdataset()
    out = Path(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with wds.ShardWriter(str(tmp / SHARD_PATTERN), maxcount=per_shard, verbose=0) as sink:
            for index, (path, fields) in enumerate(samples):
                extension = path.suffix.lower().lstrip(".") or "png"
                if extension not in IMAGE_EXTENSIONS:
                    raise VlkitError(f"{path}: images of type .{extension} cannot go into shards")
                record = {"__key__": f"{index:09d}", extension: path.read_bytes()}
                for name, value in fields.items():
                    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                    record[name] = text.encode("utf-8")
                sink.write(record)
        for name, value in extra.items():
            (tmp / name).write_text(json.dumps(value, indent=1, ensure_ascii=False))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(out.glob("data-*.tar"))


def shard_label(sample: ShardSample) -> int:
    """The class id of a classification shard's sample (its .json `label`)."""
    label = sample.extra.get("label")
    if not isinstance(label, int) or isinstance(label, bool):
        raise VlkitError(f"{sample.where}: its .json needs an integer `label` (a classification shard)")
    return label


@dataclass
class ShardSource:
    """Training data read from shards: the shard set and its shuffling buffer (0: shard order)."""

    shards: ShardSet
    shuffle_buffer: int = 0


@dataclass
class ShardSet:
    """The shards of a pattern (or list), in order, with how many samples each holds."""

    urls: list[str]
    counts: list[int]

    @classmethod
    def open(cls, urls: str | Sequence[str]) -> ShardSet:
        """Expand a brace pattern, check local shards exist and count every shard's samples (a local tar is
        listed, not decoded; a URL is streamed once)."""
        expanded = expand_shards(urls)
        return cls(expanded, [count_samples(url) for url in expanded])

    @property
    def total(self) -> int:
        return sum(self.counts)

    def offsets(self) -> list[int]:
        """The ordinal of each shard's first sample."""
        out, total = [], 0
        for count in self.counts:
            out.append(total)
            total += count
        return out

    def fingerprint(self) -> str:
        """SHA-256 of the shard list: each URL with, for a local file, its size and modification time."""
        digest = hashlib.sha256()
        for url in self.urls:
            stat = Path(url).stat() if _is_local(url) else None
            digest.update(
                f"{url}\0{stat.st_size if stat else ''}\0{stat.st_mtime_ns if stat else ''}\n".encode()
            )
        return digest.hexdigest()

    def stream(
        self,
        shuffle_buffer: int = 0,
        seed: int = 0,
        skip: int = 0,
        shards: Sequence[int] | None = None,
    ) -> Iterator[ShardSample]:
        """The samples of `shards` (indices into `urls`; all by default), shard after shard.

        With `shuffle_buffer` > 0 the shard order is shuffled and the samples pass through a shuffling
        buffer of that size, both seeded by `seed`, so the order is the same on every run; `skip` drops that
        many samples of that order first, which resumes a stream at a position (a training step times the
        batch size) without keeping any state on disk."""
        chosen = list(range(len(self.urls))) if shards is None else list(shards)
        rng = random.Random(seed)
        if shuffle_buffer > 0:
            rng.shuffle(chosen)
        offsets = self.offsets()
        return _stream(
            [self.urls[i] for i in chosen], [offsets[i] for i in chosen], shuffle_buffer, rng, skip
        )


def shard_source(pattern: str, shuffle_buffer: int = 0) -> ShardSource:
    """The `--train-shards PATTERN --shuffle-buffer N` of the training commands, checked and counted."""
    if shuffle_buffer < 0:
        raise VlkitError(f"--shuffle-buffer: must be 0 or more, got {shuffle_buffer}")
    return ShardSource(ShardSet.open(pattern), shuffle_buffer)


def expand_shards(urls: str | Sequence[str]) -> list[str]:
    """A brace pattern (`data-{000000..000099}.tar`) or a list, as the list of shards (local ones checked)."""
    from braceexpand import braceexpand

    pattern = urls if isinstance(urls, str) else None
    expanded = list(braceexpand(urls)) if isinstance(urls, str) else [str(url) for url in urls]
    if not expanded:
        raise VlkitError("shards: the pattern names no shard")
    for url in expanded:
        if _is_local(url) and not Path(url).is_file():
            raise VlkitError(f"{url}: shard not found" + (f" (pattern {pattern})" if pattern else ""))
    return expanded


def count_samples(url: str) -> int:
    """The samples (distinct keys) of one shard: a local tar's member names are listed without reading
    its images; a URL is streamed."""
    if _is_local(url):
        try:
            with tarfile.open(url) as tar:
                return len({_sample_key(name) for name in tar.getnames()})
        except (tarfile.TarError, OSError) as exc:
            lines = str(exc).splitlines()
            reason = lines[0] if len(lines) == 1 else "not a tar, gzip, bzip2 or xz archive"
            raise VlkitError(f"{url}: not a readable tar shard ({reason})") from exc
    wds = _webdataset()
    return sum(1 for _ in _web_dataset(wds, [url]))


def read_shards(
    urls: str | Sequence[str], shuffle_buffer: int = 0, seed: int = 0, skip: int = 0
) -> Iterator[ShardSample]:
    """Stream the samples of a brace pattern, a list, local paths or URLs, shard by shard, without counting
    them first. Unlike `ShardSet.stream` the shard order is kept (only the buffer shuffles): uncounted, a
    sample's ordinal is its place in the stream before the buffer, which is its place in the set only
    while the shards come in order."""
    return _stream(expand_shards(urls), None, shuffle_buffer, random.Random(seed), skip)


def map_shards(
    urls: Sequence[str], work: Callable[[str, Iterator[ShardSample]], T], description: str = "shards"
) -> list[T]:
    """`work(url, samples)` for each shard, in shard order. Under `accelerate launch` process p works on
    shards p, p+N, ... and every process gets every shard's result back, in shard order."""
    state = process_state()
    mine = range(state.process_index, len(urls), state.num_processes)
    local = [(k, work(urls[k], read_shards([urls[k]]))) for k in track(mine, description, total=len(mine))]
    return [result for _, result in sorted(gather_in_order(local), key=lambda item: item[0])]


def _stream(
    urls: list[str], offsets: list[int] | None, shuffle_buffer: int, rng: random.Random, skip: int
) -> Iterator[ShardSample]:
    wds = _webdataset()
    stream = _web_dataset(wds, urls)
    stream = stream.compose(functools.partial(_number, urls, offsets))
    if shuffle_buffer > 0:
        stream = stream.shuffle(shuffle_buffer, rng=rng)
    for raw in islice(stream, skip, None):
        yield _decode(raw)


def _web_dataset(wds, urls: list[str]):
    """The tar reader for exactly `urls`: vlkit gives each process (and each shard stream) its own shards,
    so webdataset's node and worker splitters, which would split them again, are off."""
    return wds.WebDataset(
        urls, shardshuffle=False, empty_check=False, handler=_reraise, nodesplitter=None, workersplitter=None
    )


def _number(urls: list[str], offsets: list[int] | None, raws: Iterable[dict[str, Any]]):
    """Give each raw sample its ordinal, before any shuffling: its shard's offset plus its place there (or,
    without offsets, its place in the stream)."""
    first = dict(zip(urls, offsets, strict=True)) if offsets is not None else None
    current, position, running = None, 0, 0
    for raw in raws:
        url = raw.get("__url__")
        if url != current:
            current, position = url, 0
        raw["__ordinal__"] = (first[url] + position) if first is not None else running
        position, running = position + 1, running + 1
        yield raw


def _sample_key(name: str) -> str:
    """webdataset's rule: the key is the member path up to the first dot of its base name."""
    folder, _, base = name.rpartition("/")
    return f"{folder}/{base.split('.', 1)[0]}" if folder else base.split(".", 1)[0]


def _is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:")


def _reraise(exc: Exception) -> bool:
    """webdataset's error handler: one line naming the shard. webdataset's tar reader appends the stream and
    the shard's URL to the arguments of an error it passes on (`exn.args + (stream, url)`)."""
    args = exc.args
    if len(args) >= 3 and isinstance(args[-1], str) and not isinstance(args[-2], str):
        raise VlkitError(f"{args[-1]}: not a readable tar shard ({args[0]})") from exc
    raise VlkitError(f"shards: {exc}") from exc


def _where(url: str, key: str) -> str:
    return f"{url}: sample {key}"


def _decode(raw: dict[str, Any]) -> ShardSample:
    key, url = raw["__key__"], raw.get("__url__", "shard")
    where = _where(url, key)
    image_field = next((name for name in IMAGE_EXTENSIONS if name in raw), None)
    if image_field is None or "json" not in raw:
        raise VlkitError(f"{where}: needs an image (.png/.jpg) and a .json member")
    try:
        meta = json.loads(raw["json"])
    except ValueError as exc:
        raise VlkitError(f"{where}: {exc}") from exc
    if not isinstance(meta, dict):
        raise VlkitError(f"{where}: its .json must be an object, got {type(meta).__name__}")
    captions = meta.pop("captions", None) or ([raw["txt"].decode("utf-8")] if "txt" in raw else [])
    return ShardSample(
        key=key,
        id=meta.pop("id", key),
        file_name=meta.pop("file_name", f"{key}.{image_field}"),
        captions=captions,
        ordinal=raw["__ordinal__"],
        image_bytes=raw[image_field],
        url=url,
        extra=meta,
    )
