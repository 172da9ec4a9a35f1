"""What a ViLBERT run is told, as plain data: the model's size and variant, the regions, the batches, the
loop and the task weights (torch-free, so the CLI builds its options from these fields without loading a
model library), saved as JSON beside the weights (`vlkit.train.vilbert_trainer`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from vlkit.runtime.options import config_from_dict, option, positive, require
from vlkit.train.config import LoopConfig
from vlkit.train.vilbert_data_config import ViLBertDataConfig

REGION_SOURCES = ("boxes", "grid")
POOLING_NAMES = ("cells", "crop")  # train.region_features.POOLINGS
TRAIN_CONFIG_FILE = "vlkit_vilbert_train.json"
# Each phase's default length (docs/vilbert.md, "Training": measured so that one pre-training and one
# fine-tuning run of the default size take about two minutes on two CPU cores).
PHASE_STEPS = {"pretrain": 200, "finetune": 600}


def default_loop(steps: int = PHASE_STEPS["finetune"]) -> LoopConfig:
    return LoopConfig(
        steps=steps,
        learning_rate=3e-4,
        weight_decay=0.01,
        warmup_steps=30,
        checkpoint_every=100,
        log_every=10,
    )


def default_data() -> ViLBertDataConfig:
    return ViLBertDataConfig(batch_size=32)


@dataclass
class VilbertTrainConfig:
    """One pre-training or fine-tuning run of ViLBERT (or of a peer model passed in) on a shapes world; the
    loop's defaults are fine-tuning's (`for_phase("pretrain")` gives pre-training's)."""

    variant: str = option(
        "two-stream",
        "--variant",
        "Model variant: two-stream (the paper), sequential, no-standard-layers or single-stream.",
    )
    regions: str = option(
        "boxes",
        "--regions",
        "Regions: boxes (true, jittered and distractor boxes) or grid (the patch cells).",
    )
    region_pooling: str = option(
        "cells",
        "--region-pooling",
        "Region features: cells (the mean of the patch tokens under each box, RoI pooling) or crop (each box "
        "cut out and encoded alone, R-CNN's way).",
    )
    encoder: str = option(
        "vlkit:shapes-clip", "--encoder", "Frozen vision encoder whose pooled patch tokens are the regions."
    )
    hidden_size: int = option(128, "--hidden-size", "Width of both streams and of co-attention.")
    attention_heads: int = option(4, "--heads", "Attention heads of every layer.")
    text_layers: int = option(2, "--text-layers", "Standard layers of the text stream.")
    vision_layers: int = option(2, "--vision-layers", "Standard layers of the visual stream.")
    coattention_layers: int = option(2, "--coattention-layers", "Co-attention layers between the streams.")
    ffn_size: int = option(256, "--ffn-size", "Feed-forward width of every layer.")
    dropout: float = option(0.1, "--dropout", "Dropout of both streams, their attention and the embeddings.")
    data: ViLBertDataConfig = option(factory=default_data)
    loop: LoopConfig = option(factory=default_loop)
    word_loss: float = option(1.0, help="weight of the masked-word loss (pre-training)")
    region_loss: float = option(1.0, help="weight of the masked-region KL loss (pre-training)")
    alignment_loss: float = option(1.0, help="weight of the image-text alignment loss (pre-training)")
    vqa_loss: float = option(1.0, "--vqa-weight", "Weight of the VQA loss in fine-tuning (0: no VQA).")
    referring_loss: float = option(
        1.0, "--referring-weight", "Weight of the referring loss in fine-tuning (0: none)."
    )
    retrieval_loss: float = option(
        1.0, "--retrieval-weight", "Weight of the retrieval loss in fine-tuning (0: none)."
    )
    referring_rows: int = option(
        16, "--referring-rows", "Referring expressions per fine-tuning step (at most --batch-size)."
    )
    retrieval_rows: int = option(
        8, "--retrieval-rows", "Captions per fine-tuning step for retrieval, each with its candidates."
    )
    eval_every: int = option(100, "--eval-every", "Steps between validations (loss or VQA accuracy).")
    val_limit: int = option(512, help="validation questions (or pairs) scored at each validation")
    eval_batch_size: int = option(256, help="items per forward pass when evaluating")
    rerank_candidates: int = option(
        20,
        "--rerank-candidates",
        "Images each validation caption re-ranks for retrieval R@K (own one first).",
    )
    rerank_all_captions: bool = option(
        False,
        "--rerank-all-captions/--rerank-first-captions",
        "Retrieval R@K over every validation caption (5 per image) or each image's first.",
    )
    feature_cache_dir: str | None = option(
        None,
        "--feature-cache-dir",
        "Folder of region-feature caches, shared by runs (default: $VLKIT_CACHE_DIR/region_features).",
    )
    task_seed: int = option(0, help="seed of the questions and referring expressions")
    threads: int = option(
        0,
        "--threads",
        "Torch CPU threads during the run (0: torch's default). On a CPU shared with other jobs, 1 avoids "
        "the threads' waits for each other.",
    )

    def __post_init__(self) -> None:
        positive(
            self, "hidden_size", "attention_heads", "ffn_size", "referring_rows", "retrieval_rows",
            "eval_every", "val_limit", "eval_batch_size",
        )  # fmt: skip
        for name in ("text_layers", "vision_layers", "coattention_layers"):
            value = getattr(self, name)
            require(self, name, value >= 0, f"must be at least 0, got {value}")
        require(
            self,
            "attention_heads",
            self.hidden_size % self.attention_heads == 0,
            f"{self.attention_heads} heads do not divide hidden_size {self.hidden_size}",
        )
        require(self, "dropout", 0.0 <= self.dropout < 1.0, f"must be in [0, 1), got {self.dropout}")
        require(
            self,
            "regions",
            self.regions in REGION_SOURCES,
            f"must be one of {', '.join(REGION_SOURCES)}, got {self.regions!r}",
        )
        require(
            self,
            "region_pooling",
            self.region_pooling in POOLING_NAMES,
            f"must be one of {', '.join(POOLING_NAMES)}, got {self.region_pooling!r}",
        )
        require(self, "rerank_candidates", self.rerank_candidates >= 2, "must be at least 2")
        require(self, "threads", self.threads >= 0, f"must be 0 or more, got {self.threads}")
        for name in ("word_loss", "region_loss", "alignment_loss", "vqa_loss", "referring_loss",
                     "retrieval_loss"):  # fmt: skip
            value = getattr(self, name)
            require(self, name, value >= 0, f"must be 0 or more, got {value}")

    @classmethod
    def for_phase(cls, phase: str, **fields: Any) -> VilbertTrainConfig:
        """The defaults of `phase` ("pretrain" or "finetune", whose step counts differ: `PHASE_STEPS`), with
        `fields` on top (a `loop` given among them wins)."""
        if phase not in PHASE_STEPS:
            raise ValueError(f"phase {phase!r}: choose {', '.join(PHASE_STEPS)}")
        fields.setdefault("loop", default_loop(PHASE_STEPS[phase]))
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "VilbertTrainConfig") -> VilbertTrainConfig:
        """From the JSON form; an unknown field is an error naming `source`."""
        return config_from_dict(cls, data, source)
