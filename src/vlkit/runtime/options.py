"""Config dataclasses as plain data: fields that carry their CLI flag and help, checks that name the field,
and JSON round trips for nested configs.

A field made with `option(default, "--flag", "help")` is one declaration of a setting: the library reads its
value, the CLI builds its option from the metadata (`vlkit.cli.options`), and a `ConfigError` raised by a
check names the field, which the CLI turns into the flag. Imports nothing but the standard library.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterator
from typing import Any

from vlkit.errors import ConfigError, VlkitError

MISSING: Any = dataclasses.MISSING


def option(
    default: Any = MISSING,
    flag: str | None = None,
    help: str = "",
    *,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field with its CLI flag and help text in its metadata (`flag=None`: not a CLI option)."""
    metadata = {"help": help, **({"flag": flag} if flag else {})}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def require(owner: Any, name: str, ok: bool, problem: str) -> None:
    """Raise `ConfigError` naming `type(owner).name` unless `ok`."""
    if not ok:
        raise ConfigError(owner if isinstance(owner, type) else type(owner), name, problem)


def positive(owner: Any, *names: str, allow_none: bool = False) -> None:
    """Each named field of `owner` is > 0 (or None, when allowed)."""
    for name in names:
        value = getattr(owner, name)
        if value is None and allow_none:
            continue
        require(owner, name, value is not None and value > 0, f"must be positive, got {value}")


def nested_fields(cls: type) -> dict[str, type]:
    """The fields of `cls` whose type is itself a dataclass: name -> that class."""
    hints = typing.get_type_hints(cls)
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(cls)
        if isinstance(hints[f.name], type) and dataclasses.is_dataclass(hints[f.name])
    }


def walk_options(
    cls: type, defaults: Any = None, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], dataclasses.Field, Any, Any]]:
    """(path, field, default, type) of every field of `cls` that has a flag, nested configs included. The
    default is `defaults`' value where an instance is given (a trainer's own loop settings), else the
    field's own; MISSING for a required field."""
    hints = typing.get_type_hints(cls)
    nested = nested_fields(cls)
    for f in dataclasses.fields(cls):
        if defaults is not None:
            value = getattr(defaults, f.name)
        elif f.default is not MISSING:
            value = f.default
        elif f.default_factory is not MISSING:
            value = f.default_factory()
        else:
            value = MISSING
        if f.name in nested:
            yield from walk_options(nested[f.name], None if value is MISSING else value, (*path, f.name))
        elif "flag" in f.metadata:
            yield (*path, f.name), f, value, hints[f.name]


def config_from_dict(cls: type, data: dict[str, Any], source: str) -> Any:
    """Rebuild a config (nested configs too) from its JSON form; an unknown field is an error naming
    `source` (the file or option it came from)."""
    if not isinstance(data, dict):
        raise VlkitError(f"{source}: expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise VlkitError(f"{source}: unknown field {unknown[0]!r} of {cls.__name__}")
    nested = nested_fields(cls)
    values = {
        name: config_from_dict(nested[name], value, source) if name in nested and value is not None else value
        for name, value in data.items()
    }
    try:
        return cls(**values)
    except TypeError as exc:  # a required field absent
        raise VlkitError(f"{source}: {cls.__name__}: {exc}") from None


def flag_of(owner: type, name: str) -> str | None:
    """The CLI flag that sets `owner.name`, if it has one."""
    for f in dataclasses.fields(owner):
        if f.name == name:
            return f.metadata.get("flag")
    return None
