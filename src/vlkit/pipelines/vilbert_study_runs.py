"""One model of the ViLBERT study, one seed: built, pre-trained, fine-tuned and evaluated with the trainer's
own `pretrain`, `finetune` and `evaluate` (`vlkit.train.vilbert_trainer`, `vilbert_eval`), or read back when
its folder says it is done with the same inputs (`demo.Stages`), so a rerun trains nothing it has.

    MODELS[name]   what differs from the paper's two-stream model: the ViLBERT variant (`variants`), the
                   regions (boxes or the encoder's grid) and their pooling (the patch tokens under a box,
                   or the box cropped and encoded alone), a peer from transformers (`vilbert.peers`), no
                   pre-training, or one input hidden (`vilbert.baselines`: fine-tuned from the two-stream
                   model's pre-training, which it shares)

A run's folder, OUT/models/NAME/seedS: pretrain/ and finetune/ (the trainer's folders), result.json (the
figures), vlkit_stage.json (done) and vlkit_study_started.json (the inputs a stopped
run was started with: a rerun with the same inputs resumes the phase it stopped in, other inputs start over).
The co-attention maps of the first seed go to OUT/figures/NAME/.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlkit.errors import VlkitError
from vlkit.pipelines.demo import STAGE_FILE, Stages
from vlkit.runtime.files import read_json, write_json_atomic

log = logging.getLogger(__name__)

RESULT = "result.json"
STARTED = "vlkit_study_started.json"
TRAINER_RESULT = "vlkit_vilbert_result.json"  # the trainer's record of a finished phase


@dataclass(frozen=True)
class ModelSpec:
    """How a model of the study differs from the paper's two-stream ViLBERT."""

    variant: str = "two-stream"  # a ViLBERT variant (`vilbert.variants.VARIANTS`)
    regions: str = "boxes"  # "boxes" or "grid"
    pooling: str = "cells"  # "cells" (the patch tokens under each box) or "crop" (each box encoded alone)
    peer: str | None = None  # "lxmert" or "visualbert": transformers' model, sized to the two-stream's count
    pretrain: bool = True
    hide: str | None = None  # "regions" (question-only) or "question" (image-only)
    pretrained_by: str | None = None  # another model whose pre-training this one starts from


MODELS: dict[str, ModelSpec] = {
    "two-stream": ModelSpec(),
    "no-standard-layers": ModelSpec(variant="no-standard-layers"),
    "sequential": ModelSpec(variant="sequential"),
    "single-stream": ModelSpec(variant="single-stream"),
    "no-pretraining": ModelSpec(pretrain=False),
    "grid-regions": ModelSpec(regions="grid"),
    "crop-regions": ModelSpec(pooling="crop"),
    "lxmert": ModelSpec(peer="lxmert"),
    "visualbert": ModelSpec(peer="visualbert"),
    "question-only": ModelSpec(hide="regions", pretrained_by="two-stream"),
    "image-only": ModelSpec(hide="question", pretrained_by="two-stream"),
}
BASELINE_MODELS = ("question-only", "image-only")


@dataclass
class StudyContext:
    """What every run of a study shares: where, on what, with which settings and loaded batches."""

    out: Path
    world: Path
    world_digest: str
    base: Any  # VilbertTrainConfig: the size and settings every model starts from
    pretrain_steps: int
    finetune_steps: int
    data: dict[str, Any]  # `data_key(spec)` ("boxes", "grid", "boxes/crop") -> ViLBertData, loaded once
    scenes: dict[Any, Any]  # validation image id -> Scene (the pointing game)
    image_paths: dict[Any, Path]  # validation image id -> file (the figures)
    stages: Stages

    def folder(self, name: str, seed: int) -> Path:
        return self.out / "models" / name / f"seed{seed}"

    def is_done(self, name: str, seed: int) -> bool:
        """Whether the run's result is there, made from the same inputs (nothing to train)."""
        folder = self.folder(name, seed)
        try:
            stamp = read_json(folder / STAGE_FILE)
        except VlkitError:
            return False
        return (folder / RESULT).is_file() and stamp.get("inputs") == json.loads(
            json.dumps(self.key(name, seed))
        )

    def config(self, spec: ModelSpec, seed: int, steps: int) -> Any:
        """The run's `VilbertTrainConfig`: the base with this model's variant, regions, steps and seed."""
        loop = dataclasses.replace(self.base.loop, steps=steps, seed=seed)
        data = dataclasses.replace(self.base.data, seed=seed)
        checkpoint = max(1, min(loop.checkpoint_every, steps))
        loop = dataclasses.replace(
            loop, checkpoint_every=checkpoint, warmup_steps=min(loop.warmup_steps, steps)
        )
        return dataclasses.replace(
            self.base, variant=spec.variant, regions=spec.regions, region_pooling=spec.pooling, loop=loop,
            data=data, eval_every=min(self.base.eval_every, steps),
        )  # fmt: skip

    def key(self, name: str, seed: int) -> dict[str, Any]:
        """What a run is made from (where the features are cached is not: they are named by content)."""
        spec = MODELS[name]
        phases = {
            phase: {
                k: v for k, v in self.config(spec, seed, steps).to_dict().items() if k != "feature_cache_dir"
            }
            for phase, steps in (("pretrain", self.pretrain_steps), ("finetune", self.finetune_steps))
        }
        key = {
            "world": self.world_digest,
            "model": name,
            "spec": dataclasses.asdict(spec),
            "seed": seed,
            **phases,
        }
        if spec.pretrained_by:
            key["pretrained_by"] = self.key(spec.pretrained_by, seed)
        return key


