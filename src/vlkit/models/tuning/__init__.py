"""The captioner's tuning methods, by name: one module per method, listed in one plain dict.

Adding a method means adding a module with a `METHOD` and one line below; `base.py` holds what they share.
Importing this package loads neither torch nor peft: each method imports them when it is applied.
"""

from __future__ import annotations

from vlkit.errors import VlkitError
from vlkit.models.tuning import adapter, cross_attn, full, ia3, lora, prefix
from vlkit.models.tuning.base import ParameterCount, TuningMethod

TUNING_METHODS: dict[str, TuningMethod] = {
    cross_attn.METHOD.name: cross_attn.METHOD,
    lora.METHOD.name: lora.METHOD,
    ia3.METHOD.name: ia3.METHOD,
    prefix.METHOD.name: prefix.METHOD,
    adapter.METHOD.name: adapter.METHOD,
    full.METHOD.name: full.METHOD,
}


def tuning_method(name: str) -> TuningMethod:
    """The method called `name`; an unknown name is a `VlkitError` listing the known ones."""
    if name not in TUNING_METHODS:
        raise VlkitError(f"tuning: unknown method {name!r} (choose {', '.join(TUNING_METHODS)})")
    return TUNING_METHODS[name]


__all__ = ["TUNING_METHODS", "ParameterCount", "TuningMethod", "tuning_method"]
