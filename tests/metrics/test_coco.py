"""BLEU, METEOR, ROUGE-L and SPICE through pycocoevalcap, with and without Java."""

from __future__ import annotations

import contextlib
import io

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.rouge.rouge import Rouge

from tests.metrics.conftest import require_java
from vlkit.errors import VlkitError
from vlkit.metrics import coco, ptb_java
from vlkit.metrics.coco import coco_metrics

CANDIDATES = {1: "A man riding a horse on the beach.", 2: "Two dogs play in the snow", 3: "a red bus"}
REFERENCES = {
    1: ["A man rides a horse along the beach.", "a person riding a brown horse near the ocean"],
    2: ["Two dogs playing in the snow.", "dogs running through snow", "two puppies in the snow"],
    3: ["A red double-decker bus on a street.", "a bus"],
}


def _expected_bleu_and_rouge() -> dict[str, float]:
    """pycocoevalcap's scorers on its own (Java) tokenization."""
    keys = list(REFERENCES)
    gts = {key: ptb_java.ptb_tokenize_java(REFERENCES[key]) for key in keys}
    res = {key: ptb_java.ptb_tokenize_java([CANDIDATES[key]]) for key in keys}
    with contextlib.redirect_stdout(io.StringIO()):
        bleu, _ = Bleu(4).compute_score(gts, res)
    rouge, _ = Rouge().compute_score(gts, res)
    return {**{f"bleu_{n}": float(value) for n, value in enumerate(bleu, start=1)}, "rouge_l": float(rouge)}


@pytest.fixture(scope="module")
def with_java() -> coco.CocoMetrics:
    require_java()
    return coco_metrics(CANDIDATES, REFERENCES)


def test_with_java_every_metric_but_spice_comes_from_pycocoevalcap(with_java: coco.CocoMetrics) -> None:
    assert with_java.tokenizer == "ptb-java"
    expected = _expected_bleu_and_rouge()
    for name, value in expected.items():
        assert with_java.results[name].value == pytest.approx(value, abs=1e-12)
    meteor = with_java.results["meteor"]
    assert meteor.unavailable is None and 0 < meteor.value < 1


def test_spice_without_its_models_is_unavailable_with_the_reason(with_java: coco.CocoMetrics) -> None:
    if coco.spice_models_path().exists():
        pytest.skip("the SPICE models are installed here")
    spice = with_java.as_dict()["spice"]
    assert spice["value"] is None
    assert "Stanford CoreNLP 3.6.0" in spice["unavailable"]


def test_without_java_bleu_and_rouge_stay_and_the_java_metrics_say_why(
    monkeypatch: pytest.MonkeyPatch, with_java: coco.CocoMetrics
) -> None:
    monkeypatch.setattr(ptb_java, "java_available", lambda: False)
    without = coco_metrics(CANDIDATES, REFERENCES)
    assert without.tokenizer == "ptb"
    for name in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l"):
        assert without.results[name].value == pytest.approx(with_java.results[name].value, abs=1e-12)
    for name in ("meteor", "spice"):
        assert without.as_dict()[name] == {
            "value": None,
            "unavailable": f"{name.upper()} needs Java, and no `java` is on the PATH",
        }


def test_without_java_on_the_path_nothing_calls_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    result = coco_metrics(CANDIDATES, REFERENCES, metrics=("bleu", "meteor"))
    assert result.results["meteor"].value is None
    assert result.results["bleu_1"].value > 0


def test_unknown_metric_is_rejected() -> None:
    with pytest.raises(VlkitError, match="unknown 'cider'"):
        coco_metrics(CANDIDATES, REFERENCES, metrics=("bleu", "cider"))
