"""What the official test split can detect: its patient / lesion / ROI structure, the design effect of
its patient clustering and the minimum detectable differences at the plan's power (used by :mod:`mcalc.evaluate.plan`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.stats import norm

__all__ = [
    "ALPHA",
    "POWER",
    "Design",
    "power_design",
    "mdd_proportion",
    "mdd_paired",
    "mdd_auc",
]

#: Two-sided significance level of every test of the plan (each one-sided test of TOST at α too).
ALPHA = 0.05
#: Power at which the minimum detectable difference is stated.
POWER = 0.80


@dataclass(frozen=True)
class Design:
    """The official test split's structure and the design effect of its patient clustering."""

    n_rois: int
    n_lesions: int
    n_patients: int
    design_effect: (
        float  # variance of an accuracy under patient clustering / under independent ROIs
    )
    n_train_rois: int

    @property
    def n_effective(self) -> float:
        """ROIs' worth of independent information: ROIs / design effect."""
        return self.n_rois / self.design_effect


def _cluster_design_effect(correct: np.ndarray, clusters: np.ndarray) -> float:
    """Kish's design effect of a mean of 0/1 outcomes: cluster-robust variance / binomial variance."""
    x = np.asarray(correct, dtype=float)
    n, p = len(x), float(np.mean(x))
    iid = p * (1 - p) / n
    sums = pd.Series(x - p).groupby(np.asarray(clusters)).sum().to_numpy()
    robust = float((sums**2).sum()) / n**2
    return robust / iid if iid > 0 else 1.0


@lru_cache(maxsize=1)
def power_design() -> Design:
    """The official test split's ROIs, lesions and patients (shipped tables), and its design effect.

    The design effect is measured on the one real prediction every build has: the BI-RADS
    assessment rule (learned on the official training table) on the official test table.
    """
    from mcalc.evaluate.clusters import cluster_ids
    from mcalc.evaluate.metadata import assessment_rule, read_real_tables

    rows = read_real_tables()
    train, test = rows[rows["split"] == "train"], rows[rows["split"] == "test"]
    patients, lesions = cluster_ids(test)
    proba = assessment_rule(train, test)
    correct = proba.argmax(axis=1) == test["label"].to_numpy(dtype=int)
    return Design(
        n_rois=len(test),
        n_lesions=len(set(lesions)),
        n_patients=len(set(patients)),
        design_effect=_cluster_design_effect(correct, patients),
        n_train_rois=len(train),
    )


def _z_sum(alpha: float = ALPHA, power: float = POWER) -> float:
    """z(1 − α/2) + z(power): the detectable difference in standard errors."""
    return float(norm.ppf(1 - alpha / 2) + norm.ppf(power))


def mdd_proportion(p: float, n_effective: float) -> float:
    """Minimum detectable difference of a proportion near ``p`` (accuracy, sensitivity)."""
    return _z_sum() * math.sqrt(p * (1 - p) / n_effective)


def mdd_paired(p_a: float, p_b: float, n_effective: float) -> float:
    """Minimum detectable difference of two accuracies on the same ROIs (errors taken as independent)."""
    p10, p01 = p_a * (1 - p_b), (1 - p_a) * p_b
    return _z_sum() * math.sqrt((p10 + p01 - (p10 - p01) ** 2) / n_effective)


def mdd_auc(auc: float, n_pos: float, n_neg: float) -> float:
    """Minimum detectable difference of an AUC (Hanley and McNeil's standard error)."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (
        n_pos * n_neg
    )
    return _z_sum() * math.sqrt(var)
