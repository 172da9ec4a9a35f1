"""The `vlkit` command: assembles the command groups and turns `VlkitError` into one line and exit code 2.

typer parses and renders help; each command group lives in its own module and only parses arguments,
builds the library's dataclasses, calls the library and prints.
"""

from __future__ import annotations

import logging
import os
import sys

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from vlkit.cli import app as app_cli
from vlkit.cli import caption as caption_cli
from vlkit.cli import clip as clip_cli
from vlkit.cli import convert as convert_cli
from vlkit.cli import data as data_cli
from vlkit.cli import demo as demo_cli
from vlkit.cli import evaluate as evaluate_cli
from vlkit.cli import lm as lm_cli
from vlkit.cli import probe as probe_cli
from vlkit.cli import report as report_cli
from vlkit.cli import retrieval as retrieval_cli
from vlkit.cli import standins as standins_cli
from vlkit.cli import video as video_cli
from vlkit.cli import vilbert as vilbert_cli
from vlkit.cli import zeroshot as zeroshot_cli
from vlkit.errors import ConfigError, VlkitError
from vlkit.runtime import progress
from vlkit.runtime.distributed import end_process_group
from vlkit.runtime.options import flag_of

app = typer.Typer(
    name="vlkit",
    help="Study and build vision-language models: CLIP zero-shot prompt analysis, parameter-efficient "
    "captioning, caption metrics and attention maps.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(data_cli.app, name="data")
app.add_typer(clip_cli.app, name="clip")
app.add_typer(lm_cli.app, name="lm")
app.add_typer(caption_cli.app, name="caption")
app.add_typer(standins_cli.app, name="standins")
app.add_typer(convert_cli.app, name="convert")
app.add_typer(vilbert_cli.app, name="vilbert")
app.add_typer(video_cli.app, name="video")
app.command(name="zeroshot")(zeroshot_cli.zeroshot)
app.command(name="retrieval")(retrieval_cli.retrieval)
app.command(name="probe")(probe_cli.probe)
app.command(name="demo")(demo_cli.demo)
app.command(name="evaluate")(evaluate_cli.evaluate)
app.command(name="report")(report_cli.report)
app.command(name="app")(app_cli.app)

_state = {"debug": False}
err_console = Console(stderr=True)


@app.callback()
def _root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars and no info logging."),
    allow_pickle: bool = typer.Option(
        False,
        "--allow-pickle",
        help="Also load pickled weights (pytorch_model.bin) of a model folder, with "
        "torch.load(weights_only=True); safetensors is preferred where both exist.",
    ),
) -> None:
    _state["debug"] = debug
    ctx.obj = {"allow_pickle": allow_pickle}  # read by the commands through vlkit.cli.context
    progress.set_enabled(not quiet)
    quiet_transformers()
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )


def quiet_transformers() -> None:
    """transformers' own "Loading weights" bars and notices would interleave with ours; its errors still
    show. Set through the environment it reads at import, so that a command's help loads no transformers."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # already imported (a test, a notebook): tell it directly
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()


def as_option_error(exc: VlkitError) -> str:
    """The error as a command-line user reads it: a config field at fault is named by its option
    (`DecodingConfig.num_beams: ...` becomes `--beams: ...`)."""
    if isinstance(exc, ConfigError):
        flag = flag_of(exc.owner, exc.field)
        if flag:
            return f"{flag.split('/')[0]}: {exc.problem}"
    return str(exc)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = app(args=argv, standalone_mode=False)
    except VlkitError as exc:
        if debug:
            raise
        # escaped: a message quotes file contents and paths, whose brackets are no rich markup
        message = escape(as_option_error(exc))
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        raise SystemExit(130) from None
    except SystemExit:
        raise
    except Exception as exc:
        # click's usage errors (typer vendors click, so match by behaviour rather than by class)
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        if type(exc).__name__ == "Abort":
            raise SystemExit(1) from None
        raise
    finally:
        end_process_group()
    if isinstance(code, int) and code != 0:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
