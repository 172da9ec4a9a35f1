"""`vlkit probe`'s library half: a logistic-regression probe on a CLIP's frozen image embeddings
(`vlkit.probe`), beside the zero-shot figure of the same model on the same test embeddings
(`vlkit.zeroshot.classifier`), from one image pass per split; writes P.json.

One model and one (train, test) pair per call; `summary_row` gives the figures a models x datasets table
needs. Only the training pool is encoded (with `--few-shot K`, K images per class), and the test split is
encoded after the probe is fit, scored once by the probe and once zero-shot.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vlkit.data.classification import ClassificationDataset, check_same_classes, load_classification_dataset
from vlkit.errors import VlkitError
from vlkit.models.clip import Clip, ClipSpec, load_clip
from vlkit.pipelines.table import ResultTable, run_grid
from vlkit.probe.config import ProbeConfig
from vlkit.probe.protocol import ProbeScores, ProbeSplit, TrainedProbe, draw_split, score_probe, train_probe
from vlkit.runtime.distributed import is_main_process
from vlkit.runtime.files import write_json_atomic
from vlkit.zeroshot.classifier import (
    ImageEmbeddings,
    PromptAnalysis,
    analyse_embeddings,
    encode_image_files,
    resolve_templates,
)

log = logging.getLogger(__name__)


def run_probe(
    spec: ClipSpec,
    train: Path,
    test: Path,
    out: Path,
    config: ProbeConfig | None = None,
    templates: str = "seed",
    class_names: str | None = None,
    batch_size: int = 64,
    on_bad_image: str = "error",
    clip: Clip | None = None,
) -> dict[str, Any]:
    """Fit the probe on `train` (C chosen on part of it), score it and zero-shot on `test`, write `out`.

    Args:
        spec: the CLIP to load (unless `clip` is given, already loaded).
        train, test: classification folders (`vlkit.data.classification`) naming the same classes.
        out: P.json to write (atomically; under `accelerate launch` the main process writes it).
        config: the protocol's settings (default `ProbeConfig()`: C chosen on 20% of each class).
        templates: the zero-shot template set or file, as `vlkit zeroshot --templates` takes it.
        class_names: a class names file overriding both folders' names.
        batch_size, on_bad_image: as for `vlkit zeroshot`.

    Returns:
        The P.json document (`summary_row` picks the figures for a table).
    """
    config = config or ProbeConfig()
    template_list = resolve_templates(templates)
    train_set, test_set = _load_splits(train, test, class_names)
    # drawn from the labels alone, before the model loads: a --few-shot too large fails at once
    split = draw_split(train_set.labels, train_set.class_names, config)
    clip = clip or load_clip(spec)
    trained, pool = _fit(clip, train_set, split, config, batch_size, on_bad_image)
    test_images = encode_image_files(clip, test_set.paths, batch_size, on_bad_image)
    if not test_images.kept:
        raise VlkitError(f"{test}: no test image could be read (every image was skipped)")
    test_labels = [test_set.labels[i] for i in test_images.kept]
    scores = score_probe(trained.probe, test_images.features, test_labels, test_set.class_names)
    zeroshot = analyse_embeddings(clip, test_images, test_set.labels, test_set.class_names, template_list)
    result = probe_to_json(spec.name, clip, train_set, test_set, split, pool, trained, scores, config)
    result["zeroshot"] = _zeroshot_json(zeroshot, template_list)
    result["skipped"] = [{"file": p, "reason": r} for p, r in pool.skipped + test_images.skipped]
    if is_main_process():
        write_json_atomic(out, result)
    return result


def _load_splits(
    train: Path, test: Path, class_names: str | None
) -> tuple[ClassificationDataset, ClassificationDataset]:
    if Path(train).resolve() == Path(test).resolve():
        raise VlkitError(f"--train and --test are the same folder ({train}): the test figure must be unseen")
    train_set = load_classification_dataset(train, class_names)
    test_set = load_classification_dataset(test, class_names)
    check_same_classes(train_set, test_set)
    return train_set, test_set


def _fit(
    clip: Clip,
    train_set: ClassificationDataset,
    split: ProbeSplit,
    config: ProbeConfig,
    batch_size: int,
    on_bad_image: str,
) -> tuple[TrainedProbe, ImageEmbeddings]:
    """Encode the pool once and train the probe on it; an unreadable pool image (with --on-bad-image skip)
    is left out, not replaced."""
    pool = encode_image_files(clip, [train_set.paths[i] for i in split.pool], batch_size, on_bad_image)
    if not pool.kept:
        raise VlkitError(f"{train_set.root}: no training image could be read (every image was skipped)")
    rows = [split.pool[i] for i in pool.kept]
    held = set(split.val)
    if split.untrained_classes:
        names = ", ".join(repr(train_set.class_names[i]) for i in split.untrained_classes)
        log.warning("%s: no training image of %s: the probe never predicts them", train_set.root, names)
    labels = [train_set.labels[i] for i in rows]
    val = [i in held for i in rows]
    trained = train_probe(pool.features, labels, val, len(train_set.class_names), config, clip.device)
    if not trained.probe.converged:
        log.warning("the probe's fit stopped at --max-iter %d before reaching --tol", config.max_iter)
    return trained, pool


def probe_to_json(
    model: str,
    clip: Clip,
    train_set: ClassificationDataset,
    test_set: ClassificationDataset,
    split: ProbeSplit,
    pool: ImageEmbeddings,
    trained: TrainedProbe,
    scores: ProbeScores,
    config: ProbeConfig,
) -> dict[str, Any]:
    """The P.json document less its zero-shot part: the probe's test scores, its C and how it was chosen."""
    held = set(split.val)
    return {
        "model": model,
        "train": str(train_set.root),
        "test": str(test_set.root),
        "precision": clip.precision,
        "top1": scores.top1,
        "top5": scores.top5,
        "per_class": scores.per_class,
        "c": trained.probe.c,
        "c_chosen_by": trained.c_chosen_by,
        "c_search": [vars(trial) for trial in trained.trials],
        "n_train": len(pool.kept),
        "n_val": sum(split.pool[i] in held for i in pool.kept),
        "n_test": len(scores.predictions),
        "n_classes": len(test_set.class_names),
        "untrained_classes": [train_set.class_names[i] for i in split.untrained_classes],
        "few_shot": config.few_shot,
        "seed": config.seed,
        "val_fraction": None if config.c is not None else config.val_fraction,
        "fit": {
            "iterations": trained.probe.iterations,
            "converged": trained.probe.converged,
            "max_iter": config.max_iter,
            "tol": config.tol,
        },
    }


