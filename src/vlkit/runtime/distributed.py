"""Several processes under `accelerate launch` (or torchrun): who this process is, its share of a list, and
the gather that puts the shares back in order.

accelerate does the process group, the device placement and the collectives. This module adds only two
things it lacks: on a machine without GPUs it asks accelerate for the CPU (gloo) process group, which
accelerate otherwise does not form for processes that `accelerate launch` starts (each would then work
alone on everything), and a contiguous split whose gather restores the input order, which evaluation needs
to write one output file identical to a single process's. torch and accelerate load on first use, so that
importing this module (every tier does) costs nothing.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from accelerate import PartialState

T = TypeVar("T")


def launched() -> bool:
    """Started by `accelerate launch` or torchrun (they set LOCAL_RANK)."""
    return int(os.environ.get("LOCAL_RANK", -1)) != -1


def launched_on_cpu() -> bool:
    """Started by `accelerate launch` or torchrun on a machine without CUDA."""
    import torch

    return launched() and not torch.cuda.is_available()


def process_state() -> PartialState:
    """accelerate's process-wide state (rank, process count, device), with the CPU process group where there
    is no GPU, so that the same command runs unchanged on N CPU processes or N GPUs."""
    from accelerate import PartialState

    return PartialState(cpu=True) if launched_on_cpu() else PartialState()


def process_range(n: int) -> range:
    """This process's contiguous share of `range(n)`: the first `n % count` processes get one item more."""
    state = process_state()
    base, extra = divmod(n, state.num_processes)
    index = state.process_index
    start = index * base + min(index, extra)
    return range(start, start + base + (1 if index < extra else 0))


def gather_in_order(local: list[T]) -> list[T]:
    """Every process's list, concatenated in process order (so shares from `process_range` come back in
    input order); on one process the list itself."""
    if process_state().num_processes == 1:
        return local
    from accelerate.utils import gather_object

    gathered: list[Any] = gather_object(local)
    return gathered


def is_main_process() -> bool:
    return process_state().is_main_process


# How long a process that is done waits for the others before it leaves the group all the same (a peer that
# died or raised may never come); the wait is only ever this long when something already went wrong.
LEAVE_TIMEOUT_S = 120


def end_process_group() -> None:
    """Leave the process group, if this process joined one, together with the other processes, before the
    interpreter exits.

    A gloo group still alive at exit aborts the process ("terminate called without an active exception",
    exit code -6), and so does one destroyed while a peer still works in it: a process done with its share
    that left while the main process was still writing the outputs aborted in 2 of 8 two-process runs of
    `vlkit evaluate` with the cores loaded by other work, and `accelerate launch` reports that as a failure
    although the work was done. So on gloo every process first waits at a monitored barrier (which gives
    up after `LEAVE_TIMEOUT_S`), then leaves."""
    import sys

    if "torch" not in sys.modules:  # nothing loaded torch, so no process group was formed
        return
    from datetime import timedelta

    import torch

    distributed = torch.distributed
    if not (distributed.is_available() and distributed.is_initialized()):
        return
    if distributed.get_backend() == "gloo" and distributed.get_world_size() > 1:
        try:
            distributed.monitored_barrier(timeout=timedelta(seconds=LEAVE_TIMEOUT_S))
        except RuntimeError:  # a peer that died or timed out: leave anyway, as before the barrier
            pass
    distributed.destroy_process_group()
