"""Class labels for classifiers that only take 0..k-1 (XGBoost's scikit-learn wrapper).

`XGBClassifier` refuses string labels ("Invalid classes inferred from unique values of y"), so
the penguins' species, or any labelled data, could not train it. The train stage wraps such an
estimator in `EncodedLabels`: it fits the estimator on the labels' codes (sorted, as
`LabelEncoder` numbers them) and answers `predict` with the original labels, so evaluate,
serving and monitoring see the same labels as for any other classifier. Its state is the
fitted estimator and `classes_` (what scikit-learn classifiers hold): skops persists it
without pickle, and it is on the allow-list of `mlops.bundle.trust` by its exact name.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator, ClassifierMixin, clone

# estimators whose classifier needs encoded labels (module prefix of the class)
NEEDS_CODES = ("xgboost.",)


def needs_codes(estimator: Any) -> bool:
    """Whether `estimator` is a classifier that only takes labels 0..k-1."""
    return type(estimator).__module__.startswith(NEEDS_CODES)


class EncodedLabels(ClassifierMixin, BaseEstimator):
    """`estimator` trained on label codes, answering with the original labels."""

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def _codes(self, y: Any) -> Any:
        import numpy as np

        y = np.asarray(y)
        codes = np.searchsorted(self.classes_, y)
        codes = np.clip(codes, 0, len(self.classes_) - 1)
        if not np.array_equal(self.classes_[codes], y):
            raise ValueError("labels outside the training labels")
        return codes

    def fit(self, X: Any, y: Any, **fit_params: Any) -> EncodedLabels:
        """Fit a clone of `estimator` on the codes of `y` (an `eval_set`'s labels encoded too)."""
        import numpy as np

        self.classes_ = np.unique(np.asarray(y))
        if "eval_set" in fit_params and fit_params["eval_set"] is not None:
            fit_params["eval_set"] = [(Xe, self._codes(ye)) for Xe, ye in fit_params["eval_set"]]
        self.estimator_ = clone(self.estimator).fit(X, self._codes(y), **fit_params)
        if hasattr(self.estimator_, "n_features_in_"):
            self.n_features_in_ = self.estimator_.n_features_in_
        return self

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, columns in the order of `classes_`."""
        return self.estimator_.predict_proba(X)

    def predict(self, X: Any) -> Any:
        """The original labels: those of the highest probability."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
