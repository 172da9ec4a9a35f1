"""BENCHMARKS.md says where and when each row was measured, and never calls a slowdown a success."""

from __future__ import annotations

from bench.__main__ import render_report
from bench.common import BenchRow


def _result(cpu: str, date: str, *rows: BenchRow) -> dict:
    machine = {"cpu": cpu, "cores": 2, "python": "3.11.7", "numpy": "2", "torch": "2"}
    return {"machine": machine, "date": date, "load_average": 0.5, "rows": [row.to_json() for row in rows]}


def _row(metric: str, vlkit: float, peer: float, target: str, met: bool) -> BenchRow:
    return BenchRow("x", metric, vlkit, peer, "images/s", True, target, met, "python -m bench x", "notes")


def _table_row(report: str, metric: str) -> list[str]:
    line = next(line for line in report.splitlines() if f"| {metric} |" in line)
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_each_row_names_its_cpu_and_date_and_a_report_row_says_reported_with_its_slowdown():
    report = render_report([
        _result("AMD EPYC", "2026-11-30", _row("two processes", 585.4, 643.4, "report", True)),
        _result("Intel(R) Xeon(R) Processor", "2026-11-23", _row("bf16", 125.9, 27.5, ">= 1.8x", True),
                _row("beam", 1.6, 1.7, ">= 1.0x", False)),
    ])  # fmt: skip
    header = [cell.strip() for cell in report.splitlines()[report.splitlines().index("## Results") + 2]
              .strip("|").split("|")]  # fmt: skip
    slow, fast, missed = (
        dict(zip(header, _table_row(report, m), strict=True)) for m in ("two processes", "bf16", "beam")
    )
    assert (slow["CPU"], slow["Date"]) == ("AMD EPYC", "2026-11-30")
    assert (fast["CPU"], fast["Date"]) == ("Intel(R) Xeon(R) Processor", "2026-11-23")
    assert slow["Status"] == "reported" and slow["Ratio"] == "0.91x: vlkit slower"
    assert fast["Status"] == "met" and fast["Ratio"] == "4.58x"
    assert missed["Status"] == "**MISSED**" and missed["Ratio"].endswith("vlkit slower")
