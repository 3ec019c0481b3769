"""Evaluation metrics with bootstrap confidence intervals (paper §2.5, Tables 3–4).

Every formula that scikit-learn has is taken from scikit-learn: accuracy (``accuracy_score``),
one-vs-rest AUC (``roc_auc_score(..., multi_class="ovr")``), per-class sensitivity (``recall_score``),
per-class specificity TN / (TN + FP) (from ``multilabel_confusion_matrix``), the confusion matrix,
ROC curves (``roc_curve``) and the categorical cross-entropy (``log_loss``). Confidence intervals come
from ``scipy.stats.bootstrap``.

The paper prints two wrong formulas: Eq. 4, specificity = TP / (TN + FP), and Eq. 5,
accuracy = (TP + TN + FP) / (TP + FP + FN). This module uses the correct definitions
(specificity = TN / (TN + FP), accuracy = correct / total); :func:`paper_formula_errata` shows what the
printed formulas would give on a confusion matrix.

Bootstrap design (:func:`evaluate`): the resampling unit is the ROI, and a ROI's label and predicted
probabilities are always resampled together (paired). Resampling is *stratified by true class*: the
indices of each class are passed to ``scipy.stats.bootstrap`` as separate samples (``paired=False``),
which resamples each class with replacement at its observed size (a class with a single ROI is
kept as it is, since its only resample is itself). Every resample therefore contains every class,
so the one-vs-rest AUC, per-class sensitivity and specificity are defined in every resample and no
resample has to be skipped. The intervals are conditional on the observed class
counts (slightly narrower for accuracy than an unstratified bootstrap would give). Where the BCa
interval is undefined (a degenerate bootstrap distribution, e.g. a sensitivity of 1 in every
resample), the percentile interval of the same resamples is reported instead.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import bootstrap
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

try:  # the shared class order lives in mcalc.curation
    from mcalc.curation import CLASSES
except ModuleNotFoundError as _exc:  # pragma: no cover - only while mcalc.curation is absent
    if _exc.name != "mcalc.curation":
        raise
    CLASSES: tuple[str, ...] = ("BENIGN", "BENIGN_WITHOUT_CALLBACK", "MALIGNANT")

#: Bootstrap interval methods accepted by :func:`evaluate` (scipy names, lower case).
CI_METHODS = ("percentile", "bca", "basic")
#: Tolerance on probability rows summing to one.
_ROW_SUM_ATOL = 1e-3


def _check_labels(y_true: Any, n_classes: int, name: str = "y_true") -> np.ndarray:
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


def _check_proba(proba: Any, n: int | None, n_classes: int) -> np.ndarray:
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
    return (
        p / sums[:, None]
    )  # float32 softmax rows sum to 1 only within ~1e-7: renormalise in float64


def _require_all_classes(y: np.ndarray, classes: Sequence[str], what: str = "y_true") -> None:
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
    y = _check_labels(y_true, n_classes)
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
    """One-vs-rest ROC AUC of each class (``roc_auc_score(average=None, multi_class="ovr")``)."""
    n_classes = np.asarray(proba).shape[1]
    return np.asarray(
        roc_auc_score(
            y_true, proba, multi_class="ovr", average=None, labels=list(range(n_classes))
        ),
        dtype=float,
    )


def auc_macro(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Macro-averaged one-vs-rest ROC AUC (``roc_auc_score(average="macro", multi_class="ovr")``)."""
    n_classes = np.asarray(proba).shape[1]
    return float(
        roc_auc_score(
            y_true, proba, multi_class="ovr", average="macro", labels=list(range(n_classes))
        )
    )


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
    y = _check_labels(y_true, n_classes)
    p = _check_proba(proba, len(y), n_classes)
    return float(log_loss(y, p, labels=list(range(n_classes))))