def _zeroshot_json(analysis: PromptAnalysis, templates: list[str]) -> dict[str, Any]:
    return {
        "top1": analysis.ensemble.top1,
        "top5": analysis.ensemble.top5,
        "templates": templates,
        "per_class": analysis.per_class_accuracy(-1),
    }


PROBE_COLUMNS = [
    "probe_top1",
    "probe_top5",
    "zeroshot_top1",
    "zeroshot_top5",
    "c",
    "n_train",
    "n_test",
    "few_shot",
]


def run_probe_grid(
    specs: list[ClipSpec],
    splits: list[tuple[Path, Path]],
    out: Path,
    config: ProbeConfig | None = None,
    templates: str = "seed",
    class_names: str | None = None,
    batch_size: int = 64,
    on_bad_image: str = "error",
) -> ResultTable:
    """`run_probe` for every model and (train, test) pair, each model loaded once; one table of the probe
    beside zero-shot (`vlkit.pipelines.table`). A pair is named `TRAIN -> TEST` in the table."""
    by_name = {spec.name: spec for spec in specs}
    by_label = {f"{train} -> {test}": (train, test) for train, test in splits}

    def run_pair(clip: Clip, model: str, label: str, pair_out: Path) -> dict[str, Any]:
        train, test = by_label[label]
        return run_probe(
            by_name[model],
            train,
            test,
            pair_out,
            config,
            templates,
            class_names,
            batch_size,
            on_bad_image,
            clip,
        )

    def check(label: str) -> None:
        train_set, _ = _load_splits(*by_label[label], class_names)
        draw_split(train_set.labels, train_set.class_names, config or ProbeConfig())  # a K too large

    def summarize(result: dict[str, Any]) -> dict[str, Any]:
        return {column: summary_row(result)[column] for column in PROBE_COLUMNS}

    table = ResultTable("probe", PROBE_COLUMNS, "probe_top1")
    load = lambda model: load_clip(by_name[model])  # noqa: E731
    return run_grid(list(by_name), list(by_label), out, table, load, run_pair, summarize, check)


def probe_splits(train: list[Path], test: list[Path]) -> list[tuple[Path, Path]]:
    """The (train, test) pairs of a command line: each `--train` with the `--test` in the same position."""
    if len(train) != len(test):
        raise VlkitError(
            f"--test: give one per --train, in the same order ({len(train)} --train, {len(test)} --test)"
        )
    return list(zip(train, test, strict=True))


def summary_row(result: dict[str, Any]) -> dict[str, Any]:
    """One row of a models x datasets table from a P.json document: the probe beside zero-shot."""
    return {
        "model": result["model"],
        "test": result["test"],
        "few_shot": result["few_shot"],
        "probe_top1": result["top1"],
        "probe_top5": result["top5"],
        "zeroshot_top1": result["zeroshot"]["top1"],
        "zeroshot_top5": result["zeroshot"]["top5"],
        "c": result["c"],
        "n_train": result["n_train"],
        "n_test": result["n_test"],
    }
