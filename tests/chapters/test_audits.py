"""The leakage audit's gap and its interval over split seeds (mcalc.chapters.audits.LeakageAudit)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mcalc.chapters.audits import LeakageAudit
from mcalc.records.provenance import Provenance


def audit(roi: list[float], grouped: list[float]) -> LeakageAudit:
    """An audit whose repeats hold the given test accuracies per split seed."""
    rows = [
        {
            "scheme": scheme,
            "split seed": k,
            "test ROIs": 300,
            "accuracy": a,
            "AUC": a,
            "1-NN accuracy on the features": a,
        }
        for scheme, values in (("roi_level", roi), ("patient_grouped", grouped))
        for k, a in enumerate(values)
    ]
    return LeakageAudit({}, pd.DataFrame(), Provenance(data="phantom"), {}, pd.DataFrame(rows))


def test_gap_has_the_welch_interval_over_split_seeds():
    """The gap is the difference of the means; its interval is Welch's t interval, shown in the table."""
    rng = np.random.default_rng(0)
    roi, grouped = list(0.72 + 0.01 * rng.normal(size=10)), list(0.70 + 0.01 * rng.normal(size=10))
    a = audit(roi, grouped)
    diff, lo, hi = a.gap("accuracy")
    assert diff == pytest.approx(np.mean(roi) - np.mean(grouped))
    ci = stats.ttest_ind(roi, grouped, equal_var=False).confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((ci.low, ci.high))
    assert lo < diff < hi and lo > 0  # ten seeds resolve a 0.02 gap at SD 0.01
    row = a.table().loc["(b) − (c): what leakage adds on the same data, 95% CI over split seeds"]
    assert row["accuracy"] == f"{diff:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def test_gap_without_enough_seeds_has_no_interval():
    """One seed per scheme: the difference, but no interval (and the table says none)."""
    diff, lo, hi = audit([0.75], [0.70]).gap()
    assert diff == pytest.approx(0.05) and math.isnan(lo) and math.isnan(hi)
    row = audit([0.75], [0.70]).table().iloc[-1]
    assert row["accuracy"] == "+0.050"


def test_the_answer_is_said_from_the_repeats():
    """Chapter 6's first sentence: both means, the gap and its interval, and the seeds that ran."""
    rng = np.random.default_rng(1)
    roi, grouped = list(0.72 + 0.01 * rng.normal(size=6)), list(0.70 + 0.01 * rng.normal(size=6))
    a = audit(roi, grouped)
    diff, lo, hi = a.gap()
    text = a.answer()
    assert f"{np.mean(roi):.3f} against {np.mean(grouped):.3f} (6 split seeds each)" in text
    assert f"a difference of {diff:+.3f}" in text and f"{lo:+.3f} to {hi:+.3f}" in text
    assert "a lower mean test accuracy than" in audit(grouped, roi).answer()
    assert "one split seed" in audit([0.75], [0.70]).answer()
    empty = LeakageAudit({}, pd.DataFrame(), Provenance(data="phantom"))
    assert empty.answer() == "Both split schemes are needed to say what leakage adds."
