"""`vlkit retrieval`'s library half: one model on one caption set (a COCO-layout file and its image folder,
or caption shards), ranked by `vlkit.zeroshot.retrieval`, written as R.json.

`run_retrieval` returns the whole document; `retrieval_summary` keeps the figures a models x datasets table
needs (`RETRIEVAL_COLUMNS`, no per-item lists).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlkit.data.captions import load_caption_dataset
from vlkit.data.shards import expand_shards
from vlkit.errors import VlkitError
from vlkit.metrics.retrieval import RECALL_KS, RankSummary
from vlkit.models.clip import Clip, ClipSpec, load_clip
from vlkit.pipelines.table import ResultTable, run_grid
from vlkit.runtime.distributed import is_main_process
from vlkit.runtime.files import write_json_atomic
from vlkit.zeroshot.retrieval import RetrievalResult, retrieve_files, retrieve_shards

DIRECTIONS = ("image_to_text", "text_to_image")
DIRECTION_FIGURES = (*(f"R@{k}" for k in RECALL_KS), "median_rank", "mean_rank")
RETRIEVAL_COLUMNS = [f"{d}_{f}" for d in DIRECTIONS for f in DIRECTION_FIGURES] + ["n_images", "n_texts"]
TOP_TEXTS = 5  # retrieved captions listed per image in R.json


@dataclass
class RetrievalSource:
    """Where the images and captions come from: an annotation file and the folder its file names are
    relative to (`--annotations`, `--images`), or caption shards (`--shards`)."""

    annotations: Path | None = None
    images: Path | None = None
    shards: str | None = None

    def check(self) -> None:
        folder = self.annotations is not None or self.images is not None
        if folder and self.shards is not None:
            raise VlkitError("--shards: give either --shards or --annotations with --images, not both")
        if not folder and self.shards is None:
            raise VlkitError(
                "give --annotations with --images (a caption file and its image folder), or --shards"
            )
        if folder and self.images is None:
            raise VlkitError(
                "--images: needed with --annotations (the folder its file names are relative to)"
            )
        if folder and self.annotations is None:
            raise VlkitError("--annotations: needed with --images (the caption file of the images)")

    @property
    def name(self) -> str:
        """How R.json names the data: the annotation file or the shard pattern."""
        return str(self.annotations) if self.shards is None else self.shards


def run_retrieval(
    spec: ClipSpec,
    source: RetrievalSource,
    out: Path,
    batch_size: int = 64,
    on_bad_image: str = "error",
    clip: Clip | None = None,
) -> dict[str, Any]:
    """Rank, write R.json (atomically, by the main process only), return its document."""
    source.check()
    if batch_size < 1:
        raise VlkitError(f"--batch-size: must be at least 1, got {batch_size}")
    if source.shards is not None:
        urls = expand_shards(source.shards)
        clip = clip or load_clip(spec)
        result = retrieve_shards(clip, urls, batch_size, on_bad_image, TOP_TEXTS)
    else:
        dataset = load_caption_dataset(source.annotations, source.images, require_captions=False)
        clip = clip or load_clip(spec)
        result = retrieve_files(clip, dataset, batch_size, on_bad_image, TOP_TEXTS)
    document = retrieval_to_json(result, spec.name, source.name, clip)
    if is_main_process():  # under `accelerate launch` every process has the result; one writes it
        write_json_atomic(out, document)
    return document


def retrieval_sources(
    annotations: list[Path], images: list[Path], shards: list[str]
) -> list[RetrievalSource]:
    """The caption sets of a command line: each `--annotations` with the `--images` given in the same
    position, then each `--shards` pattern."""
    if len(annotations) != len(images):
        if not annotations or not images:  # one given without the other: the single set's own line
            RetrievalSource(annotations[0] if annotations else None, images[0] if images else None).check()
        raise VlkitError(
            f"--images: give one per --annotations, in the same order ({len(annotations)} --annotations, "
            f"{len(images)} --images)"
        )
    pairs = [RetrievalSource(a, i) for a, i in zip(annotations, images, strict=True)]
    sources = pairs + [RetrievalSource(shards=pattern) for pattern in shards]
    if not sources:
        RetrievalSource().check()  # the one line that says what to give
    return sources


def run_retrieval_grid(
    specs: list[ClipSpec],
    sources: list[RetrievalSource],
    out: Path,
    batch_size: int = 64,
    on_bad_image: str = "error",
) -> ResultTable:
    """`run_retrieval` for every model and caption set, each model loaded once; one table of the figures
    (`vlkit.pipelines.table`), image-to-text R@1 as the headline."""
    by_name = {spec.name: spec for spec in specs}
    by_label = {source.name: source for source in sources}

    def run_pair(clip: Clip, model: str, label: str, pair_out: Path) -> dict[str, Any]:
        return run_retrieval(by_name[model], by_label[label], pair_out, batch_size, on_bad_image, clip)

    def check(label: str) -> None:
        source = by_label[label]
        source.check()
        if source.shards is not None:
            expand_shards(source.shards)  # names a missing shard
        else:
            load_caption_dataset(source.annotations, source.images, require_captions=False)

    table = ResultTable("retrieval", RETRIEVAL_COLUMNS, "image_to_text_R@1")
    load = lambda model: load_clip(by_name[model])  # noqa: E731
    return run_grid(list(by_name), list(by_label), out, table, load, run_pair, retrieval_summary, check)


def retrieval_summary(document: dict[str, Any]) -> dict[str, float | None]:
    """The figures of one R.json for a table of models x datasets, flat and named as open_clip names its
    retrieval metrics (`image_to_text_R@1`, ..., `text_to_image_mean_rank`), plus the set's sizes; the keys
    are `RETRIEVAL_COLUMNS`."""
    figures = {
        f"{direction}_{name}": value
        for direction in DIRECTIONS
        for name, value in document[direction].items()
    }
    return {**figures, "n_images": document["n_images"], "n_texts": document["n_texts"]}


def _direction(summary: RankSummary) -> dict[str, float]:
    return {
        **{f"R@{k}": value for k, value in summary.recall.items()},
        "median_rank": summary.median_rank,
        "mean_rank": summary.mean_rank,
    }


def retrieval_to_json(result: RetrievalResult, model: str, data: str, clip: Clip) -> dict[str, Any]:
    """The R.json document: both directions' figures, then every image's and every caption's rank."""
    ranked, ranks = result.retrieval_set, result.ranks
    return {
        "model": model,
        "data": data,
        "precision": clip.precision,
        "scoring": clip.scoring,
        "image_to_text": _direction(ranks.image_to_text),
        "text_to_image": _direction(ranks.text_to_image),
        "n_images": len(ranked.image_ids),
        "n_texts": len(ranked.texts),
        "per_image": [
            {"image_id": image_id, "file_name": file_name, "rank": int(rank), "top_texts": top.tolist()}
            for image_id, file_name, rank, top in zip(
                ranked.image_ids, ranked.file_names, ranks.image_ranks, ranks.top_texts, strict=True
            )
        ],
        "per_text": [
            {"text": text, "image_id": ranked.image_ids[image], "rank": int(rank)}
            for text, image, rank in zip(ranked.texts, ranked.text_image_index, ranks.text_ranks, strict=True)
        ],
        "skipped": [{"file": path, "reason": reason} for path, reason in result.skipped],
    }
