"""The product: every stage of a model's journey as plain functions. Never imports Qt.

One folder per stage, in the order of the journey (docs/architecture.md draws it): model/,
optimize/, serve/, loadtest/, monitor/. Shared plumbing sits here: errors.py (the StudioError
family and exit statuses), tasks.py (the progress, cancel and partial-results handle), units.py
(how figures are written), workspace.py (where the studio writes what it makes).
"""
