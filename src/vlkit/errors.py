"""The one user-facing error type.

Library code raises `VlkitError` with a message that names the file, entry, field or option at fault; the
CLI turns it into one line on stderr and exit code 2 (`--debug` shows the traceback).
"""

from __future__ import annotations


class VlkitError(Exception):
    """Bad input or an impossible request, explained in one line that names what is at fault."""


class ConfigError(VlkitError):
    """A config field with a value it cannot take, named as the library knows it (`DecodingConfig.num_beams`).

    The CLI reports it under the option that sets the field (`--beams`), which the field's metadata names.
    """

    def __init__(self, owner: type, field: str, problem: str):
        super().__init__(f"{owner.__name__}.{field}: {problem}")
        self.owner, self.field, self.problem = owner, field, problem
