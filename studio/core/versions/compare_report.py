"""Comparisons as text a person reads in a terminal: `slipway compare` and `slipway shadow` print
these, and every figure says what it was computed over."""

from __future__ import annotations

from studio.core.units import figure, human_size, printable, text_table
from studio.core.versions.compare_live import FigureRow, LiveComparison, Spread
from studio.core.versions.compare_offline import OfflineComparison
from studio.core.versions.compare_stats import MetricComparison, Quality
from studio.core.versions.shadow import ShadowCounters


def _percent_change(a: float, b: float) -> str:
    return f"{(b - a) / a:+.0%}" if a else "–"


def facts_rows(comparison: OfflineComparison) -> list[list[str]]:
    """The side-by-side columns: each version's file, and how B differs."""
    a, b = comparison.a, comparison.b
    rows = [["", "A", "B", "B vs A"],
            ["model", printable(a.title[3:]), printable(b.title[3:]), ""],
            ["format", a.format, b.format, "" if a.format == b.format else "differs"],
            ["file size", human_size(a.file_size), human_size(b.file_size),
             _percent_change(a.file_size, b.file_size)]]
    if (a.onnx_size, b.onnx_size) != (a.file_size, b.file_size):
        rows.append(["ONNX size", human_size(a.onnx_size), human_size(b.onnx_size),
                     _percent_change(a.onnx_size, b.onnx_size)])
    rows += [["opsets", _opsets(a.opsets), _opsets(b.opsets),
              "" if a.opsets == b.opsets else "differ"],
             ["IR version", str(a.ir_version), str(b.ir_version), ""],
             ["producer", a.producer, b.producer, ""],
             ["nodes", f"{a.node_count:,}", f"{b.node_count:,}",
              f"{b.node_count - a.node_count:+,}"],
             ["parameters", f"{a.parameter_count:,}", f"{b.parameter_count:,}",
              _percent_change(a.parameter_count, b.parameter_count)]]
    latency_a, latency_b = comparison.latency_a, comparison.latency_b
    if latency_a is not None and latency_b is not None:
        rows += [["1 row (ms, median)", f"{latency_a.single_row_ms:.4f}",
                  f"{latency_b.single_row_ms:.4f}",
                  _ratio(latency_a.single_row_ms, latency_b.single_row_ms)],
                 [f"{latency_a.batch_rows} rows (ms, median)", f"{latency_a.batch_ms:.3f}",
                  f"{latency_b.batch_ms:.3f}", _ratio(latency_a.batch_ms, latency_b.batch_ms)]]
    return rows


def _opsets(opsets: dict[str, int]) -> str:
    return ", ".join(f"{domain} {version}" for domain, version in sorted(opsets.items()))


def _ratio(a: float, b: float) -> str:
    return f"× {b / a:.2f}" if a else "–"


def metric_cells(metric: MetricComparison) -> list[str]:
    """metric, A, B, B − A, the interval (or why there is none)."""
    if metric.difference is None:
        return [metric.metric, figure(metric.a, ".4f"), figure(metric.b, ".4f"), "–",
                metric.note or ""]
    interval = (f"[{metric.low:+.4f}, {metric.high:+.4f}]" if metric.low is not None
                else "not defined")
    return [metric.metric, f"{metric.a:.4f}", f"{metric.b:.4f}", f"{metric.difference:+.4f}",
            interval]


def quality_lines(quality: Quality) -> list[str]:
    level = f"{quality.confidence:.0%}"
    lines = [f"Quality against '{printable(quality.target)}' on {quality.rows} rows "
             f"(B − A with a {level} paired bootstrap interval, {quality.resamples} resamples, "
             f"seed {quality.seed}):"]
    rows = [["metric", "A", "B", "B − A", f"{level} interval"]]
    rows += [metric_cells(m) for m in quality.metrics]
    lines += text_table(rows)
    test = quality.mcnemar
    if test is not None:
        statistic = f", χ² {test.statistic:.3f}" if test.statistic is not None else ""
        lines.append(f"  McNemar ({test.method}): only A right on {test.only_a_right} rows, only "
                     f"B right on {test.only_b_right}{statistic}, p = {test.p_value:.4g}")
    return lines


