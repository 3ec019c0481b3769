"""Tests for mcalc.evaluate.metrics: hand-worked metric values, Keras equivalence, bootstrap CIs, serialisation."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import entropy

from mcalc.errors import DataError
from mcalc.evaluate import metadata as MD
from mcalc.evaluate import metrics as M

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
# pooled (Keras' AUC on the one-hot targets): per positive, the negatives below it (ties one half):
# 0.6 → 12, 0.3 → 8 + 2/2, 0.4 → 10 + 1/2, 0.7 → 12, 0.7 → 12, 0.6 → 12, out of 6 × 12 pairs
HAND_AUC_POOLED = 67.5 / 72
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
    assert ev.brier == pytest.approx(np.mean(((p - M.one_hot(y)) ** 2).sum(axis=1)))
    assert np.array(ev.confusion).sum() == 90
    assert all(math.isnan(lo) and math.isnan(hi) for lo, hi in ev.ci.values())


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
    vec = M._metric_vector(y, p, 3)
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
    assert list(table.columns) == [
        "metric",
        "value",
        "ci_low",
        "ci_high",
        "n_rois",
        "n_lesions",
        "n_patients",
    ]
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


# ------------------------------------------------------------------ pooled AUC (the paper's AUC)


def test_auc_pooled_hand_worked_and_differs_from_macro() -> None:
    assert M.auc_pooled(Y_TINY, P_TINY) == pytest.approx(HAND_AUC_POOLED)
    assert M.auc_pooled(Y_TINY, P_TINY) != pytest.approx(M.auc_macro(Y_TINY, P_TINY), abs=1e-3)
    ev = M.evaluate(Y_TINY, P_TINY, n_boot=0)
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


# ----------------------------------------------------------------------- the patient bootstrap


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


def test_weighted_bootstrap_metrics_equal_scikit_learn_on_the_written_out_resample() -> None:
    """The vectorised metric of a weighted resample equals scikit-learn on the resample ROI by ROI."""
    y, p = scored_data(90, 11)
    p = np.round(p, 2)  # ties in the scores
    p /= p.sum(axis=1, keepdims=True)
    rng = np.random.default_rng(0)
    W = rng.integers(0, 4, size=(6, len(y))).astype(float)
    got = M._weighted_metrics(W, y, p, 3)
    assert got.shape == (len(M.metric_names()), 6)
    for r, w in enumerate(W):
        idx = np.repeat(np.arange(len(y)), w.astype(int))
        np.testing.assert_allclose(got[:, r], M._metric_vector(y[idx], p[idx], 3), atol=1e-12)


def test_patient_bootstrap_records_its_unit_and_counts() -> None:
    y, p, patient = clustered_data(30, 4, seed=1)
    lesion = np.arange(len(y)) // 2  # two views per lesion
    ev = M.evaluate(y, p, n_boot=50, seed=0, groups=patient, lesions=lesion)
    assert (ev.resampling_unit, ev.n, ev.n_patients, ev.n_lesions) == ("patient", 120, 30, 60)
    assert ev.counts["BENIGN"] == {"rois": 40, "lesions": 20, "patients": 10}
    assert ev.counts["not BENIGN"] == {"rois": 80, "lesions": 40, "patients": 20}
    table = ev.table().set_index("metric")
    assert table.loc["sensitivity[MALIGNANT]", ["n_rois", "n_patients"]].tolist() == [40, 10]
    assert table.loc["specificity[MALIGNANT]", ["n_rois", "n_patients"]].tolist() == [80, 20]
    assert table.loc["accuracy", ["n_rois", "n_lesions", "n_patients"]].tolist() == [120, 60, 30]
    assert "patient-level" in ev.ci_note() and "30 patients, 60 lesions, 120 ROIs" in ev.ci_note()
    roi = M.evaluate(y, p, n_boot=50, seed=0)
    assert (roi.resampling_unit, roi.n_patients, roi.n_lesions) == ("roi", None, None)
    assert "ROI-level" in roi.ci_note()
    back = M.Evaluation.from_dict(json.loads(json.dumps(ev.to_dict(), allow_nan=False)))
    assert back == ev


def test_patient_bootstrap_deterministic_by_seed_and_wider_when_clustered() -> None:
    y, p, patient = clustered_data(45, 6, seed=2)
    a = M.evaluate(y, p, n_boot=200, seed=3, groups=patient)
    b = M.evaluate(y, p, n_boot=200, seed=3, groups=patient)
    c = M.evaluate(y, p, n_boot=200, seed=4, groups=patient)
    assert a.ci == b.ci and a.ci != c.ci
    roi = M.evaluate(y, p, n_boot=200, seed=3, groups=patient, unit="roi")
    assert roi.resampling_unit == "roi" and roi.n_patients == 45  # counts still reported
    width = lambda ev, m: ev.ci[m][1] - ev.ci[m][0]  # noqa: E731
    for m in ("accuracy", "auc_pooled", "auc_macro"):
        assert width(a, m) > 1.3 * width(roi, m), m


@pytest.mark.parametrize("method", ["percentile", "bca", "basic"])
def test_one_roi_per_patient_patient_and_roi_bootstrap_agree(method: str) -> None:
    y, p = scored_data(60, 5)
    ids = np.array([f"P_{i:05d}" for i in range(len(y))])
    patient = M.evaluate(
        y, p, n_boot=100, seed=1, method=method, groups=ids, proportion_ci="bootstrap"
    )
    roi = M.evaluate(y, p, n_boot=100, seed=1, method=method)
    assert patient.ci == roi.ci
    assert all(np.isfinite(v).all() for v in patient.ci.values())


def test_patient_bootstrap_class_of_one_patient_is_kept() -> None:
    """A class held by one patient is in every resample (its ROIs fixed), so its metrics stay defined."""
    y, p, patient = clustered_data(30, 3, seed=6)
    y = np.where(y == 2, 0, y)
    y[patient == 0] = 2  # patient 0 alone holds MALIGNANT
    ev = M.evaluate(y, p, n_boot=100, seed=0, groups=patient, proportion_ci="bootstrap")
    assert all(np.isfinite(ev.ci[f"auc[{c}]"]).all() for c in M.CLASSES)
    lo, hi = ev.ci["sensitivity[MALIGNANT]"]
    assert lo == hi == ev.sensitivity["MALIGNANT"]  # the bootstrap's interval is degenerate there
    lo, hi = M.evaluate(y, p, n_boot=100, seed=0, groups=patient).ci["sensitivity[MALIGNANT]"]
    assert lo < hi  # the cluster-Wilson interval (the default) rests on the one patient


def test_patient_bootstrap_rejects_bad_ids() -> None:
    y, p = scored_data(30, 8)
    with pytest.raises(DataError, match="30 ids"):
        M.evaluate(y, p, n_boot=10, groups=np.arange(29))
    with pytest.raises(DataError, match="missing id at position 4"):
        M.evaluate(y, p, n_boot=10, groups=[None if i == 4 else i for i in range(30)])
    with pytest.raises(DataError, match="patient id"):
        M.evaluate(y, p, n_boot=10, unit="patient")
    with pytest.raises(ValueError, match="unit"):
        M.evaluate(y, p, n_boot=10, groups=np.arange(30), unit="lesion")


def accuracy_interval(
    y: np.ndarray, p: np.ndarray, clusters: np.ndarray, n_boot: int, seed: int
) -> tuple[float, float]:
    """95% interval of the accuracy from the study's cluster resampler with an accuracy-only statistic."""
    correct = (p.argmax(axis=1) == y).astype(float)
    lo, hi, _ = M.cluster_bootstrap(
        lambda W: (W @ correct / W.sum(axis=1))[None], clusters, y, 3, n_boot=n_boot, seed=seed
    )
    return lo[0], hi[0]


