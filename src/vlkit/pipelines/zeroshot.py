"""`vlkit zeroshot`'s library half: load a classification folder or shards and a CLIP, analyse every
template from one image pass (`vlkit.zeroshot.classifier`), write RESULTS.json and its two charts.

RESULTS.json names the precision the model ran in (what `--precision auto` became) and its scoring, and
gives each image its top classes with the model's own probabilities (softmax over the classes for CLIP,
one sigmoid per class for SigLIP)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from vlkit.data.classification import ID2LABEL_FILE, load_classification_dataset, read_class_names
from vlkit.data.shards import UNSEEN_FILE, expand_shards
from vlkit.errors import VlkitError
from vlkit.models.clip import Clip, ClipSpec, load_clip
from vlkit.pipelines.table import ResultTable, run_grid
from vlkit.runtime.distributed import is_main_process
from vlkit.runtime.files import write_bytes_atomic, write_json_atomic
from vlkit.shapes.meta import unseen_classes_of_world
from vlkit.viz.plots import confusion_matrix_chart, template_bar_chart
from vlkit.zeroshot.classifier import (
    PromptAnalysis,
    analyse_embeddings,
    analyse_prompts,
    check_labels,
    encode_shard_images,
    resolve_templates,
    validate_templates,
)


def run_zeroshot(
    spec: ClipSpec,
    data: Path | str,
    templates: str,
    out: Path,
    class_names: str | None = None,
    batch_size: int = 64,
    on_bad_image: str = "error",
    clip: Clip | None = None,
) -> dict:
    """Load, analyse, write RESULTS.json and its two charts; return the results document. `data` is a
    classification folder (a Path) or a shard pattern (a str)."""
    template_list = resolve_templates(templates)
    if isinstance(data, str):
        names, unseen = _shard_classes(data, class_names)
        clip = clip or load_clip(spec)
        validate_templates(template_list)
        encoded = encode_shard_images(clip, expand_shards(data), batch_size, on_bad_image)
        check_labels(encoded.labels, names)
        analysis = analyse_embeddings(clip, encoded.embeddings, encoded.labels, names, template_list, unseen)
        result = analysis_to_json(analysis, encoded.names, spec.name, data, clip)
    else:
        dataset = load_classification_dataset(data, class_names)
        names = dataset.class_names
        unseen = unseen_classes_of_world(data, names)
        clip = clip or load_clip(spec)
        analysis = analyse_prompts(
            clip, dataset.paths, dataset.labels, names, template_list, unseen, batch_size, on_bad_image
        )
        result = analysis_to_json(analysis, dataset.paths, spec.name, str(data), clip)
    if not is_main_process():  # under `accelerate launch` every process has the result; one writes it
        return result
    write_json_atomic(out, result)
    stem = out.with_suffix("")
    top1 = [t.top1 for t in analysis.templates]
    write_bytes_atomic(
        f"{stem}_templates.png", template_bar_chart(template_list, top1, analysis.ensemble.top1)
    )
    write_bytes_atomic(
        f"{stem}_confusion.png",
        confusion_matrix_chart(result["confusion"]["matrix"], names, "ensemble confusion"),
    )
    return result


ZEROSHOT_COLUMNS = ["top1", "top5", "best_template_top1", "seen_top1", "unseen_top1", "n_images"]


def run_zeroshot_grid(
    specs: Sequence[ClipSpec],
    datasets: Sequence[Path | str],
    templates: str,
    out: Path,
    class_names: str | None = None,
    batch_size: int = 64,
    on_bad_image: str = "error",
) -> ResultTable:
    """`run_zeroshot` for every model and dataset (folders as Paths, shard patterns as strs), each model
    loaded once; one table of the ensemble's figures (`vlkit.pipelines.table`)."""
    by_name = {spec.name: spec for spec in specs}
    by_label = {str(data): data for data in datasets}

    def run_pair(clip: Clip, model: str, label: str, pair_out: Path) -> dict:
        return run_zeroshot(
            by_name[model], by_label[label], templates, pair_out, class_names, batch_size, on_bad_image, clip
        )

    def check(label: str) -> None:
        data = by_label[label]
        if isinstance(data, str):
            _shard_classes(data, class_names)  # names a missing shard or its class names
        else:
            load_classification_dataset(data, class_names)

    table = ResultTable("zeroshot", ZEROSHOT_COLUMNS, "top1")
    return run_grid(
        [spec.name for spec in specs],
        list(by_label),
        out,
        table,
        lambda model: load_clip(by_name[model]),
        run_pair,
        zeroshot_summary,
        check,
    )


