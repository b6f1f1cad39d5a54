"""Where the command line prints: a terminal gets rich's usual layout; a pipe or a file gets whole lines.
Commands look the consoles up at call time (`output.console`), so a caller can swap them."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.text import Text


def _console(stderr: bool = False) -> Console:
    """A terminal gets rich's usual layout; a pipe or a file gets whole lines — no cut cells, no wrapping at 80."""
    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    return Console(stderr=stderr, highlight=False, width=None if tty else 1000, soft_wrap=not tty)


console = _console()
err = _console(stderr=True)


def say_error(label: str, message: str, style: str = "bold red") -> None:
    """User text is printed verbatim (no rich markup: a path like `runs/[old]` must survive)."""
    err.print(Text.assemble((label, style), message), soft_wrap=True)
