"""`import vlkit`, `vlkit --help` and every `vlkit X --help` load neither torch nor transformers: the public
API is lazy (PEP 562) and the CLI builds its options from torch-free configs, importing the library only when
a command runs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import vlkit

HEAVY = ("torch", "transformers", "peft", "accelerate")


def _heavy_after(code: str) -> dict:
    script = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        print(json.dumps({{name: name in sys.modules for name in {HEAVY!r}}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_vlkit_loads_no_model_library():
    assert _heavy_after("import vlkit; vlkit.VlkitError; vlkit.ShapesConfig") == dict.fromkeys(HEAVY, False)


def test_the_help_of_every_command_loads_no_model_library():
    loaded = _heavy_after("""
        import click, typer
        from vlkit.cli.main import app, main

        def paths(command, prefix):
            yield prefix
            for name, sub in getattr(command, "commands", {}).items():
                yield from paths(sub, [*prefix, name])

        for path in paths(typer.main.get_command(app), []):
            try:
                main([*path, "--help"])
            except SystemExit as exit:
                assert exit.code in (0, None), (path, exit.code)
    """)
    assert loaded == dict.fromkeys(HEAVY, False)


def test_a_lazy_name_loads_its_module_on_first_use():
    assert _heavy_after("import vlkit; vlkit.load_clip")["torch"] is True


def test_every_public_name_resolves_and_says_what_it_is():
    for name in vlkit.__all__:
        value = getattr(vlkit, name)
        if name != "__version__":
            assert (value.__doc__ or "").strip(), f"vlkit.{name} has no docstring"
    assert set(dir(vlkit)) >= {
        "load_clip",
        "analyse_prompts",
        "build_captioner",
        "load_captioner",
        "train_captioner",
        "caption_images",
        "evaluate_captions",
        "attention_maps",
    }