def coverage(n_patients: int, rois: int, unit: str, reps: int, true_acc: float) -> float:
    """Fraction of ``reps`` simulated studies whose 95% accuracy interval covers ``true_acc``."""
    hits = 0
    for rep in range(reps):
        y, p, patient = clustered_data(n_patients, rois, seed=1000 + rep)
        clusters = patient if unit == "patient" else np.arange(len(y))
        lo, hi = accuracy_interval(y, p, clusters, n_boot=400, seed=rep)
        hits += lo <= true_acc <= hi
    return hits / reps


def test_accuracy_only_statistic_reads_the_same_resamples_as_evaluate() -> None:
    """The coverage test's accuracy-only statistic sees exactly the resamples of evaluate()."""
    y, p, patient = clustered_data(30, 4, seed=3)
    ev = M.evaluate(y, p, n_boot=400, seed=5, groups=patient, proportion_ci="bootstrap")
    assert accuracy_interval(y, p, patient, n_boot=400, seed=5) == pytest.approx(ev.ci["accuracy"])


def test_coverage_on_clustered_data_patient_near_nominal_roi_not() -> None:
    """Correlated ROIs within patients: the patient bootstrap covers near 95%, the ROI one far less;
    with one ROI per patient the two are the same interval."""
    y, p, _ = clustered_data(
        300_000, 1, seed=99
    )  # the model's true accuracy, from a very large draw
    true_acc = float((p.argmax(axis=1) == y).mean())
    reps = 300
    patient = coverage(90, 4, "patient", reps, true_acc)
    roi = coverage(90, 4, "roi", reps, true_acc)
    assert 0.91 <= patient <= 0.99, patient
    assert roi <= 0.85, roi
    single_patient = coverage(150, 1, "patient", reps, true_acc)
    single_roi = coverage(150, 1, "roi", reps, true_acc)
    assert single_patient == single_roi
    assert 0.91 <= single_patient <= 0.99, single_patient


