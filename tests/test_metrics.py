"""Tests for mcalc.metrics: hand-worked metric values, Keras equivalence, bootstrap CIs, serialisation."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import entropy

from mcalc import metrics as M
from mcalc.errors import DataError

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
# flattened: 12 negative scores 0.5 0.4 0.3 0.3 0.2×4 0.1×4, positives 0.6 0.3 0.4 0.7 0.7 0.6;
# specificity ≥ 0.8 allows ≤ 2 false positives → threshold 0.4 → 5 of 6 positives
HAND_SENS_AT_SPEC80 = 5 / 6


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


def test_hand_worked_confusion_metrics() -> None:
    y, pred = labels_from_cm(CM)
    assert M.confusion(y, pred).tolist() == CM.tolist()
    assert M.accuracy(y, pred) == pytest.approx(HAND_ACC)
    np.testing.assert_allclose(M.sensitivity_per_class(y, pred), HAND_SENS)
    np.testing.assert_allclose(M.specificity_per_class(y, pred), HAND_SPEC)


def test_paper_formula_errata_hand_worked() -> None:
    df = M.paper_formula_errata(CM)
    per_class = df[df["class"] != "all"]
    assert list(per_class["class"]) == list(M.CLASSES)
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
        M.paper_formula_errata(np.ones((2, 2)))
    with pytest.raises(DataError, match="non-negative"):
        M.paper_formula_errata(-np.ones((3, 3)))


def test_auc_tiny_worked_example() -> None:
    np.testing.assert_allclose(M.auc_per_class(Y_TINY, P_TINY), HAND_AUC)
    assert M.auc_macro(Y_TINY, P_TINY) == pytest.approx(np.mean(HAND_AUC))


def test_roc_curves_end_points_and_area() -> None:
    curves = M.roc_curves(Y_TINY, P_TINY)
    assert list(curves) == list(M.CLASSES)
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


def test_evaluate_point_estimates_match_functions() -> None:
    y, p = scored_data(90, 2)
    ev = M.evaluate(y, p, n_boot=0)
    pred = p.argmax(axis=1)
    assert ev.n == 90
    assert ev.accuracy == pytest.approx(M.accuracy(y, pred))
    assert ev.auc_macro == pytest.approx(M.auc_macro(y, p))
    assert list(ev.auc.values()) == pytest.approx(list(M.auc_per_class(y, p)))
    assert list(ev.sensitivity.values()) == pytest.approx(list(M.sensitivity_per_class(y, pred)))
    assert list(ev.specificity.values()) == pytest.approx(list(M.specificity_per_class(y, pred)))
    assert ev.sensitivity_macro == pytest.approx(np.mean(M.sensitivity_per_class(y, pred)))
    assert ev.specificity_macro == pytest.approx(np.mean(M.specificity_per_class(y, pred)))
    assert ev.sensitivity_at_spec80 == pytest.approx(M.sensitivity_at_specificity(M.one_hot(y), p))
    assert ev.loss_kl == pytest.approx(M.log_loss_kl(y, p))
    assert np.array(ev.confusion).sum() == 90
    assert all(math.isnan(lo) and math.isnan(hi) for lo, hi in ev.ci.values())


@pytest.mark.parametrize("case", ["informative", "one_class_never_predicted", "small"])
def test_bootstrap_metric_vector_equals_scikit_learn_metric_by_metric(case: str) -> None:
    """The per-resample vector (one confusion count, one AUC call) equals each scikit-learn metric called alone."""
    from sklearn.metrics import accuracy_score, log_loss, recall_score, roc_auc_score

    y, p = scored_data(12 if case == "small" else 150, 7)
    if case == "one_class_never_predicted":
        p[:, 1] *= 0.01
        p /= p.sum(axis=1, keepdims=True)
    pred = p.argmax(axis=1)
    if case == "one_class_never_predicted":
        assert 1 not in pred
    vec = M._metric_vector(y, p, 3)
    expected = np.concatenate(
        [
            [
                accuracy_score(y, pred),
                roc_auc_score(y, p, multi_class="ovr", average="macro"),
                M.sensitivity_at_specificity(M.one_hot(y), p),
                np.mean(
                    recall_score(y, pred, average=None, labels=[0, 1, 2], zero_division=np.nan)
                ),
                np.mean(M.specificity_per_class(y, pred)),
                log_loss(y, p, labels=[0, 1, 2]),
            ],
            roc_auc_score(y, p, multi_class="ovr", average=None),
            recall_score(y, pred, average=None, labels=[0, 1, 2], zero_division=np.nan),
            M.specificity_per_class(y, pred),
        ]
    )
    assert len(vec) == len(M.evaluate(y, p, n_boot=0).values())
    np.testing.assert_allclose(vec, expected, rtol=0, atol=1e-12)


def test_evaluate_hand_worked_confusion() -> None:
    y, pred = labels_from_cm(CM)
    proba = np.full((len(y), 3), 0.1)
    proba[np.arange(len(y)), pred] = 0.8
    ev = M.evaluate(y, proba, n_boot=0)
    assert ev.confusion == CM.tolist()
    assert ev.accuracy == pytest.approx(HAND_ACC)
    assert list(ev.sensitivity.values()) == pytest.approx(HAND_SENS)
    assert list(ev.specificity.values()) == pytest.approx(HAND_SPEC)


def test_bootstrap_ci_contains_point_and_narrows_with_n() -> None:
    y_small, p_small = scored_data(90, 3)
    y_large, p_large = scored_data(900, 3)
    small = M.evaluate(y_small, p_small, n_boot=100, seed=0).table().set_index("metric")
    large = M.evaluate(y_large, p_large, n_boot=100, seed=0).table().set_index("metric")
    for table in (small, large):
        for name in (
            "accuracy",
            "auc_macro",
            "sensitivity_at_spec80",
            "sensitivity_macro",
            "loss_kl",
        ):
            lo, v, hi = table.loc[name, ["ci_low", "value", "ci_high"]]
            assert lo <= v <= hi, name
    width = lambda t, m: t.loc[m, "ci_high"] - t.loc[m, "ci_low"]  # noqa: E731
    for name in ("accuracy", "auc_macro", "loss_kl"):
        assert width(large, name) < 0.6 * width(small, name), name


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_bootstrap_deterministic_by_seed(method: str) -> None:
    y, p = scored_data(60, 4)
    a = M.evaluate(y, p, n_boot=60, seed=7, method=method)
    b = M.evaluate(y, p, n_boot=60, seed=7, method=method)
    c = M.evaluate(y, p, n_boot=60, seed=8, method=method)
    assert a.ci == b.ci
    assert a.ci != c.ci
    assert all(np.isfinite(v).all() for v in a.ci.values())


def test_bootstrap_every_resample_has_every_class() -> None:
    # one MALIGNANT ROI only: an unstratified resample would often miss it and leave the AUC undefined
    y, p = scored_data(40, 5)
    y[y == 2] = 0
    y[0] = 2
    ev = M.evaluate(y, p, n_boot=50, seed=0)
    assert all(np.isfinite(ev.ci[f"auc[{c}]"]).all() for c in M.CLASSES)
    # the single ROI is drawn every time, so its class's sensitivity never varies
    assert (
        ev.ci["sensitivity[MALIGNANT]"][0]
        == ev.ci["sensitivity[MALIGNANT]"][1]
        == ev.sensitivity["MALIGNANT"]
    )


def test_json_round_trip() -> None:
    y, p = scored_data(45, 6)
    for n_boot in (0, 30):
        ev = M.evaluate(y, p, n_boot=n_boot, seed=1)
        text = json.dumps(ev.to_dict(), allow_nan=False)
        back = M.Evaluation.from_dict(json.loads(text))
        pd.testing.assert_frame_equal(back.table(), ev.table())
        assert back.confusion == ev.confusion and back.classes == ev.classes and back.n == ev.n
        for c in M.CLASSES:
            np.testing.assert_allclose(back.roc()[c][0], ev.roc()[c][0])
            np.testing.assert_allclose(back.roc()[c][1], ev.roc()[c][1])
        if n_boot:
            assert back == ev


def test_table_and_confusion_frame_layout() -> None:
    y, p = scored_data(30, 7)
    ev = M.evaluate(y, p, n_boot=0)
    table = ev.table()
    assert list(table.columns) == ["metric", "value", "ci_low", "ci_high"]
    assert {
        "accuracy",
        "auc_macro",
        "sensitivity_at_spec80",
        "auc[MALIGNANT]",
        "specificity[BENIGN]",
    } <= set(table["metric"])
    frame = ev.confusion_frame()
    assert list(frame.index) == list(M.CLASSES) == list(frame.columns)


def test_bad_inputs_raise_data_error() -> None:
    y, p = scored_data(30, 8)
    with pytest.raises(DataError, match="MALIGNANT"):
        M.evaluate(np.where(y == 2, 0, y), p, n_boot=0)
    bad = p.copy()
    bad[3] = [0.5, 0.5, 0.5]
    with pytest.raises(DataError, match="row 3"):
        M.evaluate(y, bad, n_boot=0)
    with pytest.raises(DataError, match="shape"):
        M.evaluate(y, p[:, :2], n_boot=0)
    with pytest.raises(DataError, match="rows"):
        M.evaluate(y[:-1], p, n_boot=0)
    with pytest.raises(DataError, match="not in 0..2"):
        M.evaluate(np.where(y == 2, 3, y), p, n_boot=0)
    nan = p.copy()
    nan[5, 0] = np.nan
    with pytest.raises(DataError, match="row 5"):
        M.log_loss_kl(y, nan)
