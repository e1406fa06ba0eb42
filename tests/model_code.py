"""Code that test models refer to by name, so a child process can import it when it loads them.

Keep this module importable on its own (no pytest, no fixtures): skops files and pickles made in
the tests store references such as `model_code.log1p_abs`, and the loader child imports them.
"""

import numpy as np


def log1p_abs(X):
    """A module-level function for a FunctionTransformer: skops lists it as an untrusted type."""
    return np.log1p(np.abs(X))
