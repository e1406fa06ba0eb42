"""The report as files and lines: it says what was tested, where, when and how; an unmeasured figure
is never "nan"; its charts give every series its own colour-blind-safe colour, keep the legend off
the data and leave room for every label."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator

import pytest
from load_servers import HttpServer, refused_address

from studio.core.loadtest import report as loadreport
from studio.core.loadtest.engine import run_in_this_process
from studio.core.loadtest.plan import LoadPlan
from studio.core.loadtest.results import LoadReport, SweepReport, SweepStep

pytestmark = pytest.mark.timeout(60)

NAN = re.compile(r"\bnan\b", re.IGNORECASE)
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def measured() -> LoadReport:
    with HttpServer() as server:
        report = run_in_this_process(LoadPlan(server.url, connections=2, duration_s=1.0,
                                              model="wine_classifier"))
    assert report.completed > 0
    return report


@pytest.fixture(scope="module")
def unmeasured() -> Iterator[LoadReport]:
    sock, url = refused_address()
    try:
        yield run_in_this_process(LoadPlan(url, connections=2, duration_s=0.3))
    finally:
        sock.close()


@pytest.fixture
def sweep_report() -> SweepReport:
    nan = float("nan")
    return SweepReport(50.0, [SweepStep(100, 99, 1.0, 4.0, 0, 0, True, ""),
                              SweepStep(150, 120, nan, nan, 30, 0, False, "30 errors")],
                       100.0, 400.0, plan="4 connections, 3 s a step, /predict, random rows",
                       url="http://127.0.0.1:8000", model="wine_classifier",
                       started_at="2026-05-20T17:00:00+00:00")


def charts(page: str) -> list[ElementTree.Element]:
    return [ElementTree.fromstring(svg) for svg in re.findall(r"<svg.*?</svg>", page, re.S)]


def test_the_report_names_the_model_the_url_the_date_and_the_plan(measured):
    page = loadreport.html_report(measured)
    about = dict(loadreport.about_rows(measured))
    assert about["Model"] == "wine_classifier"
    assert about["URL"] == measured.url and measured.url.startswith("http://127.0.0.1:")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", about["Started"])
    assert about["Plan"] == measured.plan == "2 connections, closed loop, 1 s, /predict, " \
                                             "the model's sample request"
    for text in ("Load test of wine_classifier", measured.url, about["Started"], measured.plan):
        assert html.escape(text) in page


def test_a_sweep_report_names_them_too(sweep_report):
    page = loadreport.sweep_html(sweep_report)
    for text in ("Rate sweep of wine_classifier", "http://127.0.0.1:8000",
                 "2026-05-20 17:00:00 UTC", "4 connections, 3 s a step"):
        assert html.escape(text) in page
    assert not NAN.search(page)


def test_nothing_measured_is_never_nan(unmeasured, tmp_path):
    assert unmeasured.completed == 0 and unmeasured.errors > 0
    lines = [text for row in loadreport.summary_rows(unmeasured) for text in row]
    assert not [line for line in lines if NAN.search(line)]
    assert "p50 / p90 / p99" in " ".join(lines) and "–" in " ".join(lines)
    for name in ("report.html", "report.csv", "report.json"):
        text = loadreport.save(unmeasured, tmp_path / name).read_text(encoding="utf-8")
        assert not NAN.search(text), name


def test_no_two_series_of_a_chart_share_a_colour(measured, sweep_report):
    palette = set(loadreport.SERIES_COLORS)
    for page in (loadreport.html_report(measured), loadreport.sweep_html(sweep_report)):
        for chart in charts(page):
            swatches = [rect.get("fill") for rect in chart.iter(f"{SVG}rect")]
            lines = {line.get("stroke") for line in chart.iter(f"{SVG}polyline")}
            assert len(swatches) == len(set(swatches)) >= 1
            assert set(swatches) <= palette and lines <= set(swatches)
    many = [f"series {i}" for i in range(len(palette))]
    assert len(set(loadreport.series_colors(many))) == len(palette)
    # a series keeps its usual colour; one that asks for a taken colour gets a free one
    assert loadreport.series_colors(["p50", "latency"])[0] == loadreport.OKABE_ITO["blue"]
    assert len(set(loadreport.series_colors(["p50", "latency"]))) == 2


def _number(value: str | None) -> float:
    return float(value or 0)


def test_legends_stay_off_the_data_and_no_label_is_clipped(measured, sweep_report):
    for page in (loadreport.html_report(measured), loadreport.sweep_html(sweep_report)):
        for chart in charts(page):
            width, height = _number(chart.get("width")), _number(chart.get("height"))
            frames = [line for line in chart.iter(f"{SVG}line") if line.get("class") == "frame"]
            if not frames:
                continue  # "no data"
            plot_top = min(_number(line.get("y1")) for line in frames)
            legend_bottom = max(_number(rect.get("y")) + _number(rect.get("height"))
                                for rect in chart.iter(f"{SVG}rect"))
            assert legend_bottom < plot_top
            for line in chart.iter(f"{SVG}polyline"):
                ys = [float(point.split(",")[1]) for point in line.get("points").split()]
                assert min(ys) >= plot_top
            for text in chart.iter(f"{SVG}text"):
                if text.get("transform"):  # the y axis's name, turned a quarter: upright
                    half = loadreport.text_width(text.text) / 2
                    centre = _number(text.get("y"))
                    assert plot_top <= centre - half and centre + half <= height, text.text
                    assert _number(text.get("x")) >= loadreport.FONT_PX["axis"]
                    continue
                x, drawn = _number(text.get("x")), loadreport.text_width(
                    text.text, text.get("class") or "axis")
                left = {"end": x - drawn, "middle": x - drawn / 2}.get(
                    text.get("text-anchor") or "", x)
                right = left + drawn
                assert left >= 0 and right <= width, text.text
