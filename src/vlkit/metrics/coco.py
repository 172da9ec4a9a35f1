"""The other COCO caption metrics (BLEU-1..4, METEOR, ROUGE-L, SPICE), computed by pycocoevalcap itself.

vlkit does not reimplement these: pycocoevalcap's scorers are the reference. What it adds is the handling
of a machine without Java: pycocoevalcap tokenizes with Java and runs METEOR and SPICE in Java, so there
it would crash. `coco_metrics` then tokenizes with vlkit's identical pure-Python tokenizer, so BLEU and
ROUGE-L (pure Python in pycocoevalcap) stay available, and reports METEOR and SPICE as unavailable with
the reason, never as a zero. SPICE also needs the Stanford CoreNLP 3.6.0 models, which pycocoevalcap
downloads on first use: without them it is reported unavailable rather than downloaded behind your back.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from vlkit.errors import VlkitError
from vlkit.metrics import ptb_java, tokenize
from vlkit.metrics.cider import check_captions

K = TypeVar("K", bound=Hashable)
logger = logging.getLogger(__name__)

METRICS = ("bleu", "meteor", "rouge_l", "spice")
_NO_JAVA = "needs Java, and no `java` is on the PATH"


@dataclass(frozen=True)
class MetricResult:
    """A corpus score, or None with the reason it could not be computed."""

    value: float | None
    unavailable: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return (
            {"value": self.value}
            if self.unavailable is None
            else {"value": None, "unavailable": self.unavailable}
        )


@dataclass(frozen=True)
class CocoMetrics:
    """Scores by name ("bleu_1" .. "bleu_4", "meteor", "rouge_l", "spice") and the tokenizer used."""

    results: dict[str, MetricResult]
    tokenizer: str  # "ptb-java" (pycocoevalcap's) or "ptb" (vlkit's, the same tokens)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """name -> {"value": x} or {"value": None, "unavailable": reason}, as reports and JSON files use."""
        return {name: result.as_dict() for name, result in self.results.items()}


def coco_metrics(
    candidates: Mapping[K, str], references: Mapping[K, Sequence[str]], metrics: Sequence[str] = METRICS
) -> CocoMetrics:
    """BLEU-1..4, METEOR, ROUGE-L and SPICE of one candidate per image, through pycocoevalcap.

    Args:
        candidates: image id -> the caption to score.
        references: image id -> its reference captions; the same ids as `candidates`.
        metrics: which of "bleu", "meteor", "rouge_l", "spice" to compute.

    Returns:
        CocoMetrics; a metric that cannot run here (no Java, no SPICE models) has value None and a reason.
    """
    unknown = [name for name in metrics if name not in METRICS]
    if unknown:
        raise VlkitError(
            f"metrics: unknown {', '.join(map(repr, unknown))}; expected some of {', '.join(METRICS)}"
        )
    keys = check_captions(candidates, references)
    java = ptb_java.java_available()
    tokenize_captions = ptb_java.ptb_tokenize_java if java else tokenize.ptb_tokenize
    reference_texts = tokenize_captions([caption for key in keys for caption in references[key]])
    candidate_texts = tokenize_captions([candidates[key] for key in keys])
    gts: dict[Any, list[str]] = {}
    start = 0
    for key in keys:
        gts[key] = reference_texts[start : start + len(references[key])]
        start += len(references[key])
    res = {key: [text] for key, text in zip(keys, candidate_texts, strict=True)}
    results: dict[str, MetricResult] = {}
    for name in metrics:
        results.update(_SCORERS[name](gts, res, java))
    return CocoMetrics(results, "ptb-java" if java else "ptb")


def _bleu(gts: dict, res: dict, java: bool) -> dict[str, MetricResult]:
    from pycocoevalcap.bleu.bleu import Bleu

    with contextlib.redirect_stdout(io.StringIO()):  # it prints its n-gram statistics
        scores, _ = Bleu(4).compute_score(gts, res)
    return {f"bleu_{n}": MetricResult(float(score)) for n, score in enumerate(scores, start=1)}


def _rouge_l(gts: dict, res: dict, java: bool) -> dict[str, MetricResult]:
    from pycocoevalcap.rouge.rouge import Rouge

    score, _ = Rouge().compute_score(gts, res)
    return {"rouge_l": MetricResult(float(score))}


def _meteor(gts: dict, res: dict, java: bool) -> dict[str, MetricResult]:
    if not java:
        return {"meteor": MetricResult(None, f"METEOR {_NO_JAVA}")}
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    try:
        score, _ = scorer.compute_score(gts, res)
    finally:
        with contextlib.suppress(Exception):
            scorer.meteor_p.stdin.close()
            scorer.meteor_p.kill()
            scorer.meteor_p.wait()
    return {"meteor": MetricResult(float(score))}


def spice_models_path() -> Path:
    """Where pycocoevalcap's SPICE looks for the Stanford CoreNLP 3.6.0 jar it downloads on first use."""
    import pycocoevalcap.spice.get_stanford_models as models

    return Path(models.SPICEDIR) / models.SPICELIB / f"{models.JAR}.jar"


def _spice(gts: dict, res: dict, java: bool) -> dict[str, MetricResult]:
    if not java:
        return {"spice": MetricResult(None, f"SPICE {_NO_JAVA}")}
    jar = spice_models_path()
    if not jar.exists():
        return {
            "spice": MetricResult(
                None,
                f"SPICE needs the Stanford CoreNLP 3.6.0 models at {jar}, which "
                "pycocoevalcap downloads from nlp.stanford.edu on first use; run "
                "`python -m pycocoevalcap.spice.get_stanford_models` once online",
            )
        }
    from pycocoevalcap.spice.spice import Spice

    try:
        score, _ = Spice().compute_score(gts, res)
    except Exception as error:  # its Java side fails on some JVMs (it was written for Java 8)
        logger.warning("SPICE failed: %s", error)
        return {"spice": MetricResult(None, f"SPICE failed: {error}")}
    return {"spice": MetricResult(float(score))}


_SCORERS = {"bleu": _bleu, "meteor": _meteor, "rouge_l": _rouge_l, "spice": _spice}