@dataclass
class Evaluation:
    """Point estimates and bootstrap confidence intervals of every reported metric."""

    classes: tuple[str, ...]
    n: int
    accuracy: float
    auc_macro: float
    auc: dict[str, float]
    sensitivity_at_spec80: float
    sensitivity: dict[str, float]
    specificity: dict[str, float]
    sensitivity_macro: float
    specificity_macro: float
    loss_kl: float
    confusion: list[list[int]]
    #: metric name (as in :meth:`table`) -> (low, high); NaN where no interval could be computed.
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    confidence: float = 0.95
    n_boot: int = 0
    seed: int = 0
    ci_method: str = "percentile"
    roc_points: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)

    def values(self) -> dict[str, float]:
        """Flat metric name -> point estimate, in table order."""
        out = {
            "accuracy": self.accuracy,
            "auc_macro": self.auc_macro,
            "sensitivity_at_spec80": self.sensitivity_at_spec80,
            "sensitivity_macro": self.sensitivity_macro,
            "specificity_macro": self.specificity_macro,
            "loss_kl": self.loss_kl,
        }
        for c in self.classes:
            out[f"auc[{c}]"] = self.auc[c]
        for c in self.classes:
            out[f"sensitivity[{c}]"] = self.sensitivity[c]
        for c in self.classes:
            out[f"specificity[{c}]"] = self.specificity[c]
        return out

    def table(self) -> pd.DataFrame:
        """Long table with columns metric, value, ci_low, ci_high."""
        rows = []
        for name, value in self.values().items():
            lo, hi = self.ci.get(name, (math.nan, math.nan))
            rows.append({"metric": name, "value": value, "ci_low": lo, "ci_high": hi})
        return pd.DataFrame(rows, columns=["metric", "value", "ci_low", "ci_high"])

    def confusion_frame(self) -> pd.DataFrame:
        """Confusion matrix as a DataFrame (rows true, columns predicted, labelled by class)."""
        return pd.DataFrame(
            self.confusion,
            index=pd.Index(self.classes, name="true"),
            columns=pd.Index(self.classes, name="predicted"),
        )

    def roc(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """One-vs-rest ROC curve of each class as (fpr, tpr) arrays."""
        return {
            c: (np.asarray(f, dtype=float), np.asarray(t, dtype=float))
            for c, (f, t) in self.roc_points.items()
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (NaN becomes None)."""
        d = asdict(self)
        d["classes"] = list(self.classes)
        d["ci"] = {k: [_nan_to_none(lo), _nan_to_none(hi)] for k, (lo, hi) in self.ci.items()}
        d["roc_points"] = {
            c: [list(map(float, f)), list(map(float, t))] for c, (f, t) in self.roc_points.items()
        }
        d["confusion"] = [[int(v) for v in row] for row in self.confusion]
        for key in (
            "accuracy",
            "auc_macro",
            "sensitivity_at_spec80",
            "sensitivity_macro",
            "specificity_macro",
            "loss_kl",
        ):
            d[key] = _nan_to_none(d[key])
        for key in ("auc", "sensitivity", "specificity"):
            d[key] = {c: _nan_to_none(v) for c, v in d[key].items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evaluation:
        """Rebuild an Evaluation from :meth:`to_dict` output (None becomes NaN)."""
        d = dict(d)
        d["classes"] = tuple(d["classes"])
        d["ci"] = {
            k: (_none_to_nan(lo), _none_to_nan(hi)) for k, (lo, hi) in d.get("ci", {}).items()
        }
        d["roc_points"] = {c: (list(f), list(t)) for c, (f, t) in d.get("roc_points", {}).items()}
        for key in (
            "accuracy",
            "auc_macro",
            "sensitivity_at_spec80",
            "sensitivity_macro",
            "specificity_macro",
            "loss_kl",
        ):
            d[key] = _none_to_nan(d[key])
        for key in ("auc", "sensitivity", "specificity"):
            d[key] = {c: _none_to_nan(v) for c, v in d[key].items()}
        return cls(**d)


def _nan_to_none(v: float | None) -> float | None:
    """Float, or None for NaN (JSON has no NaN)."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _none_to_nan(v: float | None) -> float:
    """Float, NaN for None."""
    return math.nan if v is None else float(v)


def _metric_vector(y: np.ndarray, p: np.ndarray, n_classes: int) -> np.ndarray:
    """All metrics of :meth:`Evaluation.values` for one (resampled) data set, in that order.

    Called once per bootstrap resample, so each scikit-learn routine runs once: the one-vs-rest counts
    of ``multilabel_confusion_matrix`` give accuracy (TP summed over classes / n), sensitivity
    TP / (TP + FN) and specificity TN / (TN + FP) — the values of ``accuracy_score``, ``recall_score``
    and :func:`specificity_per_class` — and the macro AUC is the mean of the per-class
    ``roc_auc_score(average=None)``, which is how scikit-learn defines ``average="macro"``.
    ``tests/test_metrics.py`` checks both against the single-metric functions.
    """
    pred = to_labels(p)
    labels = list(range(n_classes))
    tp, sens, spec = _ovr_rates(y, pred, n_classes)
    auc = auc_per_class(y, p)
    head = [
        float(tp.sum() / len(y)),
        float(np.mean(auc)),
        sensitivity_at_specificity(np.eye(n_classes)[y], p, 0.8),
        float(np.mean(sens)),
        float(np.mean(spec)),
        float(log_loss(y, p, labels=labels)),
    ]
    return np.concatenate([head, auc, sens, spec])


def evaluate(
    y_true: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str] = CLASSES,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    method: str = "percentile",
) -> Evaluation:
    """Point estimates and class-stratified paired bootstrap CIs of all metrics (see module doc).

    ``method`` is ``"percentile"`` (default), ``"bca"`` or ``"basic"`` (``scipy.stats.bootstrap``);
    ``n_boot=0`` skips the bootstrap (all intervals NaN).
    """
    classes = tuple(classes)
    k = len(classes)
    y = _check_labels(y_true, k)
    p = _check_proba(proba, len(y), k)
    _require_all_classes(y, classes)
    method = method.lower()
    if method not in CI_METHODS:
        raise ValueError(f"method must be one of {CI_METHODS}, got {method!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")

    point = _metric_vector(y, p, k)
    pred = to_labels(p)
    ev = Evaluation(
        classes=classes,
        n=int(len(y)),
        accuracy=float(point[0]),
        auc_macro=float(point[1]),
        sensitivity_at_spec80=float(point[2]),
        sensitivity_macro=float(point[3]),
        specificity_macro=float(point[4]),
        loss_kl=float(point[5]),
        auc={c: float(v) for c, v in zip(classes, point[6 : 6 + k])},
        sensitivity={c: float(v) for c, v in zip(classes, point[6 + k : 6 + 2 * k])},
        specificity={c: float(v) for c, v in zip(classes, point[6 + 2 * k : 6 + 3 * k])},
        confusion=confusion(y, pred, k).tolist(),
        confidence=float(confidence),
        n_boot=int(n_boot),
        seed=int(seed),
        ci_method=method,
        roc_points={c: (f.tolist(), t.tolist()) for c, (f, t) in roc_curves(y, p, classes).items()},
    )
    names = list(ev.values())
    if n_boot <= 0:
        ev.ci = {name: (math.nan, math.nan) for name in names}
        return ev
    lo, hi = bootstrap_ci(y, p, n_boot=n_boot, seed=seed, confidence=confidence, method=method)
    ev.ci = {name: (float(a), float(b)) for name, a, b in zip(names, lo, hi)}
    return ev


def bootstrap_ci(
    y: np.ndarray,
    proba: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    method: str = "percentile",
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper CI bounds of the metric vector of :meth:`Evaluation.values` (class-stratified, paired)."""
    k = proba.shape[1]
    by_class = [np.flatnonzero(y == c) for c in range(k)]
    # a class with a single ROI resamples to that ROI every time: keep it fixed (scipy needs ≥ 2)
    strata = tuple(idx for idx in by_class if len(idx) >= 2)
    fixed = np.concatenate(
        [idx for idx in by_class if len(idx) < 2] + [np.zeros(0, dtype=np.int64)]
    )
    if not strata:
        n_metrics = len(_metric_vector(y, proba, k))
        return np.full(n_metrics, np.nan), np.full(n_metrics, np.nan)

    def statistic(*idx: np.ndarray) -> np.ndarray:
        """Metrics of the resample made of the given ROI indices of every class."""
        i = np.concatenate((*idx, fixed))
        return _metric_vector(y[i], proba[i], k)

    scipy_method = {"bca": "BCa"}.get(method, method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate-BCa warnings: handled below
        res = bootstrap(
            strata,
            statistic,
            n_resamples=int(n_boot),
            vectorized=False,
            paired=False,
            confidence_level=confidence,
            method=scipy_method,
            rng=np.random.default_rng(seed),
        )
    lo = np.array(res.confidence_interval.low, dtype=float)
    hi = np.array(res.confidence_interval.high, dtype=float)
    bad = ~(np.isfinite(lo) & np.isfinite(hi))
    if (
        bad.any()
    ):  # BCa undefined for degenerate distributions: fall back to the percentile interval
        alpha = (1 - confidence) / 2
        dist = res.bootstrap_distribution[bad]
        lo[bad] = np.nanquantile(dist, alpha, axis=-1)
        hi[bad] = np.nanquantile(dist, 1 - alpha, axis=-1)
    return lo, hi


def paper_formula_errata(cm: np.ndarray, classes: Sequence[str] = CLASSES) -> pd.DataFrame:
    """The paper's Eq. 4 (specificity) and Eq. 5 (accuracy) versus the correct formulas, per class.

    ``cm`` is a confusion matrix (rows true, columns predicted). For each class, one-vs-rest counts
    TP, FP, FN, TN are read with ``multilabel_confusion_matrix``; then

    * Eq. 4 as printed: specificity = TP / (TN + FP); correct: TN / (TN + FP);
    * Eq. 5 as printed: accuracy = (TP + TN + FP) / (TP + FP + FN); correct (one-vs-rest binary
      accuracy): (TP + TN) / (TP + TN + FP + FN).

    A last row ``all`` gives the three-class accuracy, correct / total (where Eq. 5 has no
    multiclass reading, its column is NaN).
    """
    cm = np.asarray(cm)
    classes = tuple(classes)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(classes):
        raise DataError(
            f"confusion matrix: expected shape ({len(classes)}, {len(classes)}), got {cm.shape}"
        )
    if (cm < 0).any() or not np.all(cm == np.round(cm)):
        raise DataError("confusion matrix: entries must be non-negative counts")
    cm = cm.astype(int)
    k = len(classes)
    # rebuild one (true, predicted) pair per counted ROI so that scikit-learn does the counting
    true_idx, pred_idx = np.divmod(np.repeat(np.arange(k * k), cm.ravel()), k)
    mcm = multilabel_confusion_matrix(true_idx, pred_idx, labels=list(range(k)))
    rows = []
    for c, m in zip(classes, mcm):
        tn, fp, fn, tp = (int(v) for v in m.ravel())
        rows.append(
            {
                "class": c,
                "TP": tp,
                "FP": fp,
                "FN": fn,
                "TN": tn,
                "specificity_eq4_paper": _ratio(tp, tn + fp),
                "specificity_correct": _ratio(tn, tn + fp),
                "accuracy_eq5_paper": _ratio(tp + tn + fp, tp + fp + fn),
                "accuracy_correct": _ratio(tp + tn, tp + tn + fp + fn),
            }
        )
    rows.append(
        {
            "class": "all",
            "TP": math.nan,
            "FP": math.nan,
            "FN": math.nan,
            "TN": math.nan,
            "specificity_eq4_paper": math.nan,
            "specificity_correct": math.nan,
            "accuracy_eq5_paper": math.nan,
            "accuracy_correct": accuracy(true_idx, pred_idx) if len(true_idx) else math.nan,
        }
    )
    df = pd.DataFrame(rows)
    df["specificity_error"] = df["specificity_eq4_paper"] - df["specificity_correct"]
    df["accuracy_error"] = df["accuracy_eq5_paper"] - df["accuracy_correct"]
    return df


def _ratio(num: float, den: float) -> float:
    """num / den, NaN when den is zero."""
    return float(num) / float(den) if den else math.nan
