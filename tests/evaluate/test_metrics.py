"""Tests for mcalc.evaluate.metrics: hand-worked metric values, Keras equivalence, the metric vector."""

from __future__ import annotations

import math

import numpy as np
import pytest
from metric_cases import CM, HAND_ACC, HAND_SENS, HAND_SPEC, labels_from_cm, scored_data
from scipy.stats import entropy

from mcalc.evaluate import evaluation as EV
from mcalc.evaluate import metrics as M
from mcalc.study import CLASSES

# A tiny scored example: 6 ROIs, two per class.
Y_TINY = np.array([0, 0, 1, 1, 2, 2])
P_TINY = np.array(
    [
        [0.6, 0.3, 0.1],
        [0.3, 0.5, 0.2],
        [0.4, 0.4, 0.2],
        [0.1, 0.7, 0.2],
        [0.2, 0.1, 0.7],
        [0.1, 0.3, 0.6],
    ]
)
# by hand (pairs positive > negative out of 2 x 4): class 0: 7/8, class 1: 7/8, class 2: 8/8
HAND_AUC = [7 / 8, 7 / 8, 1.0]
# pooled (Keras' AUC on the one-hot targets): per positive, the negatives below it (ties one half):
# 0.6 → 12, 0.3 → 8 + 2/2, 0.4 → 10 + 1/2, 0.7 → 12, 0.7 → 12, 0.6 → 12, out of 6 × 12 pairs
HAND_AUC_POOLED = 67.5 / 72
# flattened: 12 negative scores 0.5 0.4 0.3 0.3 0.2×4 0.1×4, positives 0.6 0.3 0.4 0.7 0.7 0.6;
# specificity ≥ 0.8 allows ≤ 2 false positives → threshold 0.4 → 5 of 6 positives
HAND_SENS_AT_SPEC80 = 5 / 6


def test_hand_worked_confusion_metrics() -> None:
    y, pred = labels_from_cm(CM)
    assert M.confusion(y, pred).tolist() == CM.tolist()
    assert M.accuracy(y, pred) == pytest.approx(HAND_ACC)
    np.testing.assert_allclose(M.sensitivity_per_class(y, pred), HAND_SENS)
    np.testing.assert_allclose(M.specificity_per_class(y, pred), HAND_SPEC)


def test_auc_tiny_worked_example() -> None:
    np.testing.assert_allclose(M.auc_per_class(Y_TINY, P_TINY), HAND_AUC)
    assert M.auc_macro(Y_TINY, P_TINY) == pytest.approx(np.mean(HAND_AUC))


def test_roc_curves_end_points_and_area() -> None:
    curves = M.roc_curves(Y_TINY, P_TINY)
    assert list(curves) == list(CLASSES)
    for k, (fpr, tpr) in enumerate(curves.values()):
        assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
        assert np.trapezoid(tpr, fpr) == pytest.approx(HAND_AUC[k])


def test_sensitivity_at_specificity_hand_worked() -> None:
    onehot = M.one_hot(Y_TINY)
    assert M.sensitivity_at_specificity(onehot, P_TINY, 0.8) == pytest.approx(HAND_SENS_AT_SPEC80)
    # specificity 0 admits every threshold: sensitivity 1; specificity 1 admits no false positive:
    # threshold above 0.5 → positives 0.6, 0.7, 0.7, 0.6 → 4 of 6
    assert M.sensitivity_at_specificity(onehot, P_TINY, 0.0) == 1.0
    assert M.sensitivity_at_specificity(onehot, P_TINY, 1.0) == pytest.approx(4 / 6)


@pytest.mark.slow
def test_sensitivity_at_specificity_matches_keras() -> None:
    import keras

    for seed in range(3):
        y, p = scored_data(150, seed, signal=1.0)
        onehot = M.one_hot(y)
        ours = M.sensitivity_at_specificity(onehot, p, 0.8)
        fine = keras.metrics.SensitivityAtSpecificity(0.8, num_thresholds=20001)
        fine.update_state(onehot, p)
        assert float(fine.result()) == pytest.approx(ours, abs=1e-2)
        coarse = keras.metrics.SensitivityAtSpecificity(0.8)  # the paper's 200 thresholds
        coarse.update_state(onehot, p)
        assert (
            float(coarse.result()) <= ours + 1e-6
        )  # its thresholds are a subset of the ROC points
        assert float(coarse.result()) == pytest.approx(ours, abs=3e-2)


def test_log_loss_kl_is_mean_kl_divergence() -> None:
    y, p = scored_data(60, 1)
    onehot = M.one_hot(y)
    kl = np.mean([entropy(t, q) for t, q in zip(onehot, p)])  # scipy: Σ t log(t / q)
    assert M.log_loss_kl(y, p) == pytest.approx(kl, rel=1e-9)
    assert M.log_loss_kl(y, p) == pytest.approx(-np.mean(np.log(p[np.arange(len(y)), y])), rel=1e-9)