def run_model(context: StudyContext, name: str, seed: int, figures: bool) -> dict[str, Any]:
    """Train and evaluate model `name` with `seed` (or read its result back); returns its figures."""
    folder, key = context.folder(name, seed), context.key(name, seed)
    if context.stages.done(folder, key) and (folder / RESULT).is_file():
        return read_json(folder / RESULT)
    start = time.perf_counter()
    resume = _started(folder, key)
    spec = MODELS[name]
    data = context.data[data_key(spec)]
    phases: dict[str, dict[str, Any]] = {}
    init = _pretrained(context, name, spec, seed, data, folder, resume, phases)
    model = _finetuned(context, spec, seed, data, folder, init, resume, phases)
    config = context.config(spec, seed, context.finetune_steps)
    result: dict[str, Any] = {"name": name, "seed": seed, **_evaluate(model, spec, config, data)}
    result["phases"] = phases
    result["train_s"] = sum(p["seconds"] for p in phases.values())
    steps = sum(p["steps"] for p in phases.values())
    result["seconds_per_step"] = result["train_s"] / steps if steps else None
    if spec.hide is None:
        shown = context.out / "figures" / name if figures else None
        result["pointing"] = _pointing(context, model, data, shown, name)
    result["wall_s"] = time.perf_counter() - start  # training, evaluation and figures, as run here
    write_json_atomic(folder / RESULT, result)
    context.stages.mark(folder, key)
    return result


def _evaluate(model: Any, spec: ModelSpec, config: Any, data: Any) -> dict[str, Any]:
    """The trainer's evaluation; a blind baseline is scored on VQA alone (what it is a baseline of)."""
    from vlkit.train.vilbert_eval import evaluate, vqa_metrics, vqa_predictions

    if spec.hide is None:
        return evaluate(model, config=config, data=data)
    model.eval()
    predicted = vqa_predictions(model, data.val, config.eval_batch_size)
    scores = vqa_metrics(
        predicted["predicted"], predicted["answer"], predicted["question_type"], predicted["heldout"]
    )
    return {**scores, "params": model.count_parameters()}


def _started(folder: Path, key: dict[str, Any]) -> bool:
    """True when a stopped run of the same inputs may resume in `folder`; else the folder starts over."""
    try:
        if read_json(folder / STARTED) == key:
            return True
    except VlkitError:
        pass
    shutil.rmtree(folder, ignore_errors=True)
    write_json_atomic(folder / STARTED, key)
    return False


def _phase_record(folder: Path) -> dict[str, Any] | None:
    """The trainer's record of a finished phase in `folder`, as {seconds, steps, step_seconds}."""
    try:
        record = read_json(folder / TRAINER_RESULT)
    except VlkitError:
        return None
    return {
        "seconds": record["train_seconds"],
        "steps": record["steps"],
        "step_seconds": record["step_seconds"],
    }


