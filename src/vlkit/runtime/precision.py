"""`--precision auto`: bf16 only where the device runs it natively, fp32 everywhere else.

bf16 weights halve memory traffic, but a CPU without bf16 instructions emulates every bf16 matmul and runs
it several times slower than fp32 (docs/scaling.md), so "bf16 for speed" is only true on some machines.
`auto` therefore means:

- a CUDA device: bf16 when torch says the GPU supports it, else fp32 (fp16 is never chosen for the user:
  its range overflows in some models' activations);
- the CPU: bf16 when its flags name bf16 instructions (`avx512_bf16`, `amx_bf16`, ARM's `bf16`) **and** a
  short matmul of a transformer's size measures bf16 faster than fp32 by `MIN_SPEEDUP`; the answer is
  cached per (CPU model, torch version, thread count) in `$VLKIT_CACHE_DIR` (default `~/.cache/vlkit`), so
  the measurement (about 0.2 s) runs once per machine. Without readable flags (not Linux) it measures.

`VLKIT_CPU_BF16=1` / `=0` forces the CPU answer (for a test, or a user who measured otherwise). torch and
nothing else of vlkit is imported; torch only when asked.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING

from vlkit.errors import VlkitError
from vlkit.runtime.files import write_json_atomic

if TYPE_CHECKING:
    import torch

PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")
PRECISION_HELP = (  # the --precision help of every command that takes one
    "auto, fp32, bf16 or fp16 weights and activations. auto: bf16 where the device runs it natively (a GPU "
    "with bf16; a CPU with bf16 instructions that measure faster), fp32 elsewhere; outputs record which."
)
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
MIN_SPEEDUP = 1.2  # bf16 must beat fp32 by this much to be chosen: a tie is not worth the lost digits
CACHE_FILE = "precision.json"


def resolve_precision_name(choice: str, device: torch.device) -> str:
    """`auto`, `fp32`, `bf16` or `fp16` on `device` -> the precision to run in (never `auto`)."""
    if choice not in PRECISION_CHOICES:
        raise VlkitError(f"--precision: unknown value {choice!r} (choose {', '.join(PRECISION_CHOICES)})")
    if choice != "auto":
        return choice
    if device.type == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_runs_bf16_natively() else "fp32"
    return "fp32"  # mps and others: fp32, the precision every kernel has


def cpu_runs_bf16_natively() -> bool:
    """Whether bf16 matmuls are faster than fp32 on this CPU (see the module docstring); cached on disk."""
    forced = os.environ.get("VLKIT_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    flags = cpu_flags()
    if flags is not None and not any(flag in flags for flag in BF16_FLAGS):
        return False  # no bf16 instructions: emulated, always slower
    key = _cache_key()
    cache = _read_cache()
    if key in cache and isinstance(cache[key].get("native"), bool):
        return cache[key]["native"]
    fp32_s, bf16_s = measure_matmul_seconds()
    native = fp32_s / bf16_s >= MIN_SPEEDUP
    cache[key] = {"native": native, "fp32_s": fp32_s, "bf16_s": bf16_s, "measured": time.strftime("%Y-%m-%d")}
    try:
        write_json_atomic(cache_dir() / CACHE_FILE, cache)
    except OSError:
        pass  # a read-only home: measured again next time, which is only slower
    return native


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (x86 `flags`, ARM `Features`), or None where unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return set(value.split())
    return None


def measure_matmul_seconds(rows: int = 512, width: int = 768, repeats: int = 5) -> tuple[float, float]:
    """Best time of one transformer-sized linear layer ((rows, width) x (width, 4 width)) in fp32 and bf16."""
    import torch

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, width, generator=generator)
    w = torch.randn(4 * width, width, generator=generator)
    times = []
    for dtype in (torch.float32, torch.bfloat16):
        xd, wd = x.to(dtype), w.to(dtype)
        torch.nn.functional.linear(xd, wd)  # warm-up: kernel selection, first-touch allocation
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.nn.functional.linear(xd, wd)
            best = min(best, time.perf_counter() - start)
        times.append(best)
    return times[0], times[1]


def cache_dir() -> Path:
    if os.environ.get("VLKIT_CACHE_DIR"):
        return Path(os.environ["VLKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vlkit"


def _cache_key() -> str:
    import torch

    return f"{cpu_model_name()}|torch {torch.__version__}|{torch.get_num_threads()} threads"


def cpu_model_name() -> str:
    """`lscpu`'s model name (from /proc/cpuinfo), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _read_cache() -> dict:
    path = cache_dir() / CACHE_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: measure again and rewrite it
    return data if isinstance(data, dict) else {}
