"""`--precision auto`: bf16 only where the device runs it natively, decided once per machine and cached."""

from __future__ import annotations

import json

import pytest
import torch

from vlkit.errors import VlkitError
from vlkit.models.clip import resolve_precision
from vlkit.runtime import precision


@pytest.fixture
def measured(monkeypatch, tmp_path):
    """A CPU whose flags name avx512_bf16, a cache folder of its own, and a measurement that is counted."""
    monkeypatch.delenv("VLKIT_CPU_BF16", raising=False)
    monkeypatch.setenv("VLKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    calls = []

    def use(fp32_s: float, bf16_s: float) -> list:
        def fake() -> tuple[float, float]:
            calls.append(1)
            return fp32_s, bf16_s

        monkeypatch.setattr(precision, "measure_matmul_seconds", fake)
        return calls

    return use


def test_explicit_choices_pass_through_and_unknown_is_named():
    cpu = torch.device("cpu")
    assert [precision.resolve_precision_name(c, cpu) for c in ("fp32", "bf16", "fp16")] == [
        "fp32",
        "bf16",
        "fp16",
    ]
    with pytest.raises(VlkitError, match="--precision: unknown value 'int8'"):
        precision.resolve_precision_name("int8", cpu)


def test_no_bf16_flag_means_fp32_without_measuring(monkeypatch, tmp_path):
    monkeypatch.delenv("VLKIT_CPU_BF16", raising=False)
    monkeypatch.setenv("VLKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "fma"})
    monkeypatch.setattr(precision, "measure_matmul_seconds", lambda: pytest.fail("measured"))
    assert resolve_precision("auto") == torch.float32
    assert not (tmp_path / precision.CACHE_FILE).exists()


def test_fast_bf16_is_chosen_and_the_answer_cached(measured, tmp_path):
    calls = measured(fp32_s=0.010, bf16_s=0.004)
    assert precision.resolve_precision_name("auto", torch.device("cpu")) == "bf16"
    assert precision.resolve_precision_name("auto", torch.device("cpu")) == "bf16"
    assert len(calls) == 1  # the second answer came from the cache file
    cache = json.loads((tmp_path / precision.CACHE_FILE).read_text())
    (entry,) = cache.values()
    assert entry["native"] is True and entry["fp32_s"] == 0.010


def test_bf16_no_faster_than_fp32_stays_fp32(measured):
    # Flags present but bf16 emulated or starved: 1.1x is below the 1.2x threshold.
    measured(fp32_s=0.011, bf16_s=0.010)
    assert resolve_precision("auto") == torch.float32


def test_forced_answer_wins(monkeypatch):
    monkeypatch.setenv("VLKIT_CPU_BF16", "1")
    monkeypatch.setattr(precision, "measure_matmul_seconds", lambda: pytest.fail("measured"))
    assert resolve_precision("auto", torch.device("cpu")) == torch.bfloat16


def test_the_real_measurement_returns_two_positive_times():
    fp32_s, bf16_s = precision.measure_matmul_seconds(rows=64, width=64, repeats=1)
    assert fp32_s > 0 and bf16_s > 0