def offline_lines(comparison: OfflineComparison) -> list[str]:
    lines = [f"{comparison.a.title}    {comparison.b.title}", ""]
    lines += text_table(facts_rows(comparison))
    lines.append("")
    if comparison.schema_changes:
        lines.append("Schema differences:")
        lines += text_table([["part", "name", "change", "A", "B"]] + [
            [c.part, printable(c.name), c.change, c.a or "", c.b or ""]
            for c in comparison.schema_changes])
    else:
        lines.append("Schemas: the same inputs, outputs, features and classes.")
    changed = [(op, a, b) for op, a, b in comparison.operators if a != b]
    if changed:
        lines.append("Operators that differ (A → B): " + ", ".join(
            f"{op} {a}→{b}" for op, a, b in changed))
    lines.append("")
    if comparison.predictions_note:
        lines.append(comparison.predictions_note)
        return lines
    lines.append(f"Predictions on {comparison.rows_from}:")
    labels = comparison.labels
    if labels is not None:
        lines.append(f"  labels agree on {labels.agreed} of {labels.rows} rows "
                     f"({labels.agreement:.2%}); A's labels down, B's across:")
        lines += text_table([["A \\ B", *map(printable, labels.classes)]] + [
            [printable(name), *map(str, row)] for name, row in zip(labels.classes,
                                                                     labels.confusion)],
            indent="    ")
    for output in comparison.outputs:
        if output.max_abs_diff is None:
            lines.append(f"  {output.name}: {output.note}")
        else:
            lines.append(f"  {output.name}: max |B − A| {output.max_abs_diff:.3g}, mean "
                         f"{output.mean_abs_diff:.3g}" + (f" ({output.note})" if output.note
                                                          else ""))
    if comparison.disagreeing:
        lines.append("  rows that disagree most (row: A → B, largest |B − A|):")
        for row in comparison.disagreeing[:10]:
            mark = " label changed" if row.labels_differ else ""
            lines.append(f"    {row.row}: {printable(row.a)} → {printable(row.b)}, "
                         f"{figure(row.difference, '.3g')}{mark}")
    if comparison.quality is not None:
        lines.append("")
        lines += quality_lines(comparison.quality)
    elif comparison.quality_note:
        lines.append(comparison.quality_note)
    return lines


def _spread(spread: Spread, spec: str) -> str:
    if spread.median is None:
        return "–"
    return f"{spread.median:{spec}} ({spread.low:{spec}}–{spread.high:{spec}})"


def figure_cells(row: FigureRow) -> list[str]:
    spec = ".2f" if row.unit == "ms" else ",.0f"
    return [f"{row.name} ({row.unit})", _spread(row.a, spec), _spread(row.b, spec),
            _spread(row.ratio, ".2f")]


def live_lines(comparison: LiveComparison) -> list[str]:
    lines = [f"{comparison.a_title} at {comparison.a_url}    {comparison.b_title} at "
             f"{comparison.b_url} ({comparison.runtime} runtime)", comparison.plan, "",
             "Median over rounds (range):"]
    rows = [["", "A", "B", "B / A per round"]]
    rows += [figure_cells(row) for row in comparison.latency]
    if comparison.throughput is not None:
        rows.append(figure_cells(comparison.throughput))
    lines += text_table(rows)
    if comparison.servers:
        lines += ["", "As each server counted itself (its own /metrics, over the rounds):"]
        rows = [["", "version", "requests", "p50 (ms)", "p99 (ms)", "inference p50 (ms)",
                 "CPU (s)"]]
        rows += [[s.side, s.version or "–", figure(s.requests, ",.0f"), figure(s.p50_ms, ".2f"),
                  figure(s.p99_ms, ".2f"), figure(s.inference_p50_ms, ".3f"),
                  figure(s.cpu_seconds, ".1f")] for s in comparison.servers]
        lines += text_table(rows)
    answers = comparison.answers
    if answers is not None and answers.examples:
        lines += ["", "Answers that differ:"] + [f"  {printable(e)}" for e in answers.examples]
    lines += ["", comparison.verdict]
    return lines


def shadow_line(counters: ShadowCounters) -> str:
    b_p50, b_p99 = counters.quantile_ms("b", 0.5), counters.quantile_ms("b", 0.99)
    a_p50 = counters.quantile_ms("a", 0.5)
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(counters.disagreed_by.items()))
    errors = ", ".join(f"{n} {k}" for k, n in sorted(counters.b_errors_by.items()))
    return (f"{counters.elapsed_s:6.0f} s  answered {counters.answered:,}  mirrored "
            f"{counters.mirrored:,}  agreed {counters.agreed:,}  disagreed {counters.disagreed:,}"
            f"{f' ({kinds})' if kinds else ''}  B errors {counters.b_errors:,}"
            f"{f' ({errors})' if errors else ''}  skipped {counters.skipped:,}  "
            f"p50 A {figure(a_p50, '.2f', ' ms')} B {figure(b_p50, '.2f', ' ms')}  "
            f"p99 B {figure(b_p99, '.2f', ' ms')}")
