"""The console view of a models x datasets table (`vlkit.pipelines.table.ResultTable`), which `vlkit
zeroshot`, `vlkit retrieval` and `vlkit probe` print when given several models or datasets."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

console = Console()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def print_grid(table) -> None:
    """A models x datasets table (`vlkit.pipelines.table.ResultTable`): its headline figure per pair."""
    datasets = list(dict.fromkeys(row.data for row in table.rows))
    grid = Table(title=f"{table.task}: {table.headline}, models x datasets")
    grid.add_column("model")
    for name in datasets:
        grid.add_column(name, justify="right")
    cells = {(row.model, row.data): row.metrics.get(table.headline) for row in table.rows}
    for model in dict.fromkeys(row.model for row in table.rows):
        grid.add_row(model, *(_pct(cells.get((model, name))) for name in datasets))
    console.print(grid)
