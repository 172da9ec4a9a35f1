"""The one user-facing error type.

Library code raises `VlkitError` with a message that names the file, entry, field or option at fault; the
CLI turns it into one line on stderr and exit code 2 (`--debug` shows the traceback).
"""

from __future__ import annotations


class VlkitError(Exception):
    """Bad input or an impossible request, explained in one line that names what is at fault."""