# -------------------------------------------------------------- paired patient-level difference


def test_paired_difference_identical_models_is_zero() -> None:
    y, p, patient = clustered_data(30, 3, seed=7)
    d = M.paired_difference(y, p, p, groups=patient, n_boot=100, seed=0)
    assert list(d.columns) == M.PAIRED_COLUMNS
    assert (d["difference"] == 0).all() and (d["ci_low"] == 0).all() and (d["ci_high"] == 0).all()
    assert (d["p_value"] == 1).all()
    assert set(d["resampling_unit"]) == {"patient"} and set(d["n_patients"]) == {30}


def test_paired_difference_detects_a_better_model_and_pairs_the_resamples() -> None:
    y, p, patient = clustered_data(60, 4, seed=8, tau=1.0)
    rng = np.random.default_rng(0)
    worse = 0.3 * p + 0.7 * rng.dirichlet(np.ones(3), size=len(y))
    d = M.paired_difference(
        y, p, worse, metrics=("accuracy", "auc_pooled"), groups=patient, n_boot=300, seed=0
    ).set_index("metric")
    a = M.evaluate(y, p, n_boot=0)
    b = M.evaluate(y, worse, n_boot=0)
    assert d.loc["accuracy", "difference"] == pytest.approx(a.accuracy - b.accuracy)
    assert d.loc["auc_pooled", "difference"] == pytest.approx(a.auc_pooled - b.auc_pooled)
    assert (d["ci_low"] > 0).all() and (d["p_value"] < 0.05).all()
    # the paired interval is narrower than what two separate intervals would suggest
    sa = M.evaluate(y, p, n_boot=300, seed=0, groups=patient)
    sb = M.evaluate(y, worse, n_boot=300, seed=0, groups=patient)
    separate = (sa.ci["auc_pooled"][1] - sa.ci["auc_pooled"][0]) + (
        sb.ci["auc_pooled"][1] - sb.ci["auc_pooled"][0]
    )
    assert d.loc["auc_pooled", "ci_high"] - d.loc["auc_pooled", "ci_low"] < 0.75 * separate
    with pytest.raises(ValueError, match="unknown metric"):
        M.paired_difference(y, p, worse, metrics=("kappa",), groups=patient, n_boot=0)


def test_cluster_ids_on_the_real_test_table() -> None:
    """151 patients, 189 lesions on the 326 test ROIs; BENIGN_WITHOUT_CALLBACK: 67 ROIs of 17 patients."""
    from mcalc.evaluate.metadata import read_real_tables

    rows = read_real_tables()
    table = rows[rows["split"] == "test"]
    patients, lesions = M.cluster_ids(table)
    y = table["label"].to_numpy(dtype=int)
    counts = M.unit_counts(y, patients, lesions)
    assert counts["all"] == {"rois": 326, "lesions": 189, "patients": 151}
    assert counts["BENIGN_WITHOUT_CALLBACK"]["rois"] == 67
    assert counts["BENIGN_WITHOUT_CALLBACK"]["patients"] == 17
    with pytest.raises(DataError, match="abnormality_id"):
        M.cluster_ids(table.drop(columns="abnormality_id"))


