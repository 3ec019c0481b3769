"""Evaluation metrics (paper §2.5, Tables 3–4): each metric's definition, by scikit-learn.

Every formula that scikit-learn has is taken from scikit-learn: accuracy (``accuracy_score``),
one-vs-rest AUC (``roc_auc_score(..., multi_class="ovr")``), per-class sensitivity (``recall_score``),
per-class specificity TN / (TN + FP) (from ``multilabel_confusion_matrix``), the confusion matrix,
ROC curves (``roc_curve``) and the categorical cross-entropy (``log_loss``). The paper prints two
wrong formulas (Eq. 4 and 5); this module uses the correct definitions and
:func:`mcalc.evaluate.errata.paper_formula_errata` shows what the printed ones would give.
Confidence intervals are :mod:`mcalc.evaluate.bootstrap`'s; :func:`mcalc.evaluate.evaluation.evaluate`
puts metrics and intervals together.

Two areas under the ROC curve are reported. ``auc_pooled`` is the paper's: Keras' ``AUC`` metric on
one-hot targets flattens labels and scores, so every (ROI, class) pair is one binary decision (the
micro average, ``roc_auc_score(average="micro")``). ``auc_macro`` is scikit-learn's mean of the
one-vs-rest AUCs of the three classes, a different number (it weighs the small classes more).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    log_loss,
    multilabel_confusion_matrix,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from mcalc.errors import DataError
from mcalc.study import CLASSES

__all__ = [
    "check_labels",
    "check_proba",
    "require_all_classes",
    "to_labels",
    "one_hot",
    "accuracy",
    "confusion",
    "sensitivity_per_class",
    "specificity_per_class",
    "auc_per_class",
    "auc_macro",
    "auc_pooled",
    "roc_curves",
    "sensitivity_at_specificity",
    "log_loss_kl",
    "HEAD_METRICS",
    "POSITIVE_CLASS",
    "PER_CLASS_METRICS",
    "SPECIFICITY_TARGET",
    "metric_names",
    "standard_mix",
    "task_classes",
    "brier_score",
    "metric_vector",
]

#: Tolerance on probability rows summing to one.
_ROW_SUM_ATOL = 1e-3


def check_labels(y_true: Any, n_classes: int, name: str = "y_true") -> np.ndarray:
    """Return ``y_true`` as a 1-D int array after checking its values are class indices."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise DataError(f"{name}: expected a 1-D array of class indices, got shape {y.shape}")
    if y.size == 0:
        raise DataError(f"{name}: empty")
    if not np.issubdtype(y.dtype, np.integer):
        if not (
            np.issubdtype(y.dtype, np.floating)
            and np.all(np.isfinite(y))
            and np.all(y == np.round(y))
        ):
            raise DataError(f"{name}: expected integer class indices, got dtype {y.dtype}")
        y = y.astype(int)
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        raise DataError(
            f"{name}: value {y[bad][0]} at position {int(np.flatnonzero(bad)[0])} is not in 0..{n_classes - 1}"
        )
    return y.astype(np.int64)


def check_proba(proba: Any, n: int | None, n_classes: int) -> np.ndarray:
    """Return ``proba`` as a float64 (n, n_classes) array after checking it is a probability table."""
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != n_classes:
        raise DataError(f"proba: expected shape (n, {n_classes}), got {p.shape}")
    if n is not None and p.shape[0] != n:
        raise DataError(f"proba: {p.shape[0]} rows but y_true has {n} labels")
    if not np.all(np.isfinite(p)):
        row = int(np.flatnonzero(~np.isfinite(p).all(axis=1))[0])
        raise DataError(f"proba: non-finite value in row {row}")
    if (p < 0).any() or (p > 1 + _ROW_SUM_ATOL).any():
        row = int(np.flatnonzero(((p < 0) | (p > 1 + _ROW_SUM_ATOL)).any(axis=1))[0])
        raise DataError(f"proba: value outside [0, 1] in row {row}")
    sums = p.sum(axis=1)
    off = np.abs(sums - 1) > _ROW_SUM_ATOL
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise DataError(f"proba: row {row} sums to {sums[row]:.6g}, not 1")
    # float32 softmax rows sum to 1 only within ~1e-7: renormalise them in float64, but leave rows
    # that sum to 1 up to float64 rounding (k-NN fractions, hand-made scores) as they are, so that
    # equal scores stay equal (ties matter to the AUC)
    rescale = np.abs(sums - 1) > 1e-12
    return np.where(rescale[:, None], p / sums[:, None], p)


