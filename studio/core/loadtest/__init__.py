"""Stage 4, Load: a served model under load, measured honestly.

    prepare.py    the one way the Load page and `slipway load/sweep` prepare a test
    payloads.py   request bodies: rows like the server's reference, random valid rows, the
                  sample, rows of a dataset, a file, drift
    plan.py       LoadPlan: what a test is asked to do, checked before anything is sent
    engine.py     run(plan): the HTTP/1.1 client's closed and open loops on an event loop
    sweep.py      sweep(plan, slo): step the rate up and bisect to the knee
    tester.py     run and sweep in the load tester's own process, streamed back over a pipe
    __main__.py   that process's side (`python -m studio.core.loadtest`)
    results.py    what was measured: HDR percentiles, snapshots, reports, the CO correction
    report.py     a finished test as files: JSON, a CSV timeline, a self-contained HTML page
"""