def test_methods_page_interval_table_is_what_the_code_gives_on_the_real_tables() -> None:
    """book/methods.md's ROI- vs patient-level table, recomputed from the shipped real tables (BI-RADS rule)."""
    from conftest import REPO

    from mcalc.evaluate.metadata import read_real_tables

    rows = read_real_tables()
    train, test = rows[rows["split"] == "train"], rows[rows["split"] == "test"]
    proba = MD.assessment_rule(train, test)
    patients, lesions = M.cluster_ids(test)
    table = M.interval_comparison(
        test["label"].to_numpy(dtype=int), proba, patients, lesions, n_boot=2000, seed=0
    )
    lines = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in (REPO / "book" / "methods.md").read_text().splitlines()
        if line.startswith("| `")
    }
    for row in table.itertuples(index=False):
        cells = lines[f"`{row.metric}`"]
        assert cells == [
            f"{row.value:.3f}",
            str(row.ROIs),
            str(row.patients),
            row[4],
            row[5],
            f"{row[6]:.2f}",
        ], row.metric
        assert row[6] < 0.8  # the ROI-level interval is clearly narrower


def manifest_rows(y: np.ndarray, patient: np.ndarray) -> pd.DataFrame:
    """Manifest-like rows: ROI ids, labels, patients, sides and abnormality ids (two views a lesion)."""
    n = len(y)
    return pd.DataFrame(
        {
            "roi_id": [f"R{i:04d}" for i in range(n)],
            "label": y,
            "patient_id": [f"P_{p:05d}" for p in patient],
            "side": "LEFT",
            "abnormality_id": np.arange(n) // 2 % 2 + 1,
        }
    )


def test_evaluate_rows_keeps_predictions_and_compares_by_roi_id() -> None:
    y, p, patient = clustered_data(30, 4, seed=9)
    rows = manifest_rows(y, patient)
    ev = M.evaluate_rows(rows, p, n_boot=100, seed=0)
    assert (ev.resampling_unit, ev.n_patients, ev.n_lesions) == ("patient", 30, 60)
    assert (
        ev.predictions["roi_id"][:2] == ["R0000", "R0001"] and len(ev.predictions["proba"]) == 120
    )
    back = M.Evaluation.from_dict(json.loads(json.dumps(ev.to_dict(), allow_nan=False)))
    assert back == ev
    rng = np.random.default_rng(1)
    worse = 0.3 * p + 0.7 * rng.dirichlet(np.ones(3), size=len(y))
    shuffled = rng.permutation(len(y))  # the other model's rows in another order
    other = M.evaluate_rows(rows.iloc[shuffled], worse[shuffled], n_boot=100, seed=0)
    by_id = M.compare_evaluations(ev, other).set_index("metric")
    direct = M.paired_difference(y, p, worse, groups=patient, n_boot=100, seed=0).set_index(
        "metric"
    )
    pd.testing.assert_frame_equal(
        by_id[["difference", "ci_low", "ci_high"]], direct[["difference", "ci_low", "ci_high"]]
    )
    assert by_id.loc["accuracy", "n_lesions"] == 60
    with pytest.raises(DataError, match="same ROIs"):
        M.compare_evaluations(ev, M.evaluate_rows(rows.iloc[:-1], worse[:-1], n_boot=0))
    with pytest.raises(DataError, match="no per-ROI predictions"):
        M.compare_evaluations(ev, M.evaluate(y, worse, n_boot=0))


# -------------------------------------------------------------- calibration, class mix, Table 5b


def test_brier_score_in_every_evaluation_record_with_a_patient_level_interval() -> None:
    """Brier: 0 for perfect one-hot scores, 2 for confident wrong ones; recorded, with its interval,
    in the JSON record; an old record without it reads back as NaN."""
    y = np.array([0, 1, 2, 0, 1, 2])
    assert M.brier_score(y, np.eye(3)[y]) == 0.0
    assert M.brier_score(y, np.eye(3)[(y + 1) % 3]) == 2.0
    y, p, patient = clustered_data(40, 3, seed=4)
    ev = M.evaluate(y, p, n_boot=200, seed=1, groups=patient)
    record = json.loads(json.dumps(ev.to_dict()))
    assert record["brier"] == pytest.approx(M.brier_score(y, p))
    lo, hi = record["ci"]["brier"]
    assert lo < record["brier"] < hi
    assert "brier" in set(ev.table()["metric"])
    del record["brier"]
    assert math.isnan(M.Evaluation.from_dict(record).brier)


