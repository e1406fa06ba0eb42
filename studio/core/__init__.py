"""The product: every stage of a model's journey as plain functions. Never imports Qt.

One folder per stage, in the order of the journey (docs/architecture.md draws it): model/,
optimize/, serve/, loadtest/, monitor/, export/. Shared plumbing sits here: errors.py (the
StudioError family and exit statuses), tasks.py (the progress, cancel and partial-results
handle), units.py (how figures and a model file's text are written), workspace.py (where the
studio keeps what it makes, and this installation's id), files.py (output files written whole or
not at all) and children.py (Python children that never outlive the studio, whichever thread
starts them).
"""
