"""The paper's two misprinted formulas against the correct definitions (paper §2.5, Eq. 4 and 5).

The paper prints Eq. 4, specificity = TP / (TN + FP), and Eq. 5,
accuracy = (TP + TN + FP) / (TP + FP + FN). The study uses the correct definitions
(specificity = TN / (TN + FP), accuracy = correct / total); :func:`paper_formula_errata` shows what the
printed formulas would give on a confusion matrix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import multilabel_confusion_matrix

from mcalc.errors import DataError
from mcalc.evaluate.metrics import accuracy
from mcalc.study import CLASSES

__all__ = [
    "paper_formula_errata",
]


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
