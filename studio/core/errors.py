"""One family of errors, each written for a person: what went wrong and what to do next.

`message` is the sentence shown in the page that caused the error, `hint` the next step, and
`detail` the technical story (a child process's stderr, a library's own message) that goes only to
the log view or to `--verbose` output.
"""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none): libraries put the
    reason there and a stack of context below it, which belongs in `detail`."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class StudioError(Exception):
    """Something the user can understand and act on."""

    def __init__(self, message: str, hint: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} {self.hint}"


class ModelLoadError(StudioError):
    """The file or folder is not a model Slipway can load."""


class TrustRequired(StudioError):
    """Loading this file would run code from it; the user has to say they trust it first.

    `reasons` lists what the file would import or instantiate, so the person deciding can see it.
    """

    def __init__(self, message: str, hint: str | None = None, reasons: list[str] | None = None):
        super().__init__(message, hint)
        self.reasons = list(reasons or [])


class Cancelled(Exception):
    """The user cancelled a long operation. Not an error: pages simply return to idle."""