def zeroshot_summary(result: dict) -> dict[str, float | None]:
    """The table's figures of one RESULTS.json: the ensemble's accuracies and the best single template's."""
    best = max(result["templates"], key=lambda t: t["top1"])
    ensemble = result["ensemble"]
    return {
        "top1": ensemble["top1"],
        "top5": ensemble["top5"],
        "best_template_top1": best["top1"],
        "seen_top1": ensemble["seen_top1"],
        "unseen_top1": ensemble["unseen_top1"],
        "n_images": result["n_images"],
    }


def _shard_classes(pattern: str, class_names: str | None) -> tuple[list[str], list[int]]:
    """Class names of classification shards (--class-names, else the id2label.json beside a local first
    shard) and the ids of the held-out classes (unseen_classes.json beside it, when there)."""
    first = Path(expand_shards(pattern)[0])
    local = "://" not in pattern and not pattern.startswith("pipe:")
    if class_names is not None:
        names = read_class_names(class_names)
    elif local and (first.parent / ID2LABEL_FILE).is_file():
        names = read_class_names(first.parent / ID2LABEL_FILE)
    else:
        raise VlkitError(f"--shards {pattern}: no {ID2LABEL_FILE} beside the shards; pass --class-names")
    unseen_file = first.parent / UNSEEN_FILE
    unseen_names = set(json.loads(unseen_file.read_text())) if local and unseen_file.is_file() else set()
    return names, [i for i, name in enumerate(names) if name in unseen_names]


SCORING_TEXT = {
    "softmax": "softmax over the classes of logit_scale * cos (CLIP)",
    "sigmoid": "sigmoid of logit_scale * cos + logit_bias, each class on its own (SigLIP)",
}


def analysis_to_json(
    analysis: PromptAnalysis, paths: Sequence[Path | str], model: str, data: str, clip: Clip, top_k: int = 5
) -> dict:
    """The RESULTS.json document: the model's precision and scoring, per template, ensemble, per class,
    confusion, per image predictions (with the ensemble's `top_k` classes and their probabilities)."""
    best = analysis.best_template_index
    top_classes = analysis.top_classes(top_k)
    per_class_ensemble = analysis.per_class_accuracy(-1)
    per_class_best = analysis.per_class_accuracy(best)
    counts = {name: analysis.labels.count(i) for i, name in enumerate(analysis.class_names)}
    unseen = set(analysis.unseen_class_ids)
    return {
        "model": model,
        "data": data,
        "precision": clip.precision,
        "scoring": clip.scoring,
        "probabilities": SCORING_TEXT[clip.scoring],
        "logit_scale": clip.logit_scale,
        "logit_bias": clip.logit_bias,
        "n_images": len(analysis.labels),
        "n_classes": len(analysis.class_names),
        "class_names": analysis.class_names,
        "unseen_classes": [analysis.class_names[i] for i in sorted(unseen)],
        "templates": [vars(score) for score in analysis.templates],
        "ensemble": {k: v for k, v in vars(analysis.ensemble).items() if k != "template"},
        "best_template": analysis.templates[best].template,
        "per_class": {
            name: {
                "n": counts[name],
                "ensemble_top1": per_class_ensemble[name],
                "best_template_top1": per_class_best[name],
                "unseen": i in unseen,
            }
            for i, name in enumerate(analysis.class_names)
        },
        "confusion": {"rows": "true class", "columns": "predicted class", "matrix": analysis.confusion(-1)},
        "predictions": [
            {
                "file": str(paths[index]),
                "label": analysis.class_names[label],
                "ensemble": analysis.class_names[int(analysis.predictions[-1, row])],
                "best_template": analysis.class_names[int(analysis.predictions[best, row])],
                "probability": top_classes[row][0][1],  # the ensemble's probability of its prediction
                "top_classes": [{"class": name, "probability": p} for name, p in top_classes[row]],
            }
            for row, (index, label) in enumerate(zip(analysis.image_indices, analysis.labels, strict=True))
        ],
        "skipped": [{"file": path, "reason": reason} for path, reason in analysis.skipped],
    }
