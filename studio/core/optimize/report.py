"""The Optimize stage's reports as text: what `slipway convert` and `slipway optimize` print and
what the Optimize page shows for a selected step."""

from __future__ import annotations

from studio.core.units import human_size, text_table


def _number(value: float | None, spec: str = ".2e") -> str:
    return "-" if value is None else format(value, spec)


def parity_lines(report) -> list[str]:
    verdict = "pass" if report.passed else "FAIL"
    tol = report.tolerance
    # A regressor has no labels: its rule speaks only of the values it answers.
    rules = [f"values within atol {tol.atol:g} + rtol {tol.rtol:g} x |value|"]
    if report.label_agreement is not None:
        rules.append(f"labels kept >= {tol.min_label_agreement:.0%}")
    lines = [f"Parity on {report.rows} rows ({report.inputs}): {verdict}  ({'; '.join(rules)})"]
    rows = [["output", "role", "max |diff|", "mean |diff|", "agreement", "result"]]
    for o in report.outputs:
        agreement = "-" if o.label_agreement is None else f"{o.label_agreement:.2%}"
        rows.append([o.name, o.role, _number(o.max_abs_diff), _number(o.mean_abs_diff), agreement,
                     "pass" if o.passed else "FAIL"])
    lines += text_table(rows)
    for o in report.outputs:
        if o.ties:
            lines.append(f"  {o.ties} row(s) scored as ties by the original model may take either "
                         "label; they count as kept")
    for flip in report.flipped_rows[:5]:
        lines.append(f"  row {flip.row}: label {flip.original} became {flip.new}")
    if len(report.flipped_rows) > 5:
        lines.append(f"  ... {len(report.flipped_rows) - 5} more flipped rows (--json lists them)")
    return lines


def conversion_lines(report) -> list[str]:
    from pathlib import Path

    lines = [f"Converted {Path(report.source).name} -> {report.output_path} ({report.converter}, "
             f"opset {report.opset}, {human_size(report.file_size)}, {report.seconds:.1f} s)"]
    if report.latency_before and report.latency_after:
        lines.append(latency_line(report.latency_before, report.latency_after,
                                  f"{report.source_format} -> ONNX"))
    return lines + parity_lines(report.parity)


def latency_line(before, after, what: str) -> str:
    return (f"  latency  one row {before.single_row_ms:.4f} ms -> {after.single_row_ms:.4f} ms; "
            f"{before.batch_rows} rows {before.batch_ms:.3f} ms -> {after.batch_ms:.3f} ms "
            f"({what}, median, {before.threads} thread)")


def optimization_lines(report) -> list[str]:
    from studio.core.optimize.optimize import DESCRIPTIONS

    lines = [f"{report.optimization}: {DESCRIPTIONS[report.optimization]}"]
    if not report.applicable:
        return lines + [f"  {report.note}"]
    before, after = report.latency_before, report.latency_after
    lines += [
        f"  size     {human_size(report.size_before)} -> {human_size(report.size_after)} "
        f"({report.size_ratio:.0%} of the original)",
        latency_line(before, after, "before -> after"),
    ]
    if report.note:
        lines.append(f"  note     {report.note}")
    return lines + parity_lines(report.parity)