@pytest.mark.parametrize("case", ["informative", "one_class_never_predicted", "small"])
def test_bootstrap_metric_vector_equals_scikit_learn_metric_by_metric(case: str) -> None:
    """The per-resample vector (one confusion count, one AUC call) equals each scikit-learn metric called alone."""
    from sklearn.metrics import (
        accuracy_score,
        brier_score_loss,
        log_loss,
        recall_score,
        roc_auc_score,
    )

    y, p = scored_data(12 if case == "small" else 150, 7)
    if case == "one_class_never_predicted":
        p[:, 1] *= 0.01
        p /= p.sum(axis=1, keepdims=True)
    pred = p.argmax(axis=1)
    if case == "one_class_never_predicted":
        assert 1 not in pred
    vec = M.metric_vector(y, p, 3)
    expected = np.concatenate(
        [
            [
                accuracy_score(y, pred),
                roc_auc_score(M.one_hot(y), p, average="micro"),
                roc_auc_score(y, p, multi_class="ovr", average="macro"),
                M.sensitivity_at_specificity(M.one_hot(y), p),
                np.mean(
                    recall_score(y, pred, average=None, labels=[0, 1, 2], zero_division=np.nan)
                ),
                np.mean(M.specificity_per_class(y, pred)),
                log_loss(y, p, labels=[0, 1, 2]),
                sum(
                    brier_score_loss(y == k, p[:, k]) for k in range(3)
                ),  # Σ_k of the binary scores
                np.array([99, 133, 94]) / 326 @ recall_score(y, pred, average=None)[[1, 0, 2]],
                M.sensitivity_at_specificity((y == 2)[:, None], p[:, [2]]),
            ],
            roc_auc_score(y, p, multi_class="ovr", average=None),
            recall_score(y, pred, average=None, labels=[0, 1, 2], zero_division=np.nan),
            M.specificity_per_class(y, pred),
        ]
    )
    assert len(vec) == len(EV.evaluate(y, p, n_boot=0).values())
    np.testing.assert_allclose(vec, expected, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ pooled AUC (the paper's AUC)


def test_auc_pooled_hand_worked_and_differs_from_macro() -> None:
    assert M.auc_pooled(Y_TINY, P_TINY) == pytest.approx(HAND_AUC_POOLED)
    assert M.auc_pooled(Y_TINY, P_TINY) != pytest.approx(M.auc_macro(Y_TINY, P_TINY), abs=1e-3)
    ev = EV.evaluate(Y_TINY, P_TINY, n_boot=0)
    assert ev.auc_pooled == pytest.approx(HAND_AUC_POOLED)
    assert ev.values()["auc_pooled"] == ev.auc_pooled


@pytest.mark.slow
def test_auc_pooled_equals_keras_auc_on_one_hot_targets() -> None:
    import keras

    for seed in range(3):
        y, p = scored_data(150, seed, signal=1.0)
        onehot = M.one_hot(y)
        ours = M.auc_pooled(y, p)
        fine = keras.metrics.AUC(num_thresholds=20001)
        fine.update_state(onehot, p)
        assert float(fine.result()) == pytest.approx(ours, abs=1e-3)
        coarse = keras.metrics.AUC()  # the paper's metric: 200 thresholds
        coarse.update_state(onehot, p)
        assert float(coarse.result()) == pytest.approx(ours, abs=5e-3)
        # the macro AUC is a different number, further from Keras' than the pooled one
        assert abs(float(fine.result()) - M.auc_macro(y, p)) > abs(float(fine.result()) - ours)


# ------------------------------------------------------------------------ class mix, Table 5b


def test_standardised_accuracy_weighs_class_sensitivities_by_the_paper_test_mix() -> None:
    """Σ_k w_k · sensitivity_k with w = 99/133/94 (BWC/BENIGN/MALIGNANT); equal to the raw accuracy
    when the test set has the paper's mix; NaN for a task with other classes."""
    pred = np.r_[np.zeros(133, int), np.ones(99, int), np.full(94, 2)]
    y = pred.copy()
    y[:33] = 1  # 33 of 166 'BENIGN' predictions are in truth BWC
    y = np.r_[y]
    p = np.eye(3)[pred] * 0.8 + 0.2 / 3
    ev = EV.evaluate(y, p, n_boot=0)
    sens = M.sensitivity_per_class(y, pred)
    w = np.array([133, 99, 94]) / 326
    assert ev.accuracy_standardised == pytest.approx(float(w @ sens))
    mixed = np.r_[np.zeros(133, int), np.ones(99, int), np.full(94, 2)]
    ev_mix = EV.evaluate(mixed, p, n_boot=0)
    assert ev_mix.accuracy_standardised == pytest.approx(ev_mix.accuracy)
    yb, pb = np.array([0, 0, 1, 1]), np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.8, 0.2]])
    ev2 = EV.evaluate(yb, pb, classes=("BENIGN", "MALIGNANT"), n_boot=0)
    assert math.isnan(ev2.accuracy_standardised)


def test_malignant_sensitivity_at_80_specificity_is_the_one_vs_rest_quantity() -> None:
    """The binary studies' quantity: MALIGNANT's column against the rest, not the pooled one-hot one."""
    from sklearn.metrics import roc_curve

    y, p = scored_data(200, 11)
    ev = EV.evaluate(y, p, n_boot=0)
    fpr, tpr, _ = roc_curve(y == 2, p[:, 2], drop_intermediate=False)
    assert ev.malignant_sensitivity_at_spec80 == pytest.approx(tpr[fpr <= 0.2 + 1e-12].max())
    assert ev.malignant_sensitivity_at_spec80 != pytest.approx(ev.sensitivity_at_spec80)
    yb = (y == 2).astype(int)
    pb = np.c_[1 - p[:, 2], p[:, 2]]
    ev2 = EV.evaluate(yb, pb, classes=("BENIGN", "MALIGNANT"), n_boot=0)
    assert ev2.malignant_sensitivity_at_spec80 == pytest.approx(ev.malignant_sensitivity_at_spec80)
