"""What every tuning method of the captioner shares: the interface, freezing, and the captioner's new weights.

A captioner's cross-attention blocks, their layer norms and the encoder-to-decoder projection are new, random
weights, so every method trains them; a method only decides what else trains and which modules it adds. Each
method is one module of this folder exposing a `TuningMethod`, and `vlkit.models.tuning.TUNING_METHODS` lists
them by name. peft does the methods it has (LoRA, IA3, prefix tuning's prefix encoder); this module only holds
the plumbing they share, including turning `--tuning-option key=value` text into a method's config. It
imports neither torch nor peft (the CLI lists the methods and their options without loading them); the
weight helpers every method applies live in `weights.py`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vlkit.errors import VlkitError

if TYPE_CHECKING:  # the methods import torch, transformers and peft when applied, not when listed
    from transformers import VisionEncoderDecoderModel


@dataclass(frozen=True)
class TuningMethod:
    """A named way of choosing what trains in a captioner.

    `apply(model, config)` freezes what must not train, adds the method's modules (randomly initialized from
    torch's global generator, so seed it first) and returns the same model. `config_class` is a dataclass
    whose fields carry their help text in `metadata["help"]`.
    """

    name: str
    summary: str
    config_class: type
    apply: Callable[[VisionEncoderDecoderModel, Any], VisionEncoderDecoderModel]
    trains_encoder: bool = False
    # Decoder positions the method takes before a caption's first token (prefix tuning's virtual tokens).
    reserved_positions: Callable[[Any], int] = lambda config: 0

    def default_config(self) -> Any:
        return self.config_class()

    def config_from_dict(self, data: dict[str, Any], source: str) -> Any:
        """Rebuild the method's config from its JSON form; unknown fields are an error naming `source`."""
        known = {f.name for f in dataclasses.fields(self.config_class)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise VlkitError(
                f"{source}: unknown field {unknown[0]!r} for tuning method {self.name!r} "
                f"(fields: {', '.join(sorted(known)) or 'none'})"
            )
        return self.config_class(**data)

    def config_from_options(self, options: Sequence[str]) -> Any:
        """The method's config with `key=value` overrides (CLI `--tuning-option`), typed by its fields."""
        fields = {f.name: f for f in dataclasses.fields(self.config_class)}
        hints = typing.get_type_hints(self.config_class)
        values: dict[str, Any] = {}
        for option in options:
            key, sep, text = option.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or not key:
                raise VlkitError(f"--tuning-option: expected KEY=VALUE, got {option!r}")
            if key not in fields:
                raise VlkitError(
                    f"--tuning-option: {self.name!r} has no option {key!r} "
                    f"(options: {', '.join(sorted(fields)) or 'none'})"
                )
            values[key] = _parse_value(text.strip(), hints[key], f"--tuning-option {key}")
        return self.config_class(**values)


def option_help(method: TuningMethod) -> str:
    """One line per config field: `name (default): help`, for the CLI's help text."""
    lines = []
    for f in dataclasses.fields(method.config_class):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        lines.append(f"{f.name} ({default!r}): {f.metadata.get('help', '')}")
    return "; ".join(lines)


def _parse_value(text: str, hint: Any, where: str) -> Any:
    """Text -> the field's type: int, float, bool, str, a list of str (comma-separated), or None."""
    is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = typing.get_args(hint) if is_union else (hint,)
    if type(None) in args and text.lower() in ("none", "null", ""):
        return None
    kinds = [a for a in args if a is not type(None)]
    kind = typing.get_origin(kinds[0]) or kinds[0]
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if kind is list:
            return [part.strip() for part in text.split(",") if part.strip()]
        if kind in (int, float, str):
            return kind(text)
    except ValueError:
        raise VlkitError(f"{where}: {text!r} is not a valid {getattr(kind, '__name__', kind)}") from None
    return json.loads(text)


@dataclass(frozen=True)
class ParameterCount:
    """Trainable and total parameters (a tied tensor counted once) and the trainable share."""

    trainable: int
    total: int

    @property
    def share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def describe(self) -> str:
        return f"{self.trainable:,} of {self.total:,} parameters train ({100 * self.share:.2f}%)"


def gpt2_block_pattern(targets: Sequence[str]) -> str:
    """A peft `target_modules` regex matching `targets` (e.g. "attn.c_attn") inside every decoder block only.

    A plain suffix such as "c_attn" would also match each block's `crossattention.c_attn`, which trains in
    full anyway; anchoring on `transformer.h.N.` keeps the adapters on the pretrained self-attention and MLP.
    """
    if not targets:
        raise VlkitError("target_modules: name at least one module of a GPT-2 block, e.g. attn.c_attn")
    names = "|".join(re.escape(target) for target in targets)
    return rf"transformer\.h\.\d+\.(?:{names})"