def require_all_classes(y: np.ndarray, classes: Sequence[str], what: str = "y_true") -> None:
    """Raise DataError naming the first class with no example in ``y``."""
    present = np.bincount(y, minlength=len(classes))
    for k, c in enumerate(classes):
        if present[k] == 0:
            raise DataError(
                f"{what}: class {c!r} (label {k}) has no example; AUC and sensitivity are undefined"
            )


def to_labels(proba: np.ndarray) -> np.ndarray:
    """Predicted class index per row: argmax of the probabilities (first class wins ties)."""
    return np.asarray(proba).argmax(axis=1).astype(np.int64)


def one_hot(y_true: np.ndarray, n_classes: int = len(CLASSES)) -> np.ndarray:
    """One-hot (n, n_classes) float array of class indices."""
    y = check_labels(y_true, n_classes)
    return np.eye(n_classes, dtype=np.float64)[y]


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of correct predictions, correct / total (``sklearn.metrics.accuracy_score``)."""
    return float(accuracy_score(y_true, y_pred))


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = len(CLASSES)) -> np.ndarray:
    """Confusion matrix, rows = true class, columns = predicted class (``confusion_matrix``)."""
    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))


def sensitivity_per_class(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = len(CLASSES)
) -> np.ndarray:
    """One-vs-rest sensitivity (recall) TP / (TP + FN) per class (``recall_score(average=None)``)."""
    return recall_score(
        y_true, y_pred, labels=list(range(n_classes)), average=None, zero_division=np.nan
    )


def _ovr_rates(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class one-vs-rest TP, sensitivity TP / (TP + FN) and specificity TN / (TN + FP) (NaN where undefined)."""
    mcm = multilabel_confusion_matrix(y_true, y_pred, labels=list(range(n_classes))).astype(float)
    tn, fp, fn, tp = mcm[:, 0, 0], mcm[:, 0, 1], mcm[:, 1, 0], mcm[:, 1, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), np.nan)
        spec = np.where(tn + fp > 0, tn / np.maximum(tn + fp, 1), np.nan)
    return tp, sens, spec


def specificity_per_class(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = len(CLASSES)
) -> np.ndarray:
    """One-vs-rest specificity TN / (TN + FP) per class, from ``multilabel_confusion_matrix``."""
    return _ovr_rates(y_true, y_pred, n_classes)[2]


