"""Every `vlkit ...` command the README and docs/ show names a real command and only options it has.

The commands that train on real weights cannot run here (no hub), so each is checked against the CLI itself:
its command path exists, and each `--option` is one of that command's (or a root option before it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from vlkit.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _command_lines(text: str) -> list[str]:
    """`vlkit ...` lines of code blocks (with their backslash continuations) and of inline code."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [line.strip() for line in joined.splitlines() if line.strip().startswith("vlkit ")]
    lines += re.findall(r"`(vlkit [^`]+)`", joined)
    return [line.split("#")[0].strip() for line in lines]


def _options(command) -> set[str]:
    return {name for param in command.params for name in (*param.opts, *param.secondary_opts)}


def _check(line: str, root) -> list[str]:
    words = line.replace("\\|", " ").split()[1:]
    problems, command, options = [], root, set(_options(root))
    for word in words:  # the command path: words naming subcommands, after any root options
        if word.startswith("-"):
            continue
        sub = getattr(command, "commands", {}).get(word)
        if sub is None:
            break
        command, options = sub, options | _options(sub)
    positional = [word for word in words if not word.startswith("-")]
    placeholder = not positional or positional[0].isupper() or positional[0] == "..."  # `vlkit COMMAND ...`
    if getattr(command, "commands", None) and not placeholder:
        problems.append(f"{line!r}: no command named after {command.name!r}")
    for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", line):
        if flag not in options:
            problems.append(f"{line!r}: {command.name} has no option {flag}")
    return problems


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_documented_commands_exist_with_the_options_they_show(document):
    root = typer.main.get_command(app)
    lines = _command_lines(document.read_text())
    problems = [problem for line in lines for problem in _check(line, root)]
    assert not problems, "\n".join(problems)


def test_the_check_catches_an_option_a_command_lacks():
    root = typer.main.get_command(app)
    assert _check("vlkit clip train --data W --out M --scene-captions", root) == []
    assert _check("vlkit clip train --data W --out M --scene-caption", root)
    assert _check("vlkit caption sweeps --out S.json", root)
    assert _check("vlkit --allow-pickle COMMAND ...", root) == []
