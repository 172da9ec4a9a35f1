"""The source tree's shape: data flows one way through the tiers, nothing loose, no file over 400 lines.

Tiers, lowest first: runtime < data, shapes, metrics < models < zeroshot, probe, captioning < train < viz <
pipelines < cli. A module may import from its own tier or below; `vlkit.errors` is below them all and the
package root (`vlkit/__init__.py`, the lazy public API) imports nothing at import time.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "vlkit"
TIERS = {
    "errors": -1,
    "runtime": 0,
    "data": 1,
    "shapes": 1,
    "metrics": 1,
    "models": 2,
    "zeroshot": 3,
    "probe": 3,
    "captioning": 3,
    "train": 4,
    "viz": 5,
    "pipelines": 6,
    "cli": 7,
}
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_modules(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every vlkit import in `module`'s file, at any depth (lazy imports
    inside functions too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module.split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            names = [f"{name}.{alias.name}" for alias in node.names] if name == "vlkit" else [name]
            found += [(node.lineno, n) for n in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name == "vlkit" or name.startswith("vlkit.")]


def _tier(module: str) -> int | None:
    parts = module.split(".")
    return TIERS.get(parts[1]) if len(parts) > 1 else None


def test_nothing_but_the_api_and_the_error_type_is_loose_in_the_package():
    loose = sorted(p.name for p in SRC.glob("*.py"))
    assert loose == ["__init__.py", "errors.py"]
    assert sorted(p.name for p in SRC.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(
        name for name in TIERS if name != "errors"
    )


def test_every_module_imports_only_from_its_own_tier_or_below():
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        module = _module_name(path)
        if module == "vlkit":
            continue  # the lazy public API names modules of every tier, imported on first use
        own = _tier(module)
        assert own is not None, f"{module}: not in a tier"
        for line, imported in _imported_modules(path, module):
            tier = _tier(imported)
            if tier is None or tier > own:
                wrong.append(f"{path.relative_to(SRC.parent)}:{line}: {module} imports {imported}")
    assert not wrong, "imports against the data flow:\n" + "\n".join(wrong)


def test_no_source_file_is_over_400_lines():
    long = {
        str(p.relative_to(SRC.parent)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"files over {MAX_LINES} lines: {long}"


def test_the_tier_test_catches_an_import_against_the_flow(tmp_path):
    # The walker itself must see a lazy import inside a function, the kind the tiers forbid most often.
    module = tmp_path / "probe.py"
    module.write_text("def f():\n    from vlkit.pipelines.report import write_report\n")
    assert _imported_modules(module, "vlkit.metrics.probe") == [(2, "vlkit.pipelines.report")]
