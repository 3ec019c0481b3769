"""The evaluation of a model's predictions: point estimates, intervals and the counts they rest on.

:func:`evaluate` (and :func:`evaluate_rows`, the study's one way to evaluate manifest rows) computes
every metric of :mod:`mcalc.evaluate.metrics` with its patient-level interval
(:mod:`mcalc.evaluate.bootstrap`). Each :class:`Evaluation` states the numbers its intervals rest on:
``resampling_unit``, ROIs, lesions (patient, side, abnormality id — one lesion seen in two views is
one lesion) and patients, overall and per class (:attr:`Evaluation.counts`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mcalc.errors import DataError
from mcalc.evaluate.bootstrap import (
    RESAMPLING_UNITS,
    bootstrap_ci,
    check_ci_args,
    check_unit,
    cluster_wilson,
    paired_difference,
)
from mcalc.evaluate.clusters import cluster_codes, cluster_ids, lesion_codes, unit_counts
from mcalc.evaluate.metrics import (
    HEAD_METRICS,
    PER_CLASS_METRICS,
    check_labels,
    check_proba,
    confusion,
    metric_vector,
    require_all_classes,
    roc_curves,
    to_labels,
)
from mcalc.study import CLASSES, N_BOOT

__all__ = [
    "Evaluation",
    "TABLE_COLUMNS",
    "evaluate",
    "evaluate_rows",
    "compare_evaluations",
    "COMPARISON_METRICS",
    "interval_comparison",
    "reliability",
]


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
    #: "wilson-cluster" where accuracy, sensitivities and specificities carry cluster-Wilson
    #: intervals (:func:`~mcalc.evaluate.bootstrap.cluster_wilson`) instead of bootstrap ones ("" where every interval is the bootstrap's)
    proportion_ci: str = ""
    #: number of distinct patients (None where no patient ids were given)
    n_patients: int | None = None
    #: number of distinct lesions (patient, side, abnormality id; None where not given)
    n_lesions: int | None = None
    #: "all", each class and "not CLASS" -> {"rois", "lesions", "patients"}
    #: (see :func:`~mcalc.evaluate.clusters.unit_counts`)
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

    ``groups`` is the patient id of every ROI and ``lesions`` its lesion id
    (:func:`~mcalc.evaluate.clusters.cluster_ids`);
    with ``groups`` the bootstrap resamples patients (``unit="patient"``, the default then), without
    it ROIs (``unit="roi"``, only for showing the difference). ``method`` is ``"percentile"``
    (default), ``"bca"`` or ``"basic"`` (``scipy.stats.bootstrap``); ``n_boot=0`` skips the bootstrap
    (all intervals NaN). With ``roi_ids`` the per-ROI predictions are kept in the evaluation
    (:attr:`Evaluation.predictions`), so that :func:`compare_evaluations` can pair it with another.
    Under the patient bootstrap, accuracy, sensitivities and specificities get cluster-Wilson
    intervals (:func:`~mcalc.evaluate.bootstrap.cluster_wilson`; ``proportion_ci="wilson-cluster"``,
    the default) or the bootstrap's (``"bootstrap"``).
    """
    if proportion_ci not in ("wilson-cluster", "bootstrap"):
        raise ValueError(
            f"proportion_ci must be 'wilson-cluster' or 'bootstrap', got {proportion_ci!r}"
        )
    classes = tuple(classes)
    k = len(classes)
    y = check_labels(y_true, k)
    p = check_proba(proba, len(y), k)
    require_all_classes(y, classes)
    method = check_ci_args(method, confidence)
    unit = check_unit(unit, groups)
    g = None if groups is None else cluster_codes(groups, len(y), "groups")
    les = lesion_codes(lesions, g, len(y))

    point = metric_vector(y, p, k, classes)
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
    ROIs; ``n_boot`` and ``seed`` default to ``a``'s. Returns the table of
    :func:`~mcalc.evaluate.bootstrap.paired_difference`.
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
