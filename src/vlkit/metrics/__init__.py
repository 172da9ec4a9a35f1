"""Caption metrics as pure functions: captions in, numbers out.

CIDEr-D and the PTB tokenization are vlkit's own (same numbers as pycocoevalcap, no Java); BLEU, METEOR,
ROUGE-L and SPICE are pycocoevalcap's, reported unavailable (not zero) where they cannot run.
"""

from __future__ import annotations

from vlkit.metrics.cider import CiderResult, cider_d
from vlkit.metrics.coco import CocoMetrics, MetricResult, coco_metrics
from vlkit.metrics.ptb_java import ptb_tokenize_java
from vlkit.metrics.tokenize import ptb_tokenize

__all__ = [
    "CiderResult",
    "CocoMetrics",
    "MetricResult",
    "cider_d",
    "coco_metrics",
    "ptb_tokenize",
    "ptb_tokenize_java",
]
