"""The caption metrics by name, and CLIPScore's text prefix: plain data (torch-free, for the CLI's help)."""

from __future__ import annotations

METRICS = ("cider", "clip_score", "ref_clip_score", "bleu", "meteor", "rouge_l", "chair", "attributes")
CIDER_TOKENIZERS = ("ptb", "ptb-java")
DEFAULT_PREFIX = "A photo depicts "  # CLIPScore's text prefix (Hessel et al., 2021)