def auc_per_class(y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC AUC of each class (``roc_auc_score(average=None, multi_class="ovr")``; with two
    classes, which scikit-learn scores as one binary problem, each column against its own class)."""
    n_classes = np.asarray(proba).shape[1]
    if n_classes == 2:
        y, p = np.asarray(y_true), np.asarray(proba)
        return np.array([roc_auc_score((y == k).astype(int), p[:, k]) for k in range(2)])
    return np.asarray(
        roc_auc_score(
            y_true, proba, multi_class="ovr", average=None, labels=list(range(n_classes))
        ),
        dtype=float,
    )


def auc_macro(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Macro-averaged one-vs-rest ROC AUC (``roc_auc_score(average="macro", multi_class="ovr")``; with
    two classes, the binary AUC)."""
    n_classes = np.asarray(proba).shape[1]
    if n_classes == 2:
        return float(np.mean(auc_per_class(y_true, proba)))
    return float(
        roc_auc_score(
            y_true, proba, multi_class="ovr", average="macro", labels=list(range(n_classes))
        )
    )


def auc_pooled(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Pooled (micro) ROC AUC of the one-hot targets: Keras' ``AUC`` metric as the paper used it.

    ``keras.metrics.AUC()`` on one-hot labels flattens labels and scores (every (ROI, class) pair is
    one binary decision), which is ``roc_auc_score(one_hot, proba, average="micro")``. Keras
    approximates the curve on ``num_thresholds`` (default 200) thresholds; this is the exact area it
    converges to.
    """
    p = np.asarray(proba, dtype=float)
    y = np.eye(p.shape[1])[np.asarray(y_true, dtype=np.int64)]
    return float(roc_auc_score(y, p, average="micro"))


def roc_curves(
    y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str] = CLASSES
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One-vs-rest ROC curve (fpr, tpr) of each class (``sklearn.metrics.roc_curve``)."""
    y = np.asarray(y_true)
    p = np.asarray(proba)
    out = {}
    for k, c in enumerate(classes):
        fpr, tpr, _ = roc_curve((y == k).astype(int), p[:, k])
        out[c] = (fpr, tpr)
    return out


def sensitivity_at_specificity(
    y_onehot: np.ndarray, proba: np.ndarray, specificity: float = 0.8
) -> float:
    """Keras' ``SensitivityAtSpecificity`` on flattened one-hot labels: best TPR with 1 - FPR ≥ specificity.

    The paper's "sensitivity at specificity 0.8" is ``keras.metrics.SensitivityAtSpecificity(0.8)``
    applied to a 3-class one-hot target. Without ``class_id`` Keras flattens labels and scores, so
    every (ROI, class) pair is one binary decision (a micro-average), and returns the largest
    sensitivity over the thresholds whose specificity is at least ``specificity``. Here the same
    quantity is read off ``sklearn.metrics.roc_curve`` of the flattened arrays, whose thresholds are
    every distinct score: the maximum TPR among ROC points with 1 - FPR ≥ ``specificity``. Keras only
    tries ``num_thresholds`` (default 200) evenly spaced thresholds, a subset of these operating
    points, so its value is never above this one and converges to it as ``num_thresholds`` grows.
    """
    y = np.asarray(y_onehot, dtype=float)
    p = np.asarray(proba, dtype=float)
    if y.shape != p.shape:
        raise DataError(f"y_onehot shape {y.shape} differs from proba shape {p.shape}")
    if not 0.0 <= specificity <= 1.0:
        raise ValueError(f"specificity must be in [0, 1], got {specificity}")
    fpr, tpr, _ = roc_curve(y.ravel(), p.ravel(), drop_intermediate=False)
    ok = (1.0 - fpr) >= specificity - 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def log_loss_kl(y_true: np.ndarray, proba: np.ndarray, n_classes: int = len(CLASSES)) -> float:
    """Mean KL divergence KL(one-hot ‖ proba), i.e. the categorical cross-entropy (``log_loss``).

    For a one-hot target t, KL(t ‖ p) = Σ t log(t / p) = -log p_true, because the entropy of a one-hot
    vector is zero; so the paper's Kullback–Leibler loss equals the categorical cross-entropy that
    ``sklearn.metrics.log_loss`` computes. (Keras clips probabilities at 1e-7, scikit-learn at the
    float epsilon, so the two differ only for predicted probabilities below 1e-7.)
    """
    y = check_labels(y_true, n_classes)
    p = check_proba(proba, len(y), n_classes)
    return float(log_loss(y, p, labels=list(range(n_classes))))


#: Names of the whole-set metrics, in the order of :meth:`Evaluation.values`.
HEAD_METRICS: tuple[str, ...] = (
    "accuracy",
    "auc_pooled",
    "auc_macro",
    "sensitivity_at_spec80",
    "sensitivity_macro",
    "specificity_macro",
    "loss_kl",
    "brier",
    "accuracy_standardised",
    "malignant_sensitivity_at_spec80",
)
#: The class whose one-vs-rest sensitivity at 80% specificity the binary studies of Table 5 report.
POSITIVE_CLASS = "MALIGNANT"
#: Names of the per-class metrics (``name[CLASS]`` in :meth:`Evaluation.values`), in that order.
PER_CLASS_METRICS: tuple[str, ...] = ("auc", "sensitivity", "specificity")
#: Specificity at which the paper reads the sensitivity (Keras ``SensitivityAtSpecificity(0.8)``).
SPECIFICITY_TARGET = 0.8


def metric_names(classes: Sequence[str] = CLASSES) -> list[str]:
    """Flat metric names in :meth:`Evaluation.values` order (``auc[BENIGN]`` etc. per class)."""
    return list(HEAD_METRICS) + [f"{m}[{c}]" for m in PER_CLASS_METRICS for c in classes]


def standard_mix(classes: Sequence[str] | None) -> np.ndarray | None:
    """The paper's Table 1 test mix (99/133/94) as weights in ``classes`` order; None for other classes."""
    from mcalc import paper  # the paper's numbers live there (one definition

    testing = paper.table1()["Testing"]
    if classes is None or sorted(classes) != sorted(testing.index):
        return None
    w = np.array([testing[c] for c in classes], dtype=float)
    return w / w.sum()


def task_classes(classes: Sequence[str] | None, n_classes: int) -> tuple[str, ...] | None:
    """The class names of a metric vector: as given, else the study's three when there are three."""
    if classes is not None:
        return tuple(classes)
    return CLASSES if n_classes == len(CLASSES) else None


def brier_score(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Multi-class Brier score: mean over ROIs of Σ_k (p_k − y_k)² (``brier_score_loss`` × 2 for two classes)."""
    p = np.asarray(proba, dtype=float)
    return float(np.mean(((p - np.eye(p.shape[1])[np.asarray(y_true)]) ** 2).sum(axis=1)))


def metric_vector(
    y: np.ndarray, p: np.ndarray, n_classes: int, classes: Sequence[str] | None = None
) -> np.ndarray:
    """All metrics of :func:`metric_names` for one data set, in that order, by scikit-learn.

    The one-vs-rest counts of ``multilabel_confusion_matrix`` give accuracy (TP summed over classes
    / n), sensitivity TP / (TP + FN) and specificity TN / (TN + FP) — the values of
    ``accuracy_score``, ``recall_score`` and :func:`specificity_per_class` — and the macro AUC is the
    mean of the per-class ``roc_auc_score(average=None)``, which is how scikit-learn defines
    ``average="macro"``. ``tests/evaluate/test_metrics.py`` checks both against the single-metric
    functions, and ``tests/evaluate/test_bootstrap.py`` the bootstrap's weighted, vectorised metrics
    against this. The prevalence-standardised accuracy weighs the per-class sensitivities by the
    paper's test mix (:func:`standard_mix`); the malignant sensitivity at 80% specificity is read off the one-vs-rest
    ROC curve of MALIGNANT (:func:`sensitivity_at_specificity` of that column alone).
    """
    names = task_classes(classes, n_classes)
    mix = standard_mix(names)
    pos = names.index(POSITIVE_CLASS) if names and POSITIVE_CLASS in names else None
    pred = to_labels(p)
    labels = list(range(n_classes))
    tp, sens, spec = _ovr_rates(y, pred, n_classes)
    auc = auc_per_class(y, p)
    head = [
        float(tp.sum() / len(y)),
        auc_pooled(y, p),
        float(np.mean(auc)),
        sensitivity_at_specificity(np.eye(n_classes)[y], p, SPECIFICITY_TARGET),
        float(np.mean(sens)),
        float(np.mean(spec)),
        float(log_loss(y, p, labels=labels)),
        brier_score(y, p),
        float(mix @ sens) if mix is not None else math.nan,
        sensitivity_at_specificity((y == pos)[:, None], p[:, [pos]], SPECIFICITY_TARGET)
        if pos is not None
        else math.nan,
    ]
    return np.concatenate([head, auc, sens, spec])
