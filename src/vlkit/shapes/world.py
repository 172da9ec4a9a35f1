"""The shapes world: a generated vision-language data set with exact ground truth for every word.

It stands in for COCO when no pretrained weights can be had: captioned scenes of 1-3 coloured shapes (with
pixel masks, tight boxes and 5+ captions each), single-object classification images over colour x shape
classes, and a held-out set of colour x shape combinations that no training image or caption contains.
Beside them, in `alt_text/`, the CLIP's own corpus (as a real CLIP learns from web alt text, not from COCO):
single objects with short captions that name their colour and shape. A CLIP trained on the scene captions
learned shapes far too slowly within the embedded default's budget; docs/embedded-default.md has the
measurements that led here and their commands.
`scenes` lays out and renders the images, `grammar` writes the captions; this module plans the jobs, runs
them on worker processes and writes the folder (`meta` reads it back).
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from vlkit.errors import ConfigError, VlkitError
from vlkit.runtime.files import read_json, write_json_atomic
from vlkit.runtime.options import option
from vlkit.runtime.progress import track
from vlkit.shapes.grammar import (
    COLOURS,
    POSITIONS,
    SHAPES,
    SIZES,
    SceneObject,
    write_alt_texts,
    write_captions,
)
from vlkit.shapes.scenes import (
    CLASS_NAMES,
    choose_heldout,
    image_rng,
    other_shapes,
    png_bytes,
    render_scene,
    sample_kinds,
    sample_layout,
)

__all__ = [
    "ALT_TEXT_DIR", "CLASS_NAMES", "COLOURS", "GENERATOR_VERSION", "POSITIONS", "SHAPES", "SIZES",
    "ShapesConfig", "WorldSummary", "choose_heldout", "generate_world",
]

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 4
CHUNK = 100  # images per job: small enough for a smooth progress bar, large enough to amortize pickling
ALT_TEXT_DIR = "alt_text"
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 1024


@dataclass
class ShapesConfig:
    """What to generate. Every field is one CLI option of `vlkit data shapes` (metadata "flag")."""

    seed: int = option(0, "--seed", "Seed of every random choice.")
    n_train: int = option(8000, "--train", "Captioned training images.")
    n_val: int = option(500, "--val", "Captioned validation images.")
    image_size: int = option(64, "--image-size", f"Side of every (square) image in pixels, {MIN_IMAGE_SIZE} "
                              f"to {MAX_IMAGE_SIZE}.")
    per_class_train: int = option(10, "--per-class-train", "Classification images per seen class.")
    per_class_val: int = option(20, "--per-class-val", "Classification images per class (val).")
    n_heldout: int = option(8, "--heldout", "Colour x shape combinations kept out of training, at most one "
                             f"per colour (0 to {len(COLOURS)}).")
    n_alt_text: int = option(8000, "--alt-text", f"Single-object images with alt-text captions in "
                              f"{ALT_TEXT_DIR}/ (the CLIP's corpus; seen combinations only).")
    n_alt_text_val: int = option(400, "--alt-text-val", "Validation images of the alt-text corpus.")
    captions_per_image: int = option(5, "--captions", "Reference captions per captioned image.")
    contrast_group: int = option(1, "--contrast-group", "Consecutive captioned images that share one layout "
                                  "and its colours but differ in shapes (1: every image independent).")
    workers: int = option(2, "--workers", "Processes that render; the output is the same for any number.")

    def validate(self) -> None:
        """Raise ConfigError naming the first field that is out of range (the CLI names its option)."""
        limits = {"image_size": (MIN_IMAGE_SIZE, MAX_IMAGE_SIZE), "n_heldout": (0, len(COLOURS)),
                  "captions_per_image": (1, 100), "workers": (1, 256),
                  "contrast_group": (1, 64)}
        for spec in fields(self):
            value = getattr(self, spec.name)
            low, high = limits.get(spec.name, (0, None))
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(ShapesConfig, spec.name, f"must be an integer, got {value!r}")
            if value < low or (high is not None and value > high):
                bounds = f"at least {low}" if high is None else f"between {low} and {high}"
                raise ConfigError(ShapesConfig, spec.name, f"must be {bounds}, got {value}")


@dataclass
class WorldSummary:
    """What `generate_world` wrote."""

    out_dir: Path
    n_train: int
    n_val: int
    n_captions: int
    n_classification_train: int
    n_classification_val: int
    n_alt_text: int
    n_alt_text_val: int
    classes: list[str]
    heldout: list[tuple[str, str]]
    seconds: float


# ----------------------------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class _Job:
    """One chunk of images for one worker: captioned scenes [start, stop) or classification items."""

    root: str
    stream: str
    seed: int
    image_size: int
    captions_per_image: int
    combos: tuple[tuple[str, str], ...]
    start: int = 0
    stop: int = 0
    items: tuple[tuple[int, int], ...] = ()  # (class id, n) of classification images
    contrast_group: int = 1


def _run_job(job: _Job) -> tuple[list[dict[str, Any]], str]:
    """Render and write one chunk; returns the JSON records of its captioned images (none for classes) and
    the sha256 of the pixels it drew, in order (the world's content digest: PNG bytes would vary with the
    zlib a Pillow build bundles, the pixels do not)."""
    root, pixels = Path(job.root), hashlib.sha256()
    if job.stream.startswith(f"{ALT_TEXT_DIR}/"):
        records = [_alt_text_record(job, root, index, pixels) for index in range(job.start, job.stop)]
        return records, pixels.hexdigest()
    if job.stream.startswith("classification/"):
        split = job.stream.split("/")[1]
        for class_id, n in job.items:
            rng = image_rng(job.seed, job.stream, class_id, n)
            footprints = sample_layout(rng, job.image_size, 1)
            scene = render_scene(rng, job.image_size, footprints, [_combo_of(class_id)])
            pixels.update(scene.image.tobytes())
            data = png_bytes(scene.image)
            _write(root / "classification" / split / f"{class_id}_{n}.png", data)
            _write(root / "imagefolder" / split / CLASS_NAMES[class_id] / f"{n}.png", data)
        return [], pixels.hexdigest()
    records = []
    for index in range(job.start, job.stop):
        rng = image_rng(job.seed, job.stream, index)
        # A contrast group shares the layout and colours of its first image (drawn from the group's own
        # generator); the others change shapes, so only shapes tell the group's images and captions apart.
        group_rng = image_rng(job.seed, job.stream, index // job.contrast_group, 0)
        layout_rng = group_rng if job.contrast_group > 1 else rng
        footprints = sample_layout(layout_rng, job.image_size, 1 + int(layout_rng.integers(3)))
        kinds = sample_kinds(layout_rng, job.combos, len(footprints))
        if index % job.contrast_group:
            kinds = other_shapes(rng, job.combos, kinds)
        scene = render_scene(rng, job.image_size, footprints, kinds)
        pixels.update(scene.image.tobytes())
        pixels.update(scene.mask.tobytes())
        stem = f"{job.stream}_{index:05d}"
        _write(root / "images" / f"{stem}.png", png_bytes(scene.image))
        _write(root / "masks" / f"{stem}.png", png_bytes(scene.mask))
        captions = write_captions(scene.objects, job.image_size, rng, job.captions_per_image)
        image = _image_record(f"{stem}.png", index, job.image_size, scene.objects)
        records.append({"image": {**image, "mask_file": f"masks/{stem}.png"}, "captions": captions})
    return records, pixels.hexdigest()


def _alt_text_record(job: _Job, root: Path, index: int, pixels: Any) -> dict[str, Any]:
    """One single-object image of a seen combination, with `captions_per_image` alt-text captions."""
    rng = image_rng(job.seed, job.stream, index)
    colour, shape = job.combos[int(rng.integers(len(job.combos)))]
    scene = render_scene(rng, job.image_size, sample_layout(rng, job.image_size, 1), [(colour, shape)])
    pixels.update(scene.image.tobytes())
    name = f"{job.stream.split('/')[1]}_{index:05d}.png"
    _write(root / ALT_TEXT_DIR / "images" / name, png_bytes(scene.image))
    image = _image_record(name, index, job.image_size, scene.objects)
    return {"image": image, "captions": write_alt_texts(colour, shape, rng, job.captions_per_image)}


def _image_record(name: str, index: int, image_size: int, objects: Sequence[SceneObject]) -> dict[str, Any]:
    """The COCO image entry of a captioned image, with its objects' ground truth."""
    return {"file_name": name, "id": index, "width": image_size, "height": image_size,
            "objects": [{"shape": o.shape, "colour": o.colour, "size": o.size, "bbox": list(o.bbox)}
                        for o in objects]}


