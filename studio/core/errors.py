"""One family of errors, each written for a person: what went wrong and what to do next.

`message` is the sentence shown in the page that caused the error, `hint` the next step, and
`detail` the technical story (a child process's stderr, a library's own message) that goes only to
the log view or to `--verbose` output. `exit_status` is what `slipway` ends with when the error
stops a command.

The family (each class lives with the stage that raises it; a test holds this table to the code):

    class               exit  module                          raised when
    StudioError            1  core/errors.py                  (the base: something failed)
    ModelLoadError         3  core/errors.py                  the file is not a model Slipway loads
    TrustRequired          3  core/errors.py                  loading it would run the file's code
    WriteError             1  core/files.py                   an output file cannot be written
    DatasetError           3  core/model/datasets.py          reference rows cannot be read
    ConversionError        3  core/optimize/convert.py        a model has no ONNX conversion
    OptimizationError      3  core/optimize/optimize.py       an optimization cannot run
    BundleError            1  core/serve/bundle.py            the build context cannot be written
    DeploymentError        1  core/serve/runtimes/base.py     a server cannot be built or started
    ServerUnreachable      1  core/serve/client.py            nothing answers at the URL
    LoadTestError          2  core/loadtest/plan.py           a load test's plan cannot run
    PayloadError           2  core/loadtest/payloads.py       request bodies cannot be made
    MetricsError           1  core/monitor/scrape.py          a metrics endpoint does not answer
    ProfileError           2  core/monitor/reference.py       a file is not a reference profile
    DriftError             2  core/monitor/drift.py           live counts are on other bins
    BatchError             2  core/batch/options.py           a batch run's data, output or model cannot be used
    BadRowError            2  core/batch/rows.py              a row does not fit the model, and bad rows are fatal
    ExportOptionsError     2  core/export/options.py          an export option cannot be used
    ExportCheckFailed      5  core/export/write.py            exported manifests failed a check
    VersionError           2  core/versions/registry.py       no version answers a reference, or a move is refused
    RegistryError          1  core/versions/database.py       the registry or a stored model is damaged
    CompareError           2  core/versions/compare_inputs.py two versions cannot be compared as asked

`Cancelled` is not an error: the user asked to stop, and pages return to idle (`slipway` exits 130).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Literal


class ExitStatus(IntEnum):
    """What `slipway` exits with."""

    OK = 0
    FAILED = 1
    """A build, a server or a request failed."""
    USAGE = 2
    """Bad usage: an option, a plan, a payload or a profile that cannot be used."""
    NOT_LOADABLE = 3
    """Not a model that can be loaded or converted, or an optimization that cannot help it."""
    PARITY_FAILED = 4
    """The new model was written but failed its parity check."""
    CHECKS_FAILED = 5
    """Manifests failed a validation or lint check (nothing was exported)."""
    CANCELLED = 130
    """Ctrl-C, as a shell reports SIGINT."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none): libraries put the
    reason there and a stack of context below it, which belongs in `detail`."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class StudioError(Exception):
    """Something the user can understand and act on."""

    exit_status: ClassVar[ExitStatus] = ExitStatus.FAILED

    def __init__(self, message: str, hint: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} {self.hint}"


class ModelLoadError(StudioError):
    """The file or folder is not a model Slipway can load."""

    exit_status = ExitStatus.NOT_LOADABLE


Verdict = Literal["dangerous", "unnamed", "listed"]


@dataclass(frozen=True)
class TrustFinding:
    """One thing a file would import or instantiate, with the studio's verdict on it: `dangerous`
    (a known way to run programs or code, or to reach files or the network; `why` says which),
    `unnamed` (something the scan cannot name, or a part of the file it could not read) or
    `listed`."""

    name: str
    verdict: Verdict = "listed"
    why: str = ""


class TrustRequired(StudioError):
    """Loading this file would run code from it; the user has to say they trust it first.

    `reasons` lists what the file would import or instantiate, so the person deciding can see it;
    `findings` holds the same with a verdict on each (plain `listed` ones when only reasons are
    given).
    """

    exit_status = ExitStatus.NOT_LOADABLE

    def __init__(self, message: str, hint: str | None = None, reasons: list[str] | None = None,
                 findings: list[TrustFinding] | None = None):
        super().__init__(message, hint)
        self.findings = list(findings) if findings is not None else [
            TrustFinding(reason) for reason in reasons or []]
        self.reasons = list(reasons) if reasons is not None else [f.name for f in self.findings]


class Cancelled(Exception):
    """The user cancelled a long operation. Not an error: pages simply return to idle."""
