"""Labels and predictions shared by the metric, bootstrap, evaluation and errata tests.

A hand-worked confusion matrix with its one-vs-rest values, random scored data, and patient-clustered
data. Test modules import them (``from metric_cases import scored_data``).
"""

from __future__ import annotations

import numpy as np

# A 3-class confusion matrix (rows true, columns predicted), worked out by hand below.
CM = np.array([[5, 2, 1], [1, 6, 1], [0, 2, 7]])


# one-vs-rest counts by hand:      TP  FN  FP  TN
#   BENIGN                          5   3   1  16
#   BENIGN_WITHOUT_CALLBACK         6   2   4  13
#   MALIGNANT                       7   2   2  14
HAND_SENS = [5 / 8, 6 / 8, 7 / 9]


HAND_SPEC = [16 / 17, 13 / 17, 14 / 16]


HAND_ACC = 18 / 25


HAND_SPEC_EQ4 = [5 / 17, 6 / 17, 7 / 16]  # TP / (TN + FP)


HAND_ACC_EQ5 = [22 / 9, 23 / 12, 23 / 11]  # (TP + TN + FP) / (TP + FP + FN)


HAND_ACC_OVR = [21 / 25, 19 / 25, 21 / 25]  # (TP + TN) / total


def labels_from_cm(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) pairs reproducing the counts of a confusion matrix."""
    pairs = [
        (t, p) for t in range(cm.shape[0]) for p in range(cm.shape[1]) for _ in range(cm[t, p])
    ]
    y_true, y_pred = zip(*pairs)
    return np.array(y_true), np.array(y_pred)


def scored_data(n: int, seed: int, signal: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Random 3-class labels and softmax scores informative about them."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    rng.shuffle(y)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), y] += signal
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


def clustered_data(
    n_patients: int, rois_per_patient: int, seed: int, tau: float = 2.0, signal: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, proba, patient) with ROIs correlated within patients: each patient has one class and a
    shared difficulty (standard deviation ``tau``) added to the logit of that class."""
    rng = np.random.default_rng(seed)
    patient_class = (
        np.arange(n_patients) % 3
    )  # fixed class counts, as the stratified bootstrap assumes
    difficulty = rng.normal(scale=tau, size=n_patients)
    patient = np.repeat(np.arange(n_patients), rois_per_patient)
    y = patient_class[patient]
    logits = rng.normal(size=(len(y), 3))
    logits[np.arange(len(y)), y] += signal + difficulty[patient]
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True), patient
