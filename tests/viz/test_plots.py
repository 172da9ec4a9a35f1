"""The charts' layout: the per-template bars span the figures' range, the pinned templates stay first."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from vlkit.viz import plots


def test_the_accuracy_axis_spans_the_figures_range_not_zero_to_one():
    low, high = plots.axis_range([0.962, 0.971, 0.976])
    assert 0.9 < low < 0.962 and 0.976 < high < 0.99
    assert plots.axis_range([0.0, 1.0]) == (0.0, 1.0)  # kept within [0, 1]
    low, high = plots.axis_range([0.5, 0.5])
    assert (low, high) == pytest.approx((0.49, 0.51))  # a one-point margin at least


def test_pinned_templates_are_drawn_first_in_their_order(monkeypatch):
    drawn = {}

    def record(self, y, widths, **kwargs):
        drawn["widths"] = list(widths)
        drawn["colours"] = kwargs.get("color")
        return original(self, y, widths, **kwargs)

    original = plots.plt.Axes.barh
    monkeypatch.setattr(plots.plt.Axes, "barh", record)
    png = plots.template_bar_chart(
        ["seed a", "seed b", "x", "y", "z"], [0.90, 0.95, 0.93, 0.97, 0.91], {"ensemble": 0.94}, pinned=2
    )
    assert drawn["widths"] == [0.90, 0.95, 0.97, 0.93, 0.91]  # the two seed templates, then ranked
    assert drawn["colours"][:2] != drawn["colours"][2:4]
    assert Image.open(io.BytesIO(png)).size[0] > 100
