"""`vlkit caption sweep`: every tuning method trained with the same data, steps and batch, then one table.

For each method: train (`vlkit.train.caption_trainer`), caption the validation images with its best
checkpoint (greedily unless `SweepConfig.decoding` says otherwise), score CIDEr-D, CLIPScore and CHAIR-i
(`vlkit.pipelines.evaluate`); beside them the retrieval baseline (`vlkit.captioning.retrieval`). The table
is written as SWEEP.json, SWEEP.md and SWEEP.png.

Each method trains in a child process of its own (`vlkit.pipelines.method_runs`), so that the peak memory
reported is that method's alone, one or several at a time; a method whose folder already holds a finished run
of the same configuration is not trained again, so a sweep stopped half way continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlkit.captioning.config import DecodingConfig
from vlkit.data.captions import CaptionDataset, load_caption_dataset
from vlkit.errors import VlkitError
from vlkit.models.hub import resolve_model_name
from vlkit.models.tuning import TUNING_METHODS, tuning_method
from vlkit.pipelines.method_runs import train_methods
from vlkit.runtime.files import read_json, write_bytes_atomic, write_json_atomic, write_text_atomic
from vlkit.runtime.options import config_from_dict
from vlkit.train.caption_trainer import BEST_DIR
from vlkit.train.config import CaptionTrainConfig

log = logging.getLogger(__name__)

SWEEP_METRICS = ("cider", "clip_score", "chair")


@dataclass
class SweepConfig:
    """What to sweep and with which budget: every method trains with `train` (the same data, steps, batch,
    rate and connector), its captioner's tuning method replaced by each of `methods` in turn."""

    train: CaptionTrainConfig
    methods: list[str] = field(default_factory=lambda: list(TUNING_METHODS))
    clip_model: str | None = None  # CLIPScore's model and the retrieval baseline's (None: neither)
    processes: int = 1  # methods trained at once, each in its own process with its share of the cores
    validate: bool = True  # CIDEr-D on the validation images every epoch, the best checkpoint scored
    decoding: DecodingConfig = field(default_factory=DecodingConfig)  # how the scored captions are made

    def caption_tokens(self) -> int:
        """Caption tokens every method keeps: the captioner's `max_caption_tokens`, lowered where a method's
        reserved positions (prefix tuning's virtual tokens) would not fit the decoder's position table, so
        that all methods train and are scored on the same captions."""
        from transformers import AutoConfig

        wanted, decoder_name = self.train.captioner.max_caption_tokens, self.train.captioner.decoder
        decoder = AutoConfig.from_pretrained(resolve_model_name(decoder_name))
        available = getattr(decoder, "n_positions", None) or getattr(decoder, "max_position_embeddings", None)
        if available is None:
            return wanted
        reserved = max(
            tuning_method(m).reserved_positions(tuning_method(m).default_config()) for m in self.methods
        )
        tokens = min(wanted, int(available) - reserved)
        if tokens < 1:
            raise VlkitError(f"--decoder {decoder_name}: {available} positions leave no room for a caption")
        if tokens < wanted:
            log.warning(
                "sweep: captions cut to %d tokens for every method (the decoder has %s positions, %d of them "
                "reserved by prefix tuning)",
                tokens,
                available,
                reserved,
            )
        return tokens

    def train_config(
        self, method: str, cache_dir: Path, caption_tokens: int | None = None
    ) -> CaptionTrainConfig:
        """`method`'s training: its default settings, one checkpoint at the end, the shared feature cache."""
        captioner = dataclasses.replace(
            self.train.captioner,
            tuning=method,
            tuning_config=dataclasses.asdict(tuning_method(method).default_config()),
            max_caption_tokens=caption_tokens or self.train.captioner.max_caption_tokens,
        )
        loop = dataclasses.replace(self.train.loop, checkpoint_every=self.train.loop.steps)
        return dataclasses.replace(
            self.train, captioner=captioner, loop=loop, feature_cache_dir=str(cache_dir)
        )


def check_methods(methods: list[str]) -> list[str]:
    unknown = [m for m in methods if m not in TUNING_METHODS]
    if unknown or not methods:
        raise VlkitError(
            f"--methods: unknown {', '.join(map(repr, unknown)) or 'empty list'}; "
            f"choose from {', '.join(TUNING_METHODS)}"
        )
    return list(dict.fromkeys(methods))


def _scored_subset(val: CaptionDataset, images: list, path: Path) -> CaptionDataset:
    """The validation annotation file cut to the scored images (every field kept: CHAIR reads the objects),
    so that scoring a subset is not reported as predictions missing for the rest."""
    if len(images) == len(val.images):
        return val
    data = read_json(val.annotations)
    ids = {image.id for image in images}
    subset = {
        **data,
        "images": [entry for entry in data["images"] if entry["id"] in ids],
        "annotations": [entry for entry in data["annotations"] if entry["image_id"] in ids],
    }
    write_json_atomic(path, subset)
    return load_caption_dataset(path, val.image_root)


def score_predictions(
    predictions: Path, val: CaptionDataset, out: Path, clip, metrics: tuple[str, ...] = SWEEP_METRICS
) -> dict[str, float | None]:
    """CIDEr-D, CLIPScore, CHAIR-i of a predictions file (None where a metric cannot run on this data)."""
    from vlkit.pipelines.evaluate import EvaluationRequest, run_evaluation

    asked = tuple(m for m in metrics if clip is not None or m not in ("clip_score", "ref_clip_score"))
    request = EvaluationRequest(
        predictions=predictions,
        annotations=val.annotations,
        images=val.image_root,
        out=out,
        metrics=asked,
        allow_partial=True,
        allow_empty=True,
    )
    found = run_evaluation(request, clip)["metrics"]
    return {name: found.get(name, {}).get("value") for name in ("cider", "clip_score", "chair_i")}


