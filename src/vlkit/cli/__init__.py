"""The `vlkit` command (typer): one module per command group; each parses its options, builds the library's
dataclasses, calls a pipeline and prints. Library modules load when a command runs, not for `--help`."""