def _pretrained(
    context: StudyContext, name: str, spec: ModelSpec, seed: int, data: Any, folder: Path, resume: bool,
    phases: dict[str, dict[str, Any]],
) -> Path | None:  # fmt: skip
    """The folder of this model's pre-training (trained here unless shared or done), None without one."""
    if not spec.pretrain:
        return None
    if spec.pretrained_by:
        shared = context.folder(spec.pretrained_by, seed) / "pretrain"
        if _phase_record(shared) is None:
            raise VlkitError(
                f"{shared}: {name} starts from {spec.pretrained_by}'s pre-training, not made yet"
            )
        return shared  # trained once for both: its time is the other model's
    target = folder / "pretrain"
    record = _phase_record(target) if resume else None
    if record is None:
        from vlkit.train.vilbert_trainer import pretrain

        config = context.config(spec, seed, context.pretrain_steps)
        outcome = pretrain(
            config, None, target, resume=resume, model=new_model(spec, config, data), data=data
        )
        record = {"seconds": outcome.seconds, "steps": outcome.steps, "step_seconds": outcome.step_seconds}
    phases["pretrain"] = record
    return target


def _finetuned(
    context: StudyContext, spec: ModelSpec, seed: int, data: Any, folder: Path, init: Path | None,
    resume: bool, phases: dict[str, dict[str, Any]],
) -> Any:  # fmt: skip
    """The fine-tuned model, read back from its folder (trained here unless this phase finished before a
    stop). Read back, not the object trained: accelerate wraps a trained model's forward in the run's
    autocast (bf16 where the CPU has it), and the figures are those of the saved model, as `vlkit vilbert
    evaluate` scores it."""
    from vlkit.models.vilbert.baselines import BlindedModel
    from vlkit.models.vilbert.vl_models import load_vl_model
    from vlkit.train.vilbert_trainer import finetune

    target = folder / "finetune"
    record = _phase_record(target) if resume else None
    if record is None:
        config = context.config(spec, seed, context.finetune_steps)
        model = load_vl_model(init) if init is not None else new_model(spec, config, data)
        if spec.hide is not None:
            model = BlindedModel(model, spec.hide)
        outcome = finetune(config, None, target, init_dir=init, resume=resume, model=model, data=data)
        record = {"seconds": outcome.seconds, "steps": outcome.steps, "step_seconds": outcome.step_seconds}
    phases["finetune"] = record
    return load_vl_model(target)


def new_model(spec: ModelSpec, config: Any, data: Any) -> Any:
    """A new model of the spec: the ViLBERT variant, or a peer sized to the two-stream model's count."""
    from vlkit.train.vilbert_setup import build_model, vilbert_config

    if spec.peer is None:
        return build_model(config, data)
    from vlkit.models.vilbert.peers import build_peer, peer_like

    two_stream = vilbert_config(dataclasses.replace(config, variant="two-stream"), data.model_fields())
    return build_peer(peer_like(spec.peer, two_stream))


def _pointing(context: StudyContext, model: Any, data: Any, figures: Path | None, name: str) -> dict | None:
    from vlkit.pipelines.vilbert_attention import has_coattention, pointing_study

    if not has_coattention(model, data.val):
        return None
    report = pointing_study(model, data.val, context.scenes, context.image_paths, figures, title=name)
    return report.to_dict()


def data_key(spec: ModelSpec) -> str:
    """The batches a model reads: its regions, and their pooling where it is not the patch tokens'."""
    return spec.regions if spec.pooling == "cells" else f"{spec.regions}/{spec.pooling}"


def load_context(
    out: Path, world: Path, base: Any, pretrain_steps: int, finetune_steps: int, stages: Stages | None = None
) -> StudyContext:
    """A study's shared state: the world's batches for every region source and pooling the models read
    (their features cached, the tokenizer trained once), the validation scenes and image files."""
    from vlkit.data.scene_tasks import load_world_split
    from vlkit.pipelines.embedded import world_digest
    from vlkit.train.vilbert_setup import load_data

    data = {"boxes": load_data(base, world)}
    for spec in MODELS.values():
        if data_key(spec) not in data:
            config = dataclasses.replace(base, regions=spec.regions, region_pooling=spec.pooling)
            data[data_key(spec)] = load_data(config, world, data["boxes"].tokenizer)
    val = load_world_split(world, "val")
    return StudyContext(
        out=out, world=world, world_digest=world_digest(world), base=base, pretrain_steps=pretrain_steps,
        finetune_steps=finetune_steps, data=data, scenes={scene.image_id: scene for scene in val.scenes},
        image_paths={image.id: image.path for image in val.dataset.images}, stages=stages or Stages(),
    )  # fmt: skip
