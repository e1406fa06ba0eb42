"""Code that test models refer to by name, so a child process can import it when it loads them.

Keep this module importable on its own (no pytest, no fixtures): skops files and pickles made in
the tests store references such as `model_code.log1p_abs`, and the loader child imports them.
"""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


def log1p_abs(X):
    """A module-level function for a FunctionTransformer: skops lists it as an untrusted type."""
    return np.log1p(np.abs(X))


class NearestMeanClassifier(ClassifierMixin, BaseEstimator):
    """A hand-written classifier (the class whose training mean is nearest): a real scikit-learn
    estimator that no ONNX converter knows."""

    def fit(self, X, y):
        X = np.asarray(X, dtype=float)
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        self.means_ = np.array([X[y == c].mean(axis=0) for c in self.classes_])
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        distances = ((np.asarray(X, dtype=float)[:, None, :] - self.means_) ** 2).sum(axis=2)
        return self.classes_[distances.argmin(axis=1)]