def test_standardised_accuracy_weighs_class_sensitivities_by_the_paper_test_mix() -> None:
    """Σ_k w_k · sensitivity_k with w = 99/133/94 (BWC/BENIGN/MALIGNANT); equal to the raw accuracy
    when the test set has the paper's mix; NaN for a task with other classes."""
    pred = np.r_[np.zeros(133, int), np.ones(99, int), np.full(94, 2)]
    y = pred.copy()
    y[:33] = 1  # 33 of 166 'BENIGN' predictions are in truth BWC
    y = np.r_[y]
    p = np.eye(3)[pred] * 0.8 + 0.2 / 3
    ev = M.evaluate(y, p, n_boot=0)
    sens = M.sensitivity_per_class(y, pred)
    w = np.array([133, 99, 94]) / 326
    assert ev.accuracy_standardised == pytest.approx(float(w @ sens))
    mixed = np.r_[np.zeros(133, int), np.ones(99, int), np.full(94, 2)]
    ev_mix = M.evaluate(mixed, p, n_boot=0)
    assert ev_mix.accuracy_standardised == pytest.approx(ev_mix.accuracy)
    yb, pb = np.array([0, 0, 1, 1]), np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.8, 0.2]])
    ev2 = M.evaluate(yb, pb, classes=("BENIGN", "MALIGNANT"), n_boot=0)
    assert math.isnan(ev2.accuracy_standardised)


def test_malignant_sensitivity_at_80_specificity_is_the_one_vs_rest_quantity() -> None:
    """The binary studies' quantity: MALIGNANT's column against the rest, not the pooled one-hot one."""
    from sklearn.metrics import roc_curve

    y, p = scored_data(200, 11)
    ev = M.evaluate(y, p, n_boot=0)
    fpr, tpr, _ = roc_curve(y == 2, p[:, 2], drop_intermediate=False)
    assert ev.malignant_sensitivity_at_spec80 == pytest.approx(tpr[fpr <= 0.2 + 1e-12].max())
    assert ev.malignant_sensitivity_at_spec80 != pytest.approx(ev.sensitivity_at_spec80)
    yb = (y == 2).astype(int)
    pb = np.c_[1 - p[:, 2], p[:, 2]]
    ev2 = M.evaluate(yb, pb, classes=("BENIGN", "MALIGNANT"), n_boot=0)
    assert ev2.malignant_sensitivity_at_spec80 == pytest.approx(ev.malignant_sensitivity_at_spec80)


def _real_test_clusters() -> tuple[np.ndarray, np.ndarray]:
    """Patient id and class index of every ROI of the real official test table (shipped with mcalc)."""
    from mcalc.data.calibration import read_split, shipped_tables

    df = read_split(shipped_tables()["test"], "test")
    return df["patient_id"].to_numpy(), df["pathology"].map(M.CLASSES.index).to_numpy()


#: Coverage the 95% cluster-Wilson interval must reach on the real test split's patients (book/methods.md).
WILSON_COVERAGE_FLOOR = 0.92


@pytest.mark.parametrize(
    "cls, truth, sigma",
    [
        ("BENIGN_WITHOUT_CALLBACK", 0.99, 1.5),
        ("BENIGN_WITHOUT_CALLBACK", 0.95, 1.5),
        ("BENIGN_WITHOUT_CALLBACK", 0.85, 1.5),
        ("BENIGN_WITHOUT_CALLBACK", 0.60, 0.5),
        ("MALIGNANT", 0.85, 1.5),
        ("BENIGN", 0.95, 0.5),
    ],
)
def test_cluster_wilson_coverage_on_the_real_test_split_patients(
    cls: str, truth: float, sigma: float
) -> None:
    """The real test split's patients of a class (BWC: 67 ROIs of 17 patients), outcomes simulated
    with a patient effect (logit sd ``sigma``) around a true sensitivity: the 95% cluster-Wilson
    interval covers it in at least WILSON_COVERAGE_FLOOR of 1000 replicates, and is never [1, 1]."""
    from scipy.optimize import brentq
    from scipy.special import expit

    patients, labels = _real_test_clusters()
    mask = labels == M.CLASSES.index(cls)
    codes = pd.factorize(patients[mask])[0]
    if cls == "BENIGN_WITHOUT_CALLBACK":
        assert (mask.sum(), codes.max() + 1) == (67, 17)
    z, w = np.polynomial.hermite_e.hermegauss(40)
    mu = brentq(lambda a: expit(a + sigma * z) @ (w / w.sum()) - truth, -30, 30)
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(1000):
        pi = expit(mu + sigma * rng.normal(size=codes.max() + 1))[codes]
        lo, hi = M.cluster_wilson(rng.uniform(size=len(codes)) < pi, codes)
        assert lo < hi
        hits += lo <= truth <= hi
    assert hits / 1000 >= WILSON_COVERAGE_FLOOR, hits / 1000


