"""Stage 5, Monitor: a served model's metrics and the drift of what it is asked.

    monitor.py      Monitor: one watched server (scrapes, its reference, figures, drift)
    view.py         what the Monitor page draws, computed off the GUI thread
    scrape.py       the one way to read a server's metrics: GET and parse Prometheus text
    promql.py       PromQL arithmetic on scrapes: increase, rate, histogram_quantile
    series.py       the bounded history of scrapes and the per-interval chart lines
    live_counts.py  what a Slipway server counted of its inputs and outputs
    reference.py    ReferenceProfile: the baseline, built, validated and read in one place
    drift.py        PSI, Jensen-Shannon, KS, chi-square; a profile against live counts

Drift shown live is computed here; drift injected into test traffic (to see the monitor work) is
made with the load test's payloads (loadtest/payloads.py).
"""
