"""Error types that decide padtui's exit codes.

`InputError` is bad input the user can fix (exit 2, one paragraph, no traceback); `RunFailure` is a failure
inside a run (exit 1, message + where the log is). Everything else is a bug and keeps its traceback.
"""


class InputError(Exception):
    """Bad input: names the culprit (file / key / column / id) and how to fix it."""


class RunFailure(Exception):
    """A run failed after it started (NaN loss, out of memory, disk full...)."""

    def __init__(self, message: str, log: str | None = None):
        super().__init__(message)
        self.log = log


class Interrupted(Exception):
    """SIGTERM / SIGINT reached the worker; a checkpoint was saved and the run can be resumed."""


class ResumeRefused(InputError):
    """A resume that would continue on other data than the run started with: the run itself is untouched."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's first message line (at most `limit` characters), or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
