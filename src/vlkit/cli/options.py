"""CLI options built from config fields: one declaration per setting.

A config's fields carry their flag and help (`vlkit.runtime.options.option`); `config_options` turns every
flagged field of a config class (nested configs included) into a typer option of a command, with the field's
default, or the trainer's own where a nested config has one, and hands the command the values as a nested
dict for `build`. typer reads a command's parameters from its signature, so the decorator writes the
signature; nothing else about the command changes.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Collection
from typing import Any

import typer

from vlkit.runtime.options import MISSING, config_from_dict, nested_fields, walk_options


def _param_name(flag: str) -> str:
    return flag.split("/")[0].lstrip("-").replace("-", "_")


def config_options(
    cls: type,
    param: str = "values",
    *,
    only: Collection[str] | None = None,
    skip: Collection[str] = (),
    defaults: dict[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give the decorated command one option per flagged field of `cls`; the command's parameter `param`
    receives them as a nested dict (`{"loop": {"steps": 1000}, ...}`). `only`/`skip` select fields by
    flag name (`"steps"`), `defaults` overrides a default by flag name."""
    defaults = defaults or {}
    chosen = [
        (path, f, defaults.get(_param_name(f.metadata["flag"]), default), hint)
        for path, f, default, hint in walk_options(cls)
        if (only is None or _param_name(f.metadata["flag"]) in only)
        and _param_name(f.metadata["flag"]) not in skip
    ]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command)
        own = [p for p in signature.parameters.values() if p.name != param]
        added = {}
        for path, f, default, hint in chosen:
            name = _param_name(f.metadata["flag"])
            added[name] = path
            option = typer.Option(
                ... if default is MISSING else default,
                f.metadata["flag"],
                help=f.metadata["help"],
                show_default=default is not MISSING,
            )
            own.append(
                inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=hint)
            )

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            values: dict[str, Any] = {}
            for name, path in added.items():
                node = values
                for key in path[:-1]:
                    node = node.setdefault(key, {})
                node[path[-1]] = kwargs.pop(name)
            return command(**kwargs, **{param: values})

        run.__signature__ = signature.replace(parameters=own)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in own}
        return run

    return decorate


def build(cls: type, values: dict[str, Any], **fixed: Any) -> Any:
    """The config of `cls` from the options' nested values with `fixed` (nested dicts too) merged on top,
    over the defaults of its nested configs (a trainer's own loop settings, not `LoopConfig`'s)."""
    return config_from_dict(cls, _with_factory_defaults(cls, _merge(values, fixed)), cls.__name__)


def _merge(base: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in more.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def _with_factory_defaults(cls: type, given: dict[str, Any]) -> dict[str, Any]:
    data = dict(given)
    factories = {f.name: f.default_factory for f in dataclasses.fields(cls)}
    for name in nested_fields(cls):
        factory = factories[name]
        base = dataclasses.asdict(factory()) if factory is not MISSING else {}
        if name in given or base:
            data[name] = _merge(base, given.get(name, {}))
    return data