def _write(path: Path, data: bytes) -> None:
    # Plain writes: the whole world is staged in a hidden folder and renamed into place at the end.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _combo_of(class_id: int) -> tuple[str, str]:
    colour, shape = CLASS_NAMES[class_id].split(" ")
    return colour, shape


def _plan_jobs(config: ShapesConfig, heldout: Sequence[tuple[str, str]], root: Path) -> list[_Job]:
    unseen = {CLASS_NAMES.index(f"{c} {s}") for c, s in heldout}
    seen_ids = [i for i in range(len(CLASS_NAMES)) if i not in unseen]
    common = {"root": str(root), "seed": config.seed, "image_size": config.image_size,
              "captions_per_image": config.captions_per_image, "contrast_group": config.contrast_group}
    jobs = []
    all_ids = range(len(CLASS_NAMES))
    for stream, n, class_ids in (("train", config.n_train, seen_ids), ("val", config.n_val, all_ids),
                                 (f"{ALT_TEXT_DIR}/train", config.n_alt_text, seen_ids),
                                 (f"{ALT_TEXT_DIR}/val", config.n_alt_text_val, seen_ids)):
        combos = tuple(_combo_of(i) for i in class_ids)
        jobs += [_Job(stream=stream, combos=combos, start=s, stop=min(s + CHUNK, n), **common)
                 for s in range(0, n, CHUNK)]
    for split, per_class, class_ids in (("train", config.per_class_train, seen_ids),
                                        ("val", config.per_class_val, all_ids)):
        items = [(class_id, n) for class_id in class_ids for n in range(per_class)]
        stream = f"classification/{split}"
        jobs += [_Job(stream=stream, combos=(), items=tuple(items[s : s + CHUNK]), **common)
                 for s in range(0, len(items), CHUNK)]
    return jobs


