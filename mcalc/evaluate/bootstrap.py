"""Patient-level (cluster) bootstrap and cluster-Wilson intervals of the metrics (paper §2.5).

The resampling unit is the **patient**. CBIS-DDSM ROIs are clustered — the two views (CC, MLO) of one
lesion, several lesions of one breast, both breasts of one patient — so ROIs are not independent, and
a bootstrap over ROIs gives intervals that are too narrow (most of all for BENIGN_WITHOUT_CALLBACK,
whose test ROIs come from a handful of patients). Patients are drawn with replacement and each drawn
patient brings *all* of their ROIs, labels and predicted probabilities together (paired).
``scipy.stats.bootstrap`` resamples the patient *indices*; the statistic turns each resample into a
weight per ROI (how often its patient was drawn) and computes every metric of every resample at once
from those weights (vectorised: no Python loop over resamples), which equals the metric on the
resample written out ROI by ROI (``tests/evaluate/test_bootstrap.py`` checks this against
scikit-learn).

Resampling is *stratified*: each patient is assigned to the class most of their ROIs have (ties to
the first in class order) and the patients of each class are resampled separately at their observed
number, so that every class is present in every resample and the per-class metrics are defined; a
class whose patients number one is kept as it is (its only resample is itself). Where a per-class
metric is still undefined in a resample (a class held only by a minority of some patient's ROIs),
the interval is read from the resamples where it is defined. Where the BCa interval is undefined
(a degenerate bootstrap distribution, e.g. a sensitivity of 1 in every resample), the percentile
interval of the same resamples is reported instead. ``unit="roi"`` (or no ``groups``) gives the
ROI-level bootstrap, kept only to show how much too narrow it is (the book's methods page).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import bootstrap, norm

from mcalc.errors import DataError
from mcalc.evaluate.clusters import cluster_codes, lesion_codes
from mcalc.evaluate.metrics import (
    POSITIVE_CLASS,
    SPECIFICITY_TARGET,
    check_labels,
    check_proba,
    metric_names,
    metric_vector,
    require_all_classes,
    standard_mix,
    task_classes,
    to_labels,
)
from mcalc.study import CLASSES, N_BOOT

__all__ = [
    "CI_METHODS",
    "RESAMPLING_UNITS",
    "check_unit",
    "check_ci_args",
    "cluster_wilson",
    "cluster_bootstrap",
    "bootstrap_ci",
    "PAIRED_COLUMNS",
    "paired_difference",
]

#: Bootstrap interval methods accepted by ``evaluate`` (scipy names, lower case).
CI_METHODS = ("percentile", "bca", "basic")


#: What a bootstrap may resample: whole patients (every interval of the study) or single ROIs.
RESAMPLING_UNITS = ("patient", "roi")


#: Above this many (resample, ROI-class) cells, the bootstrap is computed in batches of resamples.
_CELLS_PER_BATCH = 2_000_000


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
    """The metric vector of :func:`~mcalc.evaluate.metrics.metric_vector` for every row of weights ``W``, (m, R).

    A bootstrap resample that draws a patient twice is the data set with that patient's ROIs
    weighted 2: every metric here is the weighted form of its scikit-learn definition (confusion
    counts, the Mann–Whitney form of the ROC area with ties counted one half, the ROC points of the
    flattened one-hot targets, the clipped log loss), computed for all resamples by matrix products.
    """
    k = n_classes
    names = task_classes(classes, n_classes)
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


def check_unit(unit: str | None, groups: Any) -> str:
    """The resampling unit: 'patient' when patient ids are given, else 'roi' (or as asked)."""
    unit = ("patient" if groups is not None else "roi") if unit is None else unit.lower()
    if unit not in RESAMPLING_UNITS:
        raise ValueError(f"unit must be one of {RESAMPLING_UNITS}, got {unit!r}")
    if unit == "patient" and groups is None:
        raise DataError("a patient-level bootstrap needs the patient id of every ROI (groups)")
    return unit


def check_ci_args(method: str, confidence: float) -> str:
    """Lower-cased ``method`` after checking it and ``confidence``."""
    method = method.lower()
    if method not in CI_METHODS:
        raise ValueError(f"method must be one of {CI_METHODS}, got {method!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return method


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
    codes = cluster_codes(clusters, n, "clusters")
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
    method = check_ci_args(method, confidence)
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
    """Lower and upper CI bounds of the metric vector of :func:`~mcalc.evaluate.metrics.metric_names`.

    Patients (``groups``) are resampled whole, stratified by their majority class; without
    ``groups`` every ROI is its own cluster (the ROI-level bootstrap).
    """
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    k = p.shape[1]
    codes = np.arange(len(y)) if groups is None else cluster_codes(groups, len(y), "groups")
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
    y = check_labels(y_true, k)
    pa = check_proba(proba_a, len(y), k)
    pb = check_proba(proba_b, len(y), k)
    require_all_classes(y, classes)
    method = check_ci_args(method, confidence)
    unit = check_unit(unit, groups)
    names = metric_names(classes)
    unknown = [m for m in metrics if m not in names]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {names}")
    sel = np.array([names.index(m) for m in metrics])
    g = None if groups is None else cluster_codes(groups, len(y), "groups")
    les = lesion_codes(lesions, g, len(y))
    va = metric_vector(y, pa, k, classes)[sel]
    vb = metric_vector(y, pb, k, classes)[sel]
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
