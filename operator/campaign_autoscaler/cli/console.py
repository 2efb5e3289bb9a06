"""Where the commands write: one error line on stderr, a console on stdout."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def _fail(message: object, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _stdout_console() -> Console:
    from rich.console import Console

    # Piped output is not wrapped at 80 columns: the tables stay whole for grep and diff.
    return Console(file=sys.stdout, highlight=False, width=None if sys.stdout.isatty() else 250)