def run_sweep(
    config: SweepConfig, train: CaptionDataset, val: CaptionDataset, out_json: Path, work_dir: Path
) -> dict[str, Any]:
    """Train, caption and score every method and the retrieval baseline; write the JSON, Markdown, PNG."""
    from vlkit.captioning.generate import predict_captions
    from vlkit.captioning.retrieval import retrieval_captions
    from vlkit.models.captioner.model import load_captioner
    from vlkit.models.clip import ClipSpec, load_clip

    methods = check_methods(config.methods)
    val_images = val.images[: config.train.val_limit] if config.train.val_limit else val.images
    val_paths = [image.path for image in val_images]
    clip = load_clip(ClipSpec(config.clip_model, precision="fp32")) if config.clip_model else None
    scored = _scored_subset(val, val_images, work_dir / "val_scored.json")
    tokens = config.caption_tokens()
    runs = [
        (config.train_config(method, work_dir / "feature_cache", tokens), work_dir / method)
        for method in methods
    ]
    records = train_methods(runs, train, val if config.validate else None, config.processes)
    rows = []
    for method, record in zip(methods, records, strict=True):
        run_dir = work_dir / method
        best = run_dir / BEST_DIR if (run_dir / BEST_DIR / "config.json").is_file() else run_dir
        predictions = run_dir / "val_predictions.json"
        write_json_atomic(predictions, predict_captions(load_captioner(best), val_paths, config.decoding))
        scores = score_predictions(predictions, scored, run_dir / "evaluation", clip)
        rows.append(
            {
                "tuning": method,
                "cider": scores["cider"],
                "clip_score": scores["clip_score"],
                "chair_i": scores["chair_i"],
                **{
                    k: record[k]
                    for k in ("trainable_params", "trainable_share", "step_time_s", "peak_rss_mib")
                },
                "peak_gpu_mib": record.get("peak_gpu_mib"),
                "checkpoint": str(best),
            }
        )
    baselines = {}
    if clip is not None:
        retrieval = work_dir / "retrieval" / "val_predictions.json"
        write_json_atomic(retrieval, retrieval_captions(clip, train, val_paths))
        scores = score_predictions(retrieval, scored, retrieval.parent / "evaluation", clip)
        baselines["retrieval"] = {
            "cider": scores["cider"],
            "clip_score": scores["clip_score"],
            "chair_i": scores["chair_i"],
        }
    report = {
        "methods": rows,
        "baselines": baselines,
        "budget": {
            "steps": config.train.loop.steps,
            "batch_size": config.train.batch_size,
            "learning_rate": config.train.loop.learning_rate,
            "seed": config.train.loop.seed,
            "processes": config.processes,
            "checkpoint": "best by validation CIDEr-D" if config.validate else "last",
        },
        "decoding": dataclasses.asdict(config.decoding),
        "encoder": config.train.captioner.encoder,
        "decoder": config.train.captioner.decoder,
        "clip_model": config.clip_model,
        "n_val_images": len(val_paths),
        "train": str(train.annotations),
    }
    write_json_atomic(out_json, report)
    write_text_atomic(out_json.with_suffix(".md"), sweep_markdown(report))
    from vlkit.viz.plots import sweep_chart

    write_bytes_atomic(out_json.with_suffix(".png"), sweep_chart(rows, baselines.get("retrieval")))
    return report


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else format(value, pattern)


def sweep_markdown(report: dict[str, Any]) -> str:
    """The sweep as a Markdown table, methods in the given order, the baselines last."""
    lines = [
        "| tuning | CIDEr-D | CLIPScore | CHAIR-i | trainable params | share | step time (s) "
        "| peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["methods"]:
        lines.append(
            f"| {row['tuning']} | {_fmt(row['cider'], '.3f')} | {_fmt(row['clip_score'], '.3f')} | "
            f"{_fmt(row['chair_i'], '.1%')} | {row['trainable_params']:,} | {row['trainable_share']:.2%} | "
            f"{row['step_time_s']:.4f} | {row['peak_rss_mib']:.0f} |"
        )
    for name, row in report["baselines"].items():
        lines.append(
            f"| *{name} baseline* | {_fmt(row['cider'], '.3f')} | {_fmt(row['clip_score'], '.3f')} | "
            f"{_fmt(row['chair_i'], '.1%')} | 0 | 0% | | |"
        )
    budget = report["budget"]
    scored = "last step" if budget.get("checkpoint") == "last" else "best checkpoint"
    # A report written before the decoding was recorded was decoded greedily.
    decoding = config_from_dict(DecodingConfig, report.get("decoding", {}), "sweep report").describe()
    lines.append("")
    lines.append(
        f"Every method: {budget['steps']} steps of {budget['batch_size']} images, learning rate "
        f"{budget['learning_rate']}, seed {budget['seed']}; scored on {report['n_val_images']} validation "
        f"images ({decoding} captions of the {scored}). Encoder {report['encoder']}, decoder "
        f"{report['decoder']}, CLIPScore model {report['clip_model']}."
    )
    return "\n".join(lines) + "\n"
