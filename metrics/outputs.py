"""Output-level (functional) measures between two classifiers' class scores: prediction
disagreement and Jensen-Shannon divergence, in ReSi's convention (Klabunde et al. 2025).

They take the same (samples, classes) matrices as the layer metrics, so the engine scores them
between output layers (logits over the same classes, in the same order); between layers of
different widths they are undefined with that reason, and between hidden layers of equal width
the number has no meaning: columns are not classes there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.metrics.base import Metric, MetricUndefined, State

RESI = ("Klabunde, Wald, Schumacher, Markert, Strohmaier & Lemmerich 2025, ReSi: A Comprehensive "
        "Benchmark for Representational Similarity Measures (ICLR)")


class _Outputs(Metric):
    """Class scores of both models over the same classes: widths must match."""

    kind = "distance"
    symmetric = True
    same_width = True  # the invariance check pairs same-width data (zoo.metrics.invariance)

    def _score(self, a: State, b: State, **params: Any) -> float:
        if a.classes != b.classes:
            raise MetricUndefined(f"{self.name} compares class scores over the same classes; "
                                  f"the outputs have {a.classes} and {b.classes} columns")
        return self._compare(a, b)

    def _compare(self, a: State, b: State) -> float:
        raise NotImplementedError


class Disagreement(_Outputs):
    """Fraction of samples whose predicted class (argmax of the scores) differs between models.

    0 for identical predictions, 1 when no prediction agrees. Ties go to the lowest class index
    (numpy's argmax). Invariant to anything that keeps each row's argmax: positive scaling of a
    sample's scores and a per-sample offset.
    """

    name = "disagreement"
    invariances = ("isotropic-scaling", "per-sample-scaling", "per-sample-offset")
    convention = ("mean_i [argmax_c A_ic != argmax_c B_ic] over the same classes; ties to the "
                  "lowest index (ReSi's repsim Disagreement)")
    reference = ("Madani, Pennock & Flake 2004, Co-Validation (NeurIPS); convention of " + RESI)
    description = "prediction disagreement of two classifiers' outputs (logits)"

    def _prepare(self, X: np.ndarray, **_: Any) -> State:
        return State(n=len(X), classes=X.shape[1], predicted=np.argmax(X, axis=1))

    def _compare(self, a: State, b: State) -> float:
        return float(np.mean(a.predicted != b.predicted))


class JensenShannon(_Outputs):
    """Mean over samples of the Jensen-Shannon divergence (log base 2, in [0, 1]) between the
    softmax distributions of the two models' logits.

    0 for identical predictive distributions. Invariant to a per-sample offset of the logits
    (softmax is); not to scaling (a temperature change).
    """

    name = "jensen-shannon"
    invariances = ("per-sample-offset",)
    convention = ("mean_i JSD_2(softmax(A_i), softmax(B_i)), JSD_2(p, q) = (KL(p||m) + KL(q||m)) "
                  "/ 2 in bits, m = (p + q) / 2 (ReSi's repsim JSD; scipy's jensenshannon "
                  "squared)")
    reference = ("Lin 1991, Divergence Measures Based on the Shannon Entropy (IEEE Trans. Inf. "
                 "Theory); convention of " + RESI)
    description = "mean Jensen-Shannon divergence of softmax outputs (bits)"

    def _prepare(self, X: np.ndarray, **_: Any) -> State:
        from scipy.special import softmax

        return State(n=len(X), classes=X.shape[1], probs=softmax(X, axis=1))

    def _compare(self, a: State, b: State) -> float:
        from scipy.special import rel_entr

        m = (a.probs + b.probs) / 2.0
        js = (rel_entr(a.probs, m).sum(axis=1) + rel_entr(b.probs, m).sum(axis=1)) / 2.0
        return float(np.mean(js) / np.log(2.0))
