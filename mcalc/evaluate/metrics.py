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

Bootstrap design (:func:`evaluate`, :func:`cluster_bootstrap`): the resampling unit is the
**patient**. CBIS-DDSM ROIs are clustered — the two views (CC, MLO) of one lesion, several lesions
of one breast, both breasts of one patient — so ROIs are not independent, and a bootstrap over ROIs
gives intervals that are too narrow (most of all for BENIGN_WITHOUT_CALLBACK, whose test ROIs come
from a handful of patients). Patients are drawn with replacement and each drawn patient brings *all*
of their ROIs, labels and predicted probabilities together (paired). ``scipy.stats.bootstrap``
resamples the patient *indices*; the statistic turns each resample into a weight per ROI (how often
its patient was drawn) and computes every metric of every resample at once from those weights
(vectorised: no Python loop over resamples), which equals the metric on the resample written out
ROI by ROI (``tests/test_metrics.py`` checks this against scikit-learn).

Resampling is *stratified*: each patient is assigned to the class most of their ROIs have (ties to
the first in class order) and the patients of each class are resampled separately at their observed
number, so that every class is present in every resample and the per-class metrics are defined; a
class whose patients number one is kept as it is (its only resample is itself). Where a per-class
metric is still undefined in a resample (a class held only by a minority of some patient's ROIs),
the interval is read from the resamples where it is defined. Where the BCa interval is undefined
(a degenerate bootstrap distribution, e.g. a sensitivity of 1 in every resample), the percentile
interval of the same resamples is reported instead. ``unit="roi"`` (or no ``groups``) gives the
ROI-level bootstrap, kept only to show how much too narrow it is (the book's methods page).

Each :class:`Evaluation` states the numbers its intervals rest on: ``resampling_unit``, ROIs,
lesions (patient, side, abnormality id — one lesion seen in two views is one lesion) and patients,
overall and per class (:attr:`Evaluation.counts`).

Two areas under the ROC curve are reported. ``auc_pooled`` is the paper's: Keras' ``AUC`` metric on
one-hot targets flattens labels and scores, so every (ROI, class) pair is one binary decision (the
micro average, ``roc_auc_score(average="micro")``). ``auc_macro`` is scikit-learn's mean of the
one-vs-rest AUCs of the three classes, a different number (it weighs the small classes more).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import bootstrap, norm
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
from mcalc.study import CLASSES, N_BOOT

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
    # float32 softmax rows sum to 1 only within ~1e-7: renormalise them in float64, but leave rows
    # that sum to 1 up to float64 rounding (k-NN fractions, hand-made scores) as they are, so that
    # equal scores stay equal (ties matter to the AUC)
    rescale = np.abs(sums - 1) > 1e-12
    return np.where(rescale[:, None], p / sums[:, None], p)


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
    y = _check_labels(y_true, n_classes)
    p = _check_proba(proba, len(y), n_classes)
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
#: What a bootstrap may resample: whole patients (every interval of the study) or single ROIs.
RESAMPLING_UNITS = ("patient", "roi")
#: Specificity at which the paper reads the sensitivity (Keras ``SensitivityAtSpecificity(0.8)``).
SPECIFICITY_TARGET = 0.8
#: Above this many (resample, ROI-class) cells, the bootstrap is computed in batches of resamples.
_CELLS_PER_BATCH = 2_000_000


def metric_names(classes: Sequence[str] = CLASSES) -> list[str]:
    """Flat metric names in :meth:`Evaluation.values` order (``auc[BENIGN]`` etc. per class)."""
    return list(HEAD_METRICS) + [f"{m}[{c}]" for m in PER_CLASS_METRICS for c in classes]


@dataclass
class Evaluation:
    """Point estimates, patient-level bootstrap confidence intervals and the counts they rest on."""

    classes: tuple[str, ...]
    #: number of ROIs
    n: int
    accuracy: float
    auc_pooled: float
    auc_macro: float
    auc: dict[str, float]
    sensitivity_at_spec80: float
    sensitivity: dict[str, float]
    specificity: dict[str, float]
    sensitivity_macro: float
    specificity_macro: float
    loss_kl: float
    confusion: list[list[int]]
    #: multi-class Brier score: mean over ROIs of Σ_k (p_k − y_k)², 0 (perfect) to 2 (NaN: not recorded)
    brier: float = math.nan
    #: Σ_k w_k · sensitivity_k with w the paper's Table 1 test mix (NaN unless the paper's classes)
    accuracy_standardised: float = math.nan
    #: one-vs-rest sensitivity of MALIGNANT at specificity ≥ 0.8 (NaN without a MALIGNANT class)
    malignant_sensitivity_at_spec80: float = math.nan
    #: metric name (as in :meth:`table`) -> (low, high); NaN where no interval could be computed.
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    confidence: float = 0.95
    n_boot: int = 0
    seed: int = 0
    ci_method: str = "percentile"
    roc_points: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    #: what the bootstrap resampled: "patient" (whole patients) or "roi"
    resampling_unit: str = "patient"
    #: "wilson-cluster" where accuracy, sensitivities and specificities carry :func:`cluster_wilson`
    #: intervals instead of bootstrap ones ("" where every interval is the bootstrap's)
    proportion_ci: str = ""
    #: number of distinct patients (None where no patient ids were given)
    n_patients: int | None = None
    #: number of distinct lesions (patient, side, abnormality id; None where not given)
    n_lesions: int | None = None
    #: "all", each class and "not CLASS" -> {"rois", "lesions", "patients"} (see :func:`unit_counts`)
    counts: dict[str, dict[str, int | None]] = field(default_factory=dict)
    #: per ROI, when kept (``evaluate(roi_ids=...)``): "roi_id", "patient_id", "lesion_id", "label",
    #: "proba" — what a paired comparison with another model on the same ROIs needs
    predictions: dict[str, list] = field(default_factory=dict)

    def values(self) -> dict[str, float]:
        """Flat metric name -> point estimate, in table order."""
        out = {name: getattr(self, name) for name in HEAD_METRICS}
        for m in PER_CLASS_METRICS:
            for c in self.classes:
                out[f"{m}[{c}]"] = getattr(self, m)[c]
        return out

    def counts_for(self, metric: str) -> dict[str, int | None]:
        """ROIs, lesions and patients a metric rests on: its class for AUC and sensitivity, the other
        classes for specificity, all for the rest."""
        name, _, cls = metric.partition("[")
        cls = cls.rstrip("]")
        key = "all" if not cls else (f"not {cls}" if name == "specificity" else cls)
        return self.counts.get(
            key, {"rois": self.n, "lesions": self.n_lesions, "patients": self.n_patients}
        )

    def table(self) -> pd.DataFrame:
        """Long table: metric, value, ci_low, ci_high and the ROIs, lesions, patients it rests on."""
        rows = []
        for name, value in self.values().items():
            lo, hi = self.ci.get(name, (math.nan, math.nan))
            n = self.counts_for(name)
            rows.append(
                {
                    "metric": name,
                    "value": value,
                    "ci_low": lo,
                    "ci_high": hi,
                    "n_rois": n["rois"],
                    "n_lesions": n["lesions"],
                    "n_patients": n["patients"],
                }
            )
        return pd.DataFrame(rows, columns=TABLE_COLUMNS)

    def ci_note(self) -> str:
        """One line saying how the intervals were made and on how many patients, lesions, ROIs."""
        if self.n_boot <= 0:
            return f"no confidence interval (bootstrap off); {self._sizes()}"
        unit = {"patient": "patient-level", "roi": "ROI-level"}.get(
            self.resampling_unit, self.resampling_unit
        )
        wilson = (
            "; accuracy, sensitivities and specificities: Wilson interval on the patient-clustered "
            "effective sample size"
            if self.proportion_ci == "wilson-cluster"
            else ""
        )
        return (
            f"{self.confidence:.0%} CI: {unit} bootstrap ({self.ci_method}, {self.n_boot} resamples)"
            f"{wilson} on {self._sizes()}"
        )

    def _sizes(self) -> str:
        """'151 patients, 189 lesions, 326 ROIs' (what is known of it)."""
        parts = []
        if self.n_patients is not None:
            parts.append(f"{self.n_patients} patients")
        if self.n_lesions is not None:
            parts.append(f"{self.n_lesions} lesions")
        parts.append(f"{self.n} ROIs")
        return ", ".join(parts)

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
        for key in HEAD_METRICS:
            d[key] = _nan_to_none(d[key])
        for key in PER_CLASS_METRICS:
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
        for key in HEAD_METRICS:  # records from before a metric existed read it as NaN
            d[key] = _none_to_nan(d.get(key))
        for key in PER_CLASS_METRICS:
            d[key] = {c: _none_to_nan(v) for c, v in d[key].items()}
        return cls(**d)


#: Columns of :meth:`Evaluation.table`.
TABLE_COLUMNS = ["metric", "value", "ci_low", "ci_high", "n_rois", "n_lesions", "n_patients"]


def _nan_to_none(v: float | None) -> float | None:
    """Float, or None for NaN (JSON has no NaN)."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _none_to_nan(v: float | None) -> float:
    """Float, NaN for None."""
    return math.nan if v is None else float(v)


def cluster_ids(manifest: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(patient id, lesion id) of every manifest row; a lesion is (patient, side, abnormality id).

    The CC and MLO views of one abnormality share patient, side and abnormality id, so they are one
    lesion; :func:`evaluate` resamples the patients and counts the lesions.
    """
    cols = ["patient_id", "side", "abnormality_id"]
    missing = [c for c in cols if c not in manifest.columns]
    if missing:
        raise DataError(
            f"manifest: missing column(s) {', '.join(missing)} (patient and lesion ids)"
        )
    for c in cols:
        na = manifest[c].isna().to_numpy()
        if na.any():
            raise DataError(f"manifest: missing {c} in row {manifest.index[na][0]!r}")
    patients = manifest["patient_id"].astype(str).to_numpy()
    abn = manifest["abnormality_id"].astype(str).str.replace(r"\.0$", "", regex=True)
    lesions = manifest["patient_id"].astype(str) + "|" + manifest["side"].astype(str) + "|" + abn
    return patients, lesions.to_numpy()


def _codes(ids: Any, n: int, what: str) -> np.ndarray:
    """Integer codes 0..g-1 of a per-ROI id array (DataError on a wrong length or a missing id)."""
    arr = np.asarray(ids, dtype=object) if not isinstance(ids, np.ndarray) else ids
    if arr.ndim != 1 or len(arr) != n:
        raise DataError(f"{what}: expected {n} ids (one per ROI), got shape {np.shape(arr)}")
    codes, _ = pd.factorize(pd.Series(arr), use_na_sentinel=True)
    if (codes < 0).any():
        raise DataError(f"{what}: missing id at position {int(np.flatnonzero(codes < 0)[0])}")
    return codes.astype(np.int64)


def _lesion_codes(lesions: Any, patients: np.ndarray | None, n: int) -> np.ndarray | None:
    """Integer lesion codes, a lesion id naming a lesion within its patient (None without ids)."""
    if lesions is None:
        return None
    les = _codes(lesions, n, "lesions")
    if patients is None:
        return les
    return _codes(patients * (int(les.max()) + 1) + les, n, "lesions")


def unit_counts(
    y: np.ndarray,
    groups: np.ndarray | None,
    lesions: np.ndarray | None,
    classes: Sequence[str] = CLASSES,
) -> dict[str, dict[str, int | None]]:
    """ROIs, lesions and patients of all ROIs, of each class and of the ROIs not of each class."""
    y = np.asarray(y)

    def count(mask: np.ndarray) -> dict[str, int | None]:
        """The three counts of the ROIs in ``mask``."""
        return {
            "rois": int(mask.sum()),
            "lesions": None if lesions is None else int(len(np.unique(lesions[mask]))),
            "patients": None if groups is None else int(len(np.unique(groups[mask]))),
        }

    out = {"all": count(np.ones(len(y), dtype=bool))}
    for k, c in enumerate(classes):
        out[c] = count(y == k)
    for k, c in enumerate(classes):
        out[f"not {c}"] = count(y != k)
    return out


def standard_mix(classes: Sequence[str] | None) -> np.ndarray | None:
    """The paper's Table 1 test mix (99/133/94) as weights in ``classes`` order; None for other classes."""
    from mcalc import paper  # the paper's numbers live there (one definition

    testing = paper.table1()["Testing"]
    if classes is None or sorted(classes) != sorted(testing.index):
        return None
    w = np.array([testing[c] for c in classes], dtype=float)
    return w / w.sum()


def _task_classes(classes: Sequence[str] | None, n_classes: int) -> tuple[str, ...] | None:
    """The class names of a metric vector: as given, else the study's three when there are three."""
    if classes is not None:
        return tuple(classes)
    return CLASSES if n_classes == len(CLASSES) else None


def brier_score(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Multi-class Brier score: mean over ROIs of Σ_k (p_k − y_k)² (``brier_score_loss`` × 2 for two classes)."""
    p = np.asarray(proba, dtype=float)
    return float(np.mean(((p - np.eye(p.shape[1])[np.asarray(y_true)]) ** 2).sum(axis=1)))


def _metric_vector(
    y: np.ndarray, p: np.ndarray, n_classes: int, classes: Sequence[str] | None = None
) -> np.ndarray:
    """All metrics of :meth:`Evaluation.values` for one data set, in that order, by scikit-learn.

    The one-vs-rest counts of ``multilabel_confusion_matrix`` give accuracy (TP summed over classes
    / n), sensitivity TP / (TP + FN) and specificity TN / (TN + FP) — the values of
    ``accuracy_score``, ``recall_score`` and :func:`specificity_per_class` — and the macro AUC is the
    mean of the per-class ``roc_auc_score(average=None)``, which is how scikit-learn defines
    ``average="macro"``. ``tests/test_metrics.py`` checks both against the single-metric functions,
    and the bootstrap's weighted, vectorised :func:`_weighted_metrics` against this. The
    prevalence-standardised accuracy weighs the per-class sensitivities by the paper's test mix
    (:func:`standard_mix`); the malignant sensitivity at 80% specificity is read off the one-vs-rest
    ROC curve of MALIGNANT (:func:`sensitivity_at_specificity` of that column alone).
    """
    names = _task_classes(classes, n_classes)
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


def _grouped_weights(
    W: np.ndarray, scores: np.ndarray, positive: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per distinct score (ascending): the summed weights of positives and of negatives, (R, n_distinct) each."""
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    Ws = W[:, order]
    pos = positive[order]
    return np.add.reduceat(Ws * pos, starts, axis=1), np.add.reduceat(Ws * ~pos, starts, axis=1)


def _weighted_auc(Wp: np.ndarray, Wn: np.ndarray) -> np.ndarray:
    """ROC AUC per row of weights: P(score of a positive > score of a negative), ties count one half."""
    below = np.cumsum(Wn, axis=1) - Wn
    num = (Wp * (below + 0.5 * Wn)).sum(axis=1)
    den = Wp.sum(axis=1) * Wn.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _weighted_sens_at_spec(Wp: np.ndarray, Wn: np.ndarray, specificity: float) -> np.ndarray:
    """Per row of weights: the largest TPR among ROC points with 1 - FPR ≥ ``specificity``."""
    tps = np.cumsum(Wp[:, ::-1], axis=1)  # thresholds from the highest score down
    fps = np.cumsum(Wn[:, ::-1], axis=1)
    P, N = tps[:, -1:], fps[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = tps / P
        fpr = fps / N
    ok = (1.0 - fpr) >= specificity - 1e-12
    best = np.max(np.where(ok, tpr, 0.0), axis=1, initial=0.0)  # the point (0, 0) is always allowed
    return np.where(P[:, 0] > 0, best, np.nan)


def _weighted_metrics(
    W: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    n_classes: int,
    classes: Sequence[str] | None = None,
) -> np.ndarray:
    """The metric vector of :func:`_metric_vector` for every row of ROI weights ``W`` at once, (m, R).

    A bootstrap resample that draws a patient twice is the data set with that patient's ROIs
    weighted 2: every metric here is the weighted form of its scikit-learn definition (confusion
    counts, the Mann–Whitney form of the ROC area with ties counted one half, the ROC points of the
    flattened one-hot targets, the clipped log loss), computed for all resamples by matrix products.
    """
    k = n_classes
    names = _task_classes(classes, n_classes)
    mix = standard_mix(names)
    malignant = names.index(POSITIVE_CLASS) if names and POSITIVE_CLASS in names else None
    Y = np.eye(k)[y]
    P1 = np.eye(k)[to_labels(p)]
    tot = W.sum(axis=1)
    tp = W @ (Y * P1)
    pos = W @ Y
    fp = W @ P1 - tp
    neg = tot[:, None] - pos
    tn = neg - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = np.where(pos > 0, tp / np.where(pos > 0, pos, 1), np.nan)
        spec = np.where(neg > 0, tn / np.where(neg > 0, neg, 1), np.nan)
    eps = np.finfo(np.float64).eps  # scikit-learn's log_loss clips to [eps, 1 - eps]
    per_roi_loss = -np.log(np.clip(p[np.arange(len(y)), y], eps, 1 - eps))
    auc = np.stack([_weighted_auc(*_grouped_weights(W, p[:, c], y == c)) for c in range(k)], axis=1)
    Wp, Wn = _grouped_weights(np.repeat(W, k, axis=1), p.ravel(), Y.ravel().astype(bool))
    head = np.stack(
        [
            tp.sum(axis=1) / tot,
            _weighted_auc(Wp, Wn),
            auc.mean(axis=1),
            _weighted_sens_at_spec(Wp, Wn, SPECIFICITY_TARGET),
            sens.mean(axis=1),
            spec.mean(axis=1),
            W @ per_roi_loss / tot,
            W @ ((p - Y) ** 2).sum(axis=1) / tot,
            sens @ mix if mix is not None else np.full(len(W), np.nan),
            _weighted_sens_at_spec(
                *_grouped_weights(W, p[:, malignant], y == malignant), SPECIFICITY_TARGET
            )
            if malignant is not None
            else np.full(len(W), np.nan),
        ],
        axis=1,
    )
    return np.concatenate([head, auc, sens, spec], axis=1).T


def _check_unit(unit: str | None, groups: Any) -> str:
    """The resampling unit: 'patient' when patient ids are given, else 'roi' (or as asked)."""
    unit = ("patient" if groups is not None else "roi") if unit is None else unit.lower()
    if unit not in RESAMPLING_UNITS:
        raise ValueError(f"unit must be one of {RESAMPLING_UNITS}, got {unit!r}")
    if unit == "patient" and groups is None:
        raise DataError("a patient-level bootstrap needs the patient id of every ROI (groups)")
    return unit


def _check_ci_args(method: str, confidence: float) -> str:
    """Lower-cased ``method`` after checking it and ``confidence``."""
    method = method.lower()
    if method not in CI_METHODS:
        raise ValueError(f"method must be one of {CI_METHODS}, got {method!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return method


def evaluate(
    y_true: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str] = CLASSES,
    n_boot: int = N_BOOT,
    seed: int = 0,
    confidence: float = 0.95,
    method: str = "percentile",
    *,
    groups: np.ndarray | None = None,
    lesions: np.ndarray | None = None,
    unit: str | None = None,
    roi_ids: Sequence[str] | None = None,
    proportion_ci: str = "wilson-cluster",
) -> Evaluation:
    """Point estimates and patient-level (cluster) bootstrap CIs of all metrics (see module doc).

    ``groups`` is the patient id of every ROI and ``lesions`` its lesion id (:func:`cluster_ids`);
    with ``groups`` the bootstrap resamples patients (``unit="patient"``, the default then), without
    it ROIs (``unit="roi"``, only for showing the difference). ``method`` is ``"percentile"``
    (default), ``"bca"`` or ``"basic"`` (``scipy.stats.bootstrap``); ``n_boot=0`` skips the bootstrap
    (all intervals NaN). With ``roi_ids`` the per-ROI predictions are kept in the evaluation
    (:attr:`Evaluation.predictions`), so that :func:`compare_evaluations` can pair it with another.
    Under the patient bootstrap, accuracy, sensitivities and specificities get :func:`cluster_wilson`
    intervals (``proportion_ci="wilson-cluster"``, the default) or the bootstrap's (``"bootstrap"``).
    """
    if proportion_ci not in ("wilson-cluster", "bootstrap"):
        raise ValueError(
            f"proportion_ci must be 'wilson-cluster' or 'bootstrap', got {proportion_ci!r}"
        )
    classes = tuple(classes)
    k = len(classes)
    y = _check_labels(y_true, k)
    p = _check_proba(proba, len(y), k)
    _require_all_classes(y, classes)
    method = _check_ci_args(method, confidence)
    unit = _check_unit(unit, groups)
    g = None if groups is None else _codes(groups, len(y), "groups")
    les = _lesion_codes(lesions, g, len(y))

    point = _metric_vector(y, p, k, classes)
    pred = to_labels(p)
    counts = unit_counts(y, g, les, classes)
    ev = Evaluation(
        classes=classes,
        n=int(len(y)),
        **{name: float(v) for name, v in zip(HEAD_METRICS, point)},
        auc={c: float(v) for c, v in zip(classes, point[len(HEAD_METRICS) :])},
        sensitivity={c: float(v) for c, v in zip(classes, point[len(HEAD_METRICS) + k :])},
        specificity={c: float(v) for c, v in zip(classes, point[len(HEAD_METRICS) + 2 * k :])},
        confusion=confusion(y, pred, k).tolist(),
        confidence=float(confidence),
        n_boot=int(max(n_boot, 0)),
        seed=int(seed),
        ci_method=method,
        roc_points={c: (f.tolist(), t.tolist()) for c, (f, t) in roc_curves(y, p, classes).items()},
        resampling_unit=unit,
        n_patients=counts["all"]["patients"],
        n_lesions=counts["all"]["lesions"],
        counts=counts,
    )
    if roi_ids is not None:
        ev.predictions = _predictions(roi_ids, groups, lesions, y, p)
    names = list(ev.values())
    if n_boot <= 0:
        ev.ci = {name: (math.nan, math.nan) for name in names}
        return ev
    lo, hi = bootstrap_ci(
        y,
        p,
        n_boot=n_boot,
        seed=seed,
        confidence=confidence,
        method=method,
        groups=g if unit == "patient" else None,
        classes=classes,
    )
    ev.ci = {name: (float(a), float(b)) for name, a, b in zip(names, lo, hi)}
    if (
        unit == "patient" and proportion_ci == "wilson-cluster"
    ):  # proportions: the cluster-adjusted Wilson interval (not degenerate at 0, 1)
        for name, (success, mask) in _proportions(y, pred, classes).items():
            ev.ci[name] = cluster_wilson(success[mask], g[mask], confidence)
        ev.proportion_ci = "wilson-cluster"
    return ev


def _proportions(
    y: np.ndarray, pred: np.ndarray, classes: Sequence[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each proportion metric as (success per ROI, the ROIs of its denominator)."""
    out = {"accuracy": (pred == y, np.ones(len(y), dtype=bool))}
    for k, c in enumerate(classes):
        out[f"sensitivity[{c}]"] = (pred == k, y == k)
    for k, c in enumerate(classes):
        out[f"specificity[{c}]"] = (pred != k, y != k)
    return out


def cluster_wilson(
    success: np.ndarray, clusters: np.ndarray, confidence: float = 0.95
) -> tuple[float, float]:
    """Wilson score interval of a proportion of clustered ROIs, on the effective sample size n / deff.

    The design effect deff is the ratio of the cluster (patient) variance of the ratio estimator,
    g/(g−1) · Σ_i (a_i − p̂ m_i)² / n², to the binomial variance p̂(1 − p̂)/n (a_i successes among the
    m_i ROIs of patient i, g patients, n ROIs), at least 1 (Korn & Graubard 1998's effective-sample-size
    interval). Where it cannot be estimated — p̂ of 0 or 1, or a single patient — deff is n / g, the
    design effect of ROIs that always agree within a patient, so the interval rests on the number of
    patients: 17 patients all correct give a lower limit of 0.82 at 95%, never a degenerate [1, 1].
    """
    a = np.asarray(success, dtype=float)
    n = len(a)
    if n == 0:
        return math.nan, math.nan
    codes = _codes(clusters, n, "clusters")
    g = int(codes.max()) + 1
    m = np.bincount(codes, minlength=g).astype(float)
    s = np.bincount(codes, weights=a, minlength=g)
    phat = float(a.mean())
    if 0.0 < phat < 1.0 and g > 1:
        v_cluster = g / (g - 1) * float(((s - phat * m) ** 2).sum()) / n**2
        deff = max(1.0, v_cluster / (phat * (1 - phat) / n))
    else:
        deff = n / g
    n_eff = n / deff
    z = float(norm.ppf(0.5 + confidence / 2))
    centre = (phat + z**2 / (2 * n_eff)) / (1 + z**2 / n_eff)
    half = z / (1 + z**2 / n_eff) * math.sqrt(phat * (1 - phat) / n_eff + z**2 / (4 * n_eff**2))
    return max(0.0, centre - half), min(1.0, centre + half)


def _predictions(
    roi_ids: Sequence[str], groups: Any, lesions: Any, y: np.ndarray, p: np.ndarray
) -> dict[str, list]:
    """The per-ROI record an evaluation keeps for paired comparisons (JSON-serialisable)."""
    ids = [str(r) for r in roi_ids]
    if len(ids) != len(y):
        raise DataError(f"roi_ids: {len(ids)} ids for {len(y)} ROIs")
    if len(set(ids)) != len(ids):
        raise DataError("roi_ids: duplicate ROI id")
    return {
        "roi_id": ids,
        "patient_id": None
        if groups is None
        else [str(g) for g in np.asarray(groups, dtype=object)],
        "lesion_id": None
        if lesions is None
        else [str(v) for v in np.asarray(lesions, dtype=object)],
        "label": [int(v) for v in y],
        "proba": [[float(v) for v in row] for row in p],
    }


def evaluate_rows(
    rows: pd.DataFrame,
    proba: np.ndarray,
    n_boot: int = N_BOOT,
    seed: int = 0,
    classes: Sequence[str] = CLASSES,
) -> Evaluation:
    """:func:`evaluate` of manifest rows: labels, patient and lesion ids and ROI ids read from ``rows``.

    The study's one way to evaluate predictions: the bootstrap resamples patients, the counts of
    patients and lesions are recorded, and the per-ROI predictions are kept for paired comparisons.
    """
    if "label" not in rows.columns or "roi_id" not in rows.columns:
        raise DataError("evaluate_rows: the rows need 'label' and 'roi_id' columns")
    patients, lesions = cluster_ids(rows)
    return evaluate(
        rows["label"].to_numpy(dtype=np.int64),
        proba,
        classes,
        n_boot=n_boot,
        seed=seed,
        groups=patients,
        lesions=lesions,
        roi_ids=rows["roi_id"].astype(str).tolist(),
    )


def compare_evaluations(
    a: Evaluation,
    b: Evaluation,
    metrics: Sequence[str] = ("accuracy", "auc_pooled", "auc_macro", "sensitivity_at_spec80"),
    n_boot: int | None = None,
    seed: int | None = None,
) -> pd.DataFrame:
    """Paired patient-level bootstrap of ``a`` − ``b`` on the ROIs both evaluated (matched by ROI id).

    Both evaluations must have kept their predictions (:func:`evaluate_rows`) on the same set of
    ROIs; ``n_boot`` and ``seed`` default to ``a``'s. Returns :func:`paired_difference`'s table.
    """
    for name, ev in (("a", a), ("b", b)):
        if not ev.predictions:
            raise DataError(f"compare_evaluations: evaluation {name} kept no per-ROI predictions")
    pa, pb = a.predictions, b.predictions
    if set(pa["roi_id"]) != set(pb["roi_id"]):
        raise DataError(
            "compare_evaluations: the two evaluations are not on the same ROIs "
            f"({len(pa['roi_id'])} and {len(pb['roi_id'])} ROIs, "
            f"{len(set(pa['roi_id']) ^ set(pb['roi_id']))} not in both)"
        )
    order = {r: i for i, r in enumerate(pb["roi_id"])}
    j = np.array([order[r] for r in pa["roi_id"]])
    y = np.asarray(pa["label"], dtype=np.int64)
    if not np.array_equal(y, np.asarray(pb["label"], dtype=np.int64)[j]):
        raise DataError("compare_evaluations: the two evaluations disagree on the labels")
    return paired_difference(
        y,
        np.asarray(pa["proba"], dtype=float),
        np.asarray(pb["proba"], dtype=float)[j],
        a.classes,
        metrics,
        n_boot=a.n_boot if n_boot is None else n_boot,
        seed=a.seed if seed is None else seed,
        confidence=a.confidence,
        groups=pa["patient_id"],
        lesions=pa["lesion_id"],
    )


def _strata(
    codes: np.ndarray, y: np.ndarray, n_classes: int
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Patients grouped by the class most of their ROIs have: strata of ≥ 2 patients, and the rest (fixed)."""
    n_units = int(codes.max()) + 1
    per_unit = np.zeros((n_units, n_classes), dtype=np.int64)
    np.add.at(per_unit, (codes, y), 1)
    major = per_unit.argmax(axis=1)
    by_class = [np.flatnonzero(major == c) for c in range(n_classes)]
    strata = tuple(idx for idx in by_class if len(idx) >= 2)
    fixed = np.concatenate([idx for idx in by_class if len(idx) < 2] + [np.zeros(0, np.int64)])
    return strata, fixed


def cluster_bootstrap(
    statistic: Any,
    codes: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    n_boot: int = N_BOOT,
    seed: int = 0,
    confidence: float = 0.95,
    method: str = "percentile",
    cells_per_roi: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified cluster bootstrap with ``scipy.stats.bootstrap``: (low, high, distribution (m, n_boot)).

    ``codes`` (0..g-1) names the cluster (patient) of every ROI; ``statistic(W)`` maps ROI weights
    ``W`` of shape (R, n) — how many times each ROI's cluster was drawn in each of R resamples — to
    an (m, R) array of metrics. scipy resamples the cluster indices of each stratum (see
    :func:`_strata`); the resamples are turned into weights and evaluated all at once, in batches
    that keep ``R · n · cells_per_roi`` below a few million cells.
    """
    method = _check_ci_args(method, confidence)
    codes = np.asarray(codes, dtype=np.int64)
    n_units = int(codes.max()) + 1
    strata, fixed = _strata(codes, y, n_classes)
    m = statistic(np.ones((1, len(codes)))).shape[0]
    if not strata:
        return np.full(m, np.nan), np.full(m, np.nan), np.full((m, 0), np.nan)

    def stat(*idx: np.ndarray, axis: int = -1) -> np.ndarray:
        """Metrics of the resample(s) made of the given cluster indices of every stratum."""
        lead = idx[0].shape[:-1]
        r = int(np.prod(lead, dtype=np.int64))
        counts = np.zeros((r, n_units))
        rows = np.arange(r, dtype=np.int64)[:, None] * n_units
        for a in idx:
            a2 = np.broadcast_to(np.asarray(a, dtype=np.int64), lead + a.shape[-1:]).reshape(r, -1)
            counts += np.bincount((rows + a2).ravel(), minlength=r * n_units).reshape(r, n_units)
        counts[:, fixed] += 1
        out = statistic(counts[:, codes])
        return out.reshape(out.shape[:1] + lead)

    batch = max(1, min(int(n_boot), _CELLS_PER_BATCH // max(1, len(codes) * cells_per_roi)))
    scipy_method = {"bca": "BCa"}.get(method, method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate-BCa and NaN warnings: handled below
        res = bootstrap(
            strata,
            stat,
            n_resamples=int(n_boot),
            batch=batch,
            vectorized=True,
            paired=False,
            confidence_level=confidence,
            method=scipy_method,
            rng=np.random.default_rng(seed),
        )
    lo = np.array(res.confidence_interval.low, dtype=float).reshape(m)
    hi = np.array(res.confidence_interval.high, dtype=float).reshape(m)
    dist = np.asarray(res.bootstrap_distribution, dtype=float).reshape(m, -1)
    bad = ~(np.isfinite(lo) & np.isfinite(hi))
    if bad.any():  # undefined BCa, or a metric undefined in some resamples: percentile of the rest
        alpha = (1 - confidence) / 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # all-NaN rows stay NaN
            lo[bad] = np.nanquantile(dist[bad], alpha, axis=-1)
            hi[bad] = np.nanquantile(dist[bad], 1 - alpha, axis=-1)
    return lo, hi, dist


def bootstrap_ci(
    y: np.ndarray,
    proba: np.ndarray,
    n_boot: int = N_BOOT,
    seed: int = 0,
    confidence: float = 0.95,
    method: str = "percentile",
    groups: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper CI bounds of the metric vector of :meth:`Evaluation.values`.

    Patients (``groups``) are resampled whole, stratified by their majority class; without
    ``groups`` every ROI is its own cluster (the ROI-level bootstrap).
    """
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    k = p.shape[1]
    codes = np.arange(len(y)) if groups is None else _codes(groups, len(y), "groups")
    lo, hi, _ = cluster_bootstrap(
        lambda W: _weighted_metrics(W, y, p, k, classes),
        codes,
        y,
        k,
        n_boot=n_boot,
        seed=seed,
        confidence=confidence,
        method=method,
        cells_per_roi=2 * k + 2,
    )
    return lo, hi


#: Columns of :func:`paired_difference`.
PAIRED_COLUMNS = [
    "metric",
    "a",
    "b",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "resampling_unit",
    "n_patients",
    "n_lesions",
    "n_rois",
]


def paired_difference(
    y_true: np.ndarray,
    proba_a: np.ndarray,
    proba_b: np.ndarray,
    classes: Sequence[str] = CLASSES,
    metrics: Sequence[str] = ("accuracy", "auc_pooled", "auc_macro", "sensitivity_at_spec80"),
    n_boot: int = N_BOOT,
    seed: int = 0,
    confidence: float = 0.95,
    method: str = "percentile",
    *,
    groups: np.ndarray | None = None,
    lesions: np.ndarray | None = None,
    unit: str | None = None,
) -> pd.DataFrame:
    """Paired patient-level bootstrap of metric(a) − metric(b) on the same ROIs: CI and two-sided p.

    Both models' predictions of a drawn patient enter the same resample, so the interval is that of
    the *difference* (the correlation between the two models on the same patients is kept). The
    p-value is twice the smaller bootstrap fraction of differences ≤ 0 and ≥ 0 (at most 1); "a beats
    b" on a metric where the whole interval lies above 0.
    """
    classes = tuple(classes)
    k = len(classes)
    y = _check_labels(y_true, k)
    pa = _check_proba(proba_a, len(y), k)
    pb = _check_proba(proba_b, len(y), k)
    _require_all_classes(y, classes)
    method = _check_ci_args(method, confidence)
    unit = _check_unit(unit, groups)
    names = metric_names(classes)
    unknown = [m for m in metrics if m not in names]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {names}")
    sel = np.array([names.index(m) for m in metrics])
    g = None if groups is None else _codes(groups, len(y), "groups")
    les = _lesion_codes(lesions, g, len(y))
    va = _metric_vector(y, pa, k, classes)[sel]
    vb = _metric_vector(y, pb, k, classes)[sel]
    lo = hi = pval = np.full(len(sel), np.nan)
    if n_boot > 0:
        codes = g if unit == "patient" else np.arange(len(y))
        lo, hi, dist = cluster_bootstrap(
            lambda W: (
                _weighted_metrics(W, y, pa, k, classes)[sel]
                - _weighted_metrics(W, y, pb, k, classes)[sel]
            ),
            codes,
            y,
            k,
            n_boot=n_boot,
            seed=seed,
            confidence=confidence,
            method=method,
            cells_per_roi=4 * k + 4,
        )
        with np.errstate(invalid="ignore"):
            defined = np.isfinite(dist)
            n_def = np.maximum(defined.sum(axis=1), 1)
            below = ((dist <= 0) & defined).sum(axis=1) / n_def
            above = ((dist >= 0) & defined).sum(axis=1) / n_def
            pval = np.where(
                defined.any(axis=1), np.minimum(1.0, 2 * np.minimum(below, above)), np.nan
            )
    n_pat = None if g is None else int(len(np.unique(g)))
    n_les = None if les is None else int(len(np.unique(les)))
    return pd.DataFrame(
        {
            "metric": list(metrics),
            "a": va,
            "b": vb,
            "difference": va - vb,
            "ci_low": lo,
            "ci_high": hi,
            "p_value": pval,
            "resampling_unit": unit,
            "n_patients": n_pat,
            "n_lesions": n_les,
            "n_rois": int(len(y)),
        },
        columns=PAIRED_COLUMNS,
    )


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


#: Metrics :func:`interval_comparison` sets side by side by default.
COMPARISON_METRICS = (
    "accuracy",
    "auc_pooled",
    "auc_macro",
    "sensitivity_at_spec80",
    "sensitivity[MALIGNANT]",
    "auc[BENIGN_WITHOUT_CALLBACK]",
)


def interval_comparison(
    y_true: np.ndarray,
    proba: np.ndarray,
    groups: np.ndarray,
    lesions: np.ndarray | None = None,
    metrics: Sequence[str] = COMPARISON_METRICS,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """ROI-level and patient-level 95% intervals of the same predictions, and how much narrower the first is."""
    ev = {
        unit: evaluate(
            y_true,
            proba,
            n_boot=n_boot,
            seed=seed,
            groups=groups,
            lesions=lesions,
            unit=unit,
            proportion_ci="bootstrap",
        )
        for unit in RESAMPLING_UNITS
    }
    rows = []
    for m in metrics:
        n = ev["patient"].counts_for(m)
        (plo, phi), (rlo, rhi) = ev["patient"].ci[m], ev["roi"].ci[m]
        rows.append(
            {
                "metric": m,
                "value": ev["patient"].values()[m],
                "ROIs": n["rois"],
                "patients": n["patients"],
                "ROI-level CI": f"[{rlo:.3f}, {rhi:.3f}]",
                "patient-level CI": f"[{plo:.3f}, {phi:.3f}]",
                "ROI-level width / patient-level width": (rhi - rlo) / (phi - plo)
                if phi > plo
                else math.nan,
            }
        )
    return pd.DataFrame(rows)


def reliability(ev: Evaluation, n_bins: int = 10) -> pd.DataFrame:
    """Reliability of the top-class probability: per bin of confidence, its mean and the accuracy.

    Multi-class reliability as usually drawn: each ROI's confidence is its largest predicted
    probability and it is right when that class is its label; ``sklearn.calibration.calibration_curve``
    bins them (equal-width bins, empty bins left out). Needs the evaluation's kept predictions
    (:func:`evaluate_rows`). Columns: confidence, accuracy, ROIs.
    """
    from sklearn.calibration import calibration_curve

    if not ev.predictions:
        raise DataError("reliability: the evaluation kept no per-ROI predictions")
    p = np.asarray(ev.predictions["proba"], dtype=float)
    y = np.asarray(ev.predictions["label"], dtype=np.int64)
    conf = p.max(axis=1)
    right = (p.argmax(axis=1) == y).astype(int)
    acc, mean_conf = calibration_curve(right, conf, n_bins=n_bins, strategy="uniform")
    edges = np.linspace(0, 1, n_bins + 1)
    counts = np.bincount(
        np.searchsorted(edges[1:-1], conf), minlength=n_bins
    )  # calibration_curve's bins
    return pd.DataFrame({"confidence": mean_conf, "accuracy": acc, "ROIs": counts[counts > 0]})
