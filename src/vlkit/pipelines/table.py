"""Several models on several datasets in one call, and the one table of their figures (Markdown, CSV, JSON).

What CLIP_benchmark's `build_csv` gives after many runs of its `eval` command, `vlkit zeroshot`, `vlkit
retrieval` and `vlkit probe` give from one: each model is loaded once and run on every dataset in turn (its
text side encoded once: the zero-shot class prompts come from the text embedding cache on the second
dataset with the same classes), each pair's full results are written as they finish, and the table is
rewritten after every pair, so a run that fails on the fifth pair keeps the first four.

Layout, for `--out RESULTS.json` with more than one model or dataset:

- `RESULTS.json`: `{"task", "columns", "headline", "rows": [{"model", "data", "metrics", "results"}]}`;
- `RESULTS.csv`: one line per (model, dataset) with a column per metric, as `build_csv` writes;
- `RESULTS.md`: the headline metric, models by row and datasets by column, then the long table;
- `RESULTS/NN-MODEL--DATA.json` (and its charts): each pair's full document, as a single run writes it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vlkit.errors import VlkitError
from vlkit.runtime.distributed import is_main_process
from vlkit.runtime.files import write_json_atomic, write_text_atomic


@dataclass
class TableRow:
    model: str
    data: str
    metrics: dict[str, float | None]
    results: str  # the pair's full results file


@dataclass
class ResultTable:
    """Figures of models x datasets; `columns` are the metric names in display order, `headline` the one
    the Markdown pivot shows."""

    task: str
    columns: list[str]
    headline: str
    rows: list[TableRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "columns": self.columns,
            "headline": self.headline,
            "rows": [asdict(row) for row in self.rows],
        }


def run_grid(
    models: Sequence[str],
    datasets: Sequence[str],
    out: Path,
    table: ResultTable,
    load: Callable[[str], Any],
    run_pair: Callable[[Any, str, str, Path], dict[str, Any]],
    summarize: Callable[[dict[str, Any]], dict[str, float | None]],
    check: Callable[[str], None] | None = None,
) -> ResultTable:
    """Run `run_pair(loaded_model, model, dataset, pair_out)` for every model (loaded once with `load`) and
    dataset, write each pair's document under `out`'s folder and the table beside `out` after each pair.

    Args:
        models, datasets: as given on the command line (names are kept as given in the table).
        out: RESULTS.json of the table; the pairs go to the folder of the same name without the suffix.
        table: the empty table (task, columns, headline) to fill.
        load: model name -> the loaded model (a `Clip`).
        run_pair: runs one pair and writes its document to `pair_out`; returns the document.
        summarize: a pair's document -> its figures, keyed by `table.columns`.
        check: run on every dataset before any model loads, so that a missing file of the last dataset is
            named at once rather than after the first pairs' minutes of work.
    """
    check_unique(models, "--model")
    check_unique(datasets, "--data")
    for data in datasets if check is not None else ():
        check(data)
    folder = out.with_suffix("")
    for model in models:
        loaded = load(model)
        for data in datasets:
            pair_out = folder / f"{len(table.rows):02d}-{slug(model)}--{slug(data)}.json"
            document = run_pair(loaded, model, data, pair_out)
            table.rows.append(TableRow(model, data, summarize(document), str(pair_out)))
            if is_main_process():  # under `accelerate launch` every process has the figures; one writes
                write_table(table, out)
    return table


def write_table(table: ResultTable, out: Path) -> None:
    """RESULTS.json, RESULTS.csv and RESULTS.md, each written whole or not at all."""
    write_json_atomic(out, table.to_json())
    write_text_atomic(out.with_suffix(".csv"), to_csv(table))
    write_text_atomic(out.with_suffix(".md"), to_markdown(table))


def to_csv(table: ResultTable) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "data", "task", *table.columns])
    for row in table.rows:
        writer.writerow(
            [row.model, row.data, table.task, *(_csv_value(row.metrics.get(c)) for c in table.columns)]
        )
    return buffer.getvalue()


def to_markdown(table: ResultTable) -> str:
    """The headline metric as models x datasets, then every metric of every pair."""
    models = list(dict.fromkeys(row.model for row in table.rows))
    datasets = list(dict.fromkeys(row.data for row in table.rows))
    cell = {(row.model, row.data): row.metrics.get(table.headline) for row in table.rows}
    lines = [f"# {table.task}: {table.headline}", "", "| model | " + " | ".join(map(_md, datasets)) + " |"]
    lines.append("|---" * (len(datasets) + 1) + "|")
    for model in models:
        values = [_md_value(cell.get((model, data))) for data in datasets]
        lines.append(f"| {_md(model)} | " + " | ".join(values) + " |")
    lines += ["", "| model | data | " + " | ".join(table.columns) + " |"]
    lines.append("|---" * (len(table.columns) + 2) + "|")
    for row in table.rows:
        values = [_md_value(row.metrics.get(c)) for c in table.columns]
        lines.append(f"| {_md(row.model)} | {_md(row.data)} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def slug(name: str, limit: int = 60) -> str:
    """A file-name-safe form of a model name or dataset path (`openai/clip-vit-base-patch32` ->
    `openai-clip-vit-base-patch32`, `runs/demo/world/val` -> `runs-demo-world-val`)."""
    text = re.sub(r"[^A-Za-z0-9._]+", "-", name).strip("-.")
    return (text or "x")[-limit:]


def check_unique(names: Sequence[str], option: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise VlkitError(f"{option}: {name!r} given twice")
        seen.add(name)
    if not names:
        raise VlkitError(f"{option}: give at least one")


def _csv_value(value: float | None) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else repr(float(value))


def _md_value(value: float | None) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def _md(text: str) -> str:
    return text.replace("|", "\\|")
