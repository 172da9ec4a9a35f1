"""The demo's CLIP beyond zero-shot classification: image-text retrieval on the validation scenes and their
captions (`vlkit retrieval`), and the linear probe trained on the classification images of the seen classes
and tested on the validation ones (`vlkit probe`), both for the demo's CLIP, written to `clip_eval/`.

The shapes world's classification training split has no image of its 8 held-out classes (they stay unseen,
as in the zero-shot split), so the probe never predicts them: its top-1 over all 48 classes is capped at
40/48, and `seen_top1` (the test images of the classes it was trained on) is the figure that compares with
zero-shot's seen-class top-1.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from vlkit.data.classification import load_classification_dataset
from vlkit.pipelines.demo import DEMO_PRECISION, Stages
from vlkit.probe.config import ProbeConfig
from vlkit.runtime.files import read_json


def clip_evaluation(
    clip_name: str, world: Path, folder: Path, stages: Stages, inputs: dict
) -> dict[str, Any]:
    """Run (or reuse) retrieval and the probe of `clip_name` on `world`; return the summary's figures."""
    files = {"retrieval": folder / "retrieval.json", "probe": folder / "probe.json"}
    key = {
        **inputs,
        "clip_eval": "retrieval on val + probe train -> val",
        **dataclasses.asdict(ProbeConfig()),
    }
    if stages.done(folder, key) and all(path.is_file() for path in files.values()):
        documents = {name: read_json(path) for name, path in files.items()}
    else:
        documents = _run(clip_name, world, files)
        stages.mark(folder, key)
    return clip_eval_summary(documents["retrieval"], documents["probe"], world)


def _run(clip_name: str, world: Path, files: dict[str, Path]) -> dict[str, dict]:
    from vlkit.models.clip import ClipSpec, load_clip
    from vlkit.pipelines.probe import run_probe
    from vlkit.pipelines.retrieval import RetrievalSource, run_retrieval

    spec = ClipSpec(clip_name, precision=DEMO_PRECISION)
    clip = load_clip(spec)
    source = RetrievalSource(world / "val.json", world / "images")
    retrieval = run_retrieval(spec, source, files["retrieval"], clip=clip)
    classification = world / "classification"
    probe = run_probe(spec, classification / "train", classification / "val", files["probe"], clip=clip)
    return {"retrieval": retrieval, "probe": probe}


def clip_eval_summary(retrieval: dict, probe: dict, world: Path) -> dict[str, Any]:
    """summary.json's `clip_eval`: both retrieval directions' figures; the probe's top-1 (all classes and
    the classes it trained on) beside zero-shot's on the same test images."""
    test = load_classification_dataset(world / "classification" / "val")
    counts = dict(zip(test.class_names, test.class_counts(), strict=True))
    untrained = set(probe["untrained_classes"])
    seen = [(acc, counts[name]) for name, acc in probe["per_class"].items() if name not in untrained]
    seen_total = sum(count for _, count in seen)
    return {
        "retrieval": {
            "image_to_text": retrieval["image_to_text"],
            "text_to_image": retrieval["text_to_image"],
            "n_images": retrieval["n_images"],
            "n_texts": retrieval["n_texts"],
        },
        "probe": {
            "top1": probe["top1"],
            "top5": probe["top5"],
            "seen_top1": sum(acc * count for acc, count in seen) / seen_total if seen_total else None,
            "untrained_classes": len(untrained),
            "c": probe["c"],
            "n_train": probe["n_train"],
            "n_val": probe["n_val"],
            "n_test": probe["n_test"],
            "zeroshot_top1": probe["zeroshot"]["top1"],
        },
    }