def _run_jobs(jobs: list[_Job], workers: int) -> Iterator[tuple[list[dict[str, Any]], str]]:
    """Results in job order, from `workers` processes (or this one)."""
    if workers == 1 or len(jobs) <= 1:
        yield from track(map(_run_job, jobs), "shapes world", total=len(jobs))
        return
    with multiprocessing.get_context().Pool(min(workers, len(jobs))) as pool:
        yield from track(pool.imap(_run_job, jobs), "shapes world", total=len(jobs))


# -------------------------------------------------------------------------------------------- the folder


def generate_world(config: ShapesConfig, out_dir: str | os.PathLike[str]) -> WorldSummary:
    """Generate a shapes world into `out_dir`, replacing a shapes world already there.

    Args:
        config: what to generate (validated here; VlkitError names the option at fault).
        out_dir: the world folder; it must be absent, empty, or an earlier shapes world. The world is built in
            a hidden sibling folder and renamed into place, so a failed run leaves the old world whole.
    """
    config.validate()
    out_dir = Path(out_dir)
    _check_replaceable(out_dir)
    started = time.perf_counter()
    heldout = choose_heldout(config.seed, config.n_heldout)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide a data set meant to be shared
    try:
        jobs = _plan_jobs(config, heldout, staging)
        captioned: dict[str, list[dict[str, Any]]] = {
            split: [] for split in ("train", "val", f"{ALT_TEXT_DIR}/train", f"{ALT_TEXT_DIR}/val")}
        content = hashlib.sha256()
        for job, (records, pixels) in zip(jobs, _run_jobs(jobs, config.workers), strict=True):
            captioned.get(job.stream, []).extend(records)
            content.update(pixels.encode())
        written = {split: _write_split(staging / f"{split}.json", records)
                   for split, records in captioned.items()}
        n_captions = written["train"] + written["val"]
        id2label = {str(i): name for i, name in enumerate(CLASS_NAMES)}
        for split in ("train", "val"):
            write_json_atomic(staging / "classification" / split / "id2label.json", id2label)
        meta = {**_meta(config, heldout), "pixels_sha256": content.hexdigest()}
        write_json_atomic(staging / "meta.json", meta)
        _replace_folder(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    seconds = time.perf_counter() - started
    logger.info("shapes world written to %s in %.1f s", out_dir, seconds)
    n_seen = len(CLASS_NAMES) - len(heldout)
    return WorldSummary(out_dir=out_dir, n_train=config.n_train, n_val=config.n_val, n_captions=n_captions,
                        n_classification_train=n_seen * config.per_class_train,
                        n_classification_val=len(CLASS_NAMES) * config.per_class_val,
                        n_alt_text=config.n_alt_text, n_alt_text_val=config.n_alt_text_val,
                        classes=list(CLASS_NAMES), heldout=heldout, seconds=seconds)


def _check_replaceable(out_dir: Path) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise VlkitError(f"{out_dir}: exists and is not a folder; choose another --out")
    if not any(out_dir.iterdir()):
        return
    try:
        is_world = "generator_version" in read_json(out_dir / "meta.json")
    except (VlkitError, TypeError):
        is_world = False
    if not is_world:
        raise VlkitError(f"{out_dir}: folder is not empty and holds no shapes world (no meta.json with a "
                         "generator_version); refusing to overwrite it")


def _write_split(path: Path, records: list[dict[str, Any]]) -> int:
    """Write one COCO-caption JSON; returns the number of captions."""
    annotations = [{"image_id": record["image"]["id"], "caption": caption}
                   for record in records for caption in record["captions"]]
    for number, annotation in enumerate(annotations):
        annotation["id"] = number
    write_json_atomic(path, {"images": [record["image"] for record in records], "annotations": annotations},
                      indent=None)
    return len(annotations)


def _meta(config: ShapesConfig, heldout: Sequence[tuple[str, str]]) -> dict[str, Any]:
    settings = {name: value for name, value in asdict(config).items() if name != "workers"}
    return {
        "generator_version": GENERATOR_VERSION,
        **settings,
        "colours": {name: list(rgb) for name, rgb in COLOURS.items()},
        "shapes": list(SHAPES),
        "sizes": list(SIZES),
        "positions": list(POSITIONS),
        "classes": list(CLASS_NAMES),
        "heldout": [list(pair) for pair in heldout],
        "unseen_class_ids": [CLASS_NAMES.index(f"{c} {s}") for c, s in heldout],
    }


def _replace_folder(new: Path, target: Path) -> None:
    """Put `new` at `target`; an old `target` is moved aside first and deleted only after the swap."""
    if not target.exists():
        os.replace(new, target)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, trash / "world")
    os.replace(new, target)
    shutil.rmtree(trash, ignore_errors=True)
