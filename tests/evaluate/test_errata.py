"""Tests for mcalc.evaluate.errata: the paper's Eq. 4 and Eq. 5 against the correct formulas, by hand."""

from __future__ import annotations

import numpy as np
import pytest
from metric_cases import CM, HAND_ACC, HAND_ACC_EQ5, HAND_ACC_OVR, HAND_SPEC, HAND_SPEC_EQ4

from mcalc.errors import DataError
from mcalc.evaluate import errata as ER
from mcalc.study import CLASSES


def test_paper_formula_errata_hand_worked() -> None:
    df = ER.paper_formula_errata(CM)
    per_class = df[df["class"] != "all"]
    assert list(per_class["class"]) == list(CLASSES)
    assert per_class[["TP", "FN", "FP", "TN"]].to_numpy().tolist() == [
        [5, 3, 1, 16],
        [6, 2, 4, 13],
        [7, 2, 2, 14],
    ]
    np.testing.assert_allclose(per_class["specificity_eq4_paper"], HAND_SPEC_EQ4)
    np.testing.assert_allclose(per_class["specificity_correct"], HAND_SPEC)
    np.testing.assert_allclose(per_class["accuracy_eq5_paper"], HAND_ACC_EQ5)
    np.testing.assert_allclose(per_class["accuracy_correct"], HAND_ACC_OVR)
    np.testing.assert_allclose(
        per_class["specificity_error"], np.subtract(HAND_SPEC_EQ4, HAND_SPEC)
    )
    overall = df[df["class"] == "all"].iloc[0]
    assert overall["accuracy_correct"] == pytest.approx(HAND_ACC)
    # the printed Eq. 5 exceeds 1 here: it is not a proportion
    assert (per_class["accuracy_eq5_paper"] > 1).all()


def test_paper_formula_errata_rejects_bad_matrix() -> None:
    with pytest.raises(DataError, match="shape"):
        ER.paper_formula_errata(np.ones((2, 2)))
    with pytest.raises(DataError, match="non-negative"):
        ER.paper_formula_errata(-np.ones((3, 3)))
