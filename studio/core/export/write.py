"""Writing an export: its checks first, then each file whole, or nothing at all.

`check_export` runs every check of validate.py on the documents before they are anywhere a person
would pick them up; `write_export` refuses an export whose report failed, so a folder of manifests
the studio wrote is one that passed.
"""

from __future__ import annotations

from pathlib import Path

from studio.core.errors import ExitStatus, StudioError
from studio.core.export.documents import Export
from studio.core.export.findings import Report
from studio.core.export.validate import check_documents
from studio.core.files import write_text
from studio.core.tasks import Progress


class ExportCheckFailed(StudioError):
    """The manifests failed a check; `report` holds every finding. Nothing was written."""

    exit_status = ExitStatus.CHECKS_FAILED

    def __init__(self, report: Report):
        count = len(report.findings)
        super().__init__(f"The manifests failed {count} check{'s' if count != 1 else ''}: "
                         + "; ".join(f.line() for f in report.findings[:3])
                         + ("…" if count > 3 else ""),
                         "Nothing was written. Change the options, or report the failing check "
                         "as a bug in Slipway Studio.")
        self.report = report


def check_export(export: Export, progress: Progress | None = None) -> Report:
    """Every check on the export's documents, with what the export itself should say."""
    report = check_documents({d.path: d.text() for d in export.documents},
                             export.options.kubernetes_version, progress)
    report.notes[:0] = list(export.model.notes)
    return report


def write_export(export: Export, folder: str | Path, report: Report) -> list[Path]:
    """Write every document under `folder`; ExportCheckFailed (nothing written) unless `report`,
    the export's own check, passed."""
    if not report.passed:
        raise ExportCheckFailed(report)
    folder = Path(folder)
    return [write_text(folder / document.path, document.text()) for document in export.documents]