def test_cluster_wilson_all_correct_rests_on_the_patients() -> None:
    """17 patients, 67 ROIs, all correct: the lower limit is Wilson's for 17, not for 67, ROIs."""
    codes = np.repeat(np.arange(17), [4] * 16 + [3])
    lo, hi = M.cluster_wilson(np.ones(67), codes)
    assert lo == pytest.approx(17 / (17 + 1.959964**2), abs=1e-4) and hi == 1.0
    assert M.cluster_wilson(np.ones(67), np.arange(67))[0] > 0.94


def test_reliability_bins_top_class_confidence_against_accuracy() -> None:
    """Perfectly calibrated scores sit near the diagonal; over-confident ones far below it."""
    rng = np.random.default_rng(0)
    n = 3000
    conf = rng.uniform(0.5, 1.0, n)
    y = rng.integers(0, 3, n)
    right = rng.uniform(size=n) < conf
    pred = np.where(right, y, (y + 1 + rng.integers(0, 2, n)) % 3)
    p = np.repeat(((1 - conf) / 2)[:, None], 3, axis=1)
    p[np.arange(n), pred] = conf
    rows = pd.DataFrame(
        {
            "roi_id": [f"R{i}" for i in range(n)],
            "label": y,
            "patient_id": [f"P{i}" for i in range(n)],
            "side": "LEFT",
            "abnormality_id": 1,
        }
    )
    table = M.reliability(M.evaluate_rows(rows, p, n_boot=0))
    assert table["ROIs"].sum() == n
    assert np.abs(table["accuracy"] - table["confidence"]).max() < 0.08
    sure = np.where(np.arange(3)[None, :] == pred[:, None], 0.98, 0.01)
    over = M.reliability(M.evaluate_rows(rows, sure, n_boot=0))
    assert (over["confidence"] - over["accuracy"]).max() > 0.2
    edge = np.eye(3)[y] * 0.7 + 0.1  # every confidence exactly on a bin edge (0.8)
    on_edge = M.reliability(M.evaluate_rows(rows, edge, n_boot=0))
    assert on_edge["ROIs"].tolist() == [n] and on_edge["confidence"].tolist() == [
        pytest.approx(0.8)
    ]
    with pytest.raises(DataError, match="no per-ROI predictions"):
        M.reliability(M.evaluate(y, p, n_boot=0))


@pytest.mark.slow
def test_interval_coverage_on_the_real_test_split_under_strong_patient_correlation() -> None:
    """The real test split's patients, scores with a strong patient effect shared by all of a
    patient's ROIs: every interval of the evaluation (bootstrap AUCs, cluster-Wilson sensitivities)
    covers the truth — the metric on a population 200 times the split — in at least 88% of 200
    replicates (book/methods.md states what they reach: about 0.91-0.97)."""
    patients, y = _real_test_clusters()
    codes = pd.factorize(patients)[0]
    g = codes.max() + 1

    def draw(rng: np.random.Generator) -> np.ndarray:
        """Softmax scores: class signal 2, ROI noise 1, patient effect 1.5 (logit scale)."""
        logits = rng.normal(size=(len(y), 3)) + 1.5 * rng.normal(size=(g, 3))[codes]
        logits[np.arange(len(y)), y] += 2.0
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    names = [
        "auc_pooled",
        "auc[BENIGN_WITHOUT_CALLBACK]",
        "malignant_sensitivity_at_spec80",
        "sensitivity[BENIGN_WITHOUT_CALLBACK]",
        "accuracy",
        "brier",
    ]
    rng = np.random.default_rng(123)
    big = np.vstack([draw(rng) for _ in range(200)])
    truth = M.evaluate(np.tile(y, 200), big, n_boot=0).values()
    rng = np.random.default_rng(0)
    hits = dict.fromkeys(names, 0)
    reps = 200
    for r in range(reps):
        ev = M.evaluate(y, draw(rng), n_boot=500, seed=r, groups=patients)
        for n in names:
            lo, hi = ev.ci[n]
            hits[n] += lo <= truth[n] <= hi
    coverage = {n: h / reps for n, h in hits.items()}
    assert min(coverage.values()) >= 0.88, coverage
