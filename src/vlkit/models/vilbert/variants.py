"""The study's model variants as edits of one `ViLBertConfig`, and parameter counts to compare them at.

    two-stream          the paper's layout (the config as given)
    sequential          co-attention in order: text reads vision, then vision reads the updated text
    no-standard-layers  co-attention layers only (no self-attention layers in either stream), as many as
                        bring the parameter count closest to the base's
    single-stream       one transformer (the text stream's layers, the text's width) over words and regions
The `grid-regions` ablation is the two-stream model over other inputs (grid cells as regions): no config edit.

`count_parameters` builds the model on the meta device (no memory, no init), so counting the reference's
~250M-parameter base costs a fraction of a second; `scale_to_parameter_count` searches one integer knob
(co-attention layers, text layers, or feed-forward width) for the count closest to a target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from vlkit.errors import VlkitError
from vlkit.models.vilbert.config import ViLBertConfig
from vlkit.models.vilbert.model import ViLBertModel

VARIANTS = ("two-stream", "sequential", "no-standard-layers", "single-stream")
KNOBS = ("coattention_layers", "text_layers", "ffn")


def count_parameters(config: ViLBertConfig) -> int:
    """The model's parameters (the tied output matrix counted once), heads included."""
    with torch.device("meta"):
        model = ViLBertModel(config)
    return sum(p.numel() for p in model.parameters())  # parameters() yields a shared tensor once


def variant_config(base: ViLBertConfig, name: str) -> ViLBertConfig:
    """The config of variant `name` (one of `VARIANTS`) derived from `base`."""
    if name == "two-stream":
        return dataclasses.replace(base)
    if name == "sequential":
        return dataclasses.replace(base, coattention_order="sequential")
    if name == "no-standard-layers":
        layers = max(base.num_coattention_layers, 1)
        only = dataclasses.replace(
            base,
            num_hidden_layers=0,
            v_num_hidden_layers=0,
            t_biattention_id=[0] * layers,
            v_biattention_id=[0] * layers,
            with_coattention=True,
        )
        return scale_to_parameter_count(only, count_parameters(base), "coattention_layers")
    if name == "single-stream":
        return dataclasses.replace(
            base,
            architecture="single_stream",
            v_hidden_size=base.hidden_size,
            v_num_attention_heads=base.num_attention_heads,
            v_intermediate_size=base.intermediate_size,
            v_num_hidden_layers=0,
            t_biattention_id=[],
            v_biattention_id=[],
        )
    raise VlkitError(f"variant {name!r}: unknown (choose {', '.join(VARIANTS)})")


def scale_to_parameter_count(config: ViLBertConfig, target: int, knob: str) -> ViLBertConfig:
    """`config` with one knob set to bring its parameter count closest to `target`.

    Knobs: `coattention_layers` (co-attention layers added after every standard layer, or the last ones
    removed), `text_layers` (the text stream's standard layers, never below the last co-attention id), `ffn`
    (the feed-forward widths, text and vision scaled by one factor)."""
    if knob not in KNOBS:
        raise VlkitError(f"knob {knob!r}: unknown (choose {', '.join(KNOBS)})")
    low = max(config.t_biattention_id, default=0) if knob == "text_layers" else 1
    best = _closest(lambda n: count_parameters(_set_knob(config, knob, n)), low, target)
    return _set_knob(config, knob, best)


def _set_knob(config: ViLBertConfig, knob: str, value: int) -> ViLBertConfig:
    if knob == "coattention_layers":
        return _with_coattention_layers(config, value)
    if knob == "text_layers":
        return dataclasses.replace(config, num_hidden_layers=value)
    ratio = config.v_intermediate_size / config.intermediate_size  # "ffn": both widths, one factor
    return dataclasses.replace(
        config, intermediate_size=value, v_intermediate_size=max(1, round(value * ratio))
    )


def _with_coattention_layers(config: ViLBertConfig, layers: int) -> ViLBertConfig:
    t_ids = config.t_biattention_id[:layers]
    v_ids = config.v_biattention_id[:layers]
    extra = layers - len(t_ids)
    return dataclasses.replace(
        config,
        t_biattention_id=t_ids + [config.num_hidden_layers] * extra,
        v_biattention_id=v_ids + [config.v_num_hidden_layers] * extra,
        with_coattention=True,
    )


def _closest(count: Callable[[int], int], low: int, target: int) -> int:
    """The n >= low whose count(n) (increasing in n) is closest to target: doubling, then bisection."""
    high = max(low, 1)
    while count(high) < target:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if count(middle) < target else (low, middle)
    return min((low, high), key=lambda n: (abs(count(n) - target), n))
