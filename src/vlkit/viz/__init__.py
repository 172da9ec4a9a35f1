"""Figures: template and confusion charts, the sweep chart, best and worst caption pairs (matplotlib)."""
