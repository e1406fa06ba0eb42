"""Stage 4, Load: a served model under load, measured honestly.

    prepare.py    the one way the Load page and `slipway load/sweep` prepare a test
    payloads.py   request bodies: random valid rows, the sample, reference rows, a file, drift
    plan.py       LoadPlan: what a test is asked to do, checked before anything is sent
    engine.py     run(plan): the HTTP/1.1 client's closed and open loops on an event loop
    results.py    what was measured: HDR percentiles, snapshots, LoadReport, the CO correction
    sweep.py      sweep(plan, slo): step the rate up and bisect to the knee
    report.py     a finished test as files: JSON, a CSV timeline, a self-contained HTML page
"""
