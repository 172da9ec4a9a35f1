"""The machine a figure was measured on, as the studies record it beside their timings: the processor's name
with its core count (`lscpu`'s model name, read from /proc/cpuinfo), and the load average."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    """The processor's name and its core count, e.g. "AMD EPYC, 2 cores"."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other work sharing the cores), or None where there are none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
