"""Tests for mcalc.evaluate.bootstrap: the weighted resample metrics, the patient-level bootstrap,
paired differences and cluster-Wilson intervals (including their coverage)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from metric_cases import clustered_data, scored_data

from mcalc.errors import DataError
from mcalc.evaluate import bootstrap as B
from mcalc.evaluate import evaluation as EV
from mcalc.evaluate import metrics as M
from mcalc.study import CLASSES


def test_bootstrap_ci_contains_point_and_narrows_with_n() -> None:
    y_small, p_small = scored_data(90, 3)
    y_large, p_large = scored_data(900, 3)
    small = EV.evaluate(y_small, p_small, n_boot=100, seed=0).table().set_index("metric")
    large = EV.evaluate(y_large, p_large, n_boot=100, seed=0).table().set_index("metric")
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
    a = EV.evaluate(y, p, n_boot=60, seed=7, method=method)
    b = EV.evaluate(y, p, n_boot=60, seed=7, method=method)
    c = EV.evaluate(y, p, n_boot=60, seed=8, method=method)
    assert a.ci == b.ci
    assert a.ci != c.ci
    assert all(np.isfinite(v).all() for v in a.ci.values())


def test_bootstrap_every_resample_has_every_class() -> None:
    # one MALIGNANT ROI only: an unstratified resample would often miss it and leave the AUC undefined
    y, p = scored_data(40, 5)
    y[y == 2] = 0
    y[0] = 2
    ev = EV.evaluate(y, p, n_boot=50, seed=0)
    assert all(np.isfinite(ev.ci[f"auc[{c}]"]).all() for c in CLASSES)
    # the single ROI is drawn every time, so its class's sensitivity never varies
    assert (
        ev.ci["sensitivity[MALIGNANT]"][0]
        == ev.ci["sensitivity[MALIGNANT]"][1]
        == ev.sensitivity["MALIGNANT"]
    )


def test_weighted_bootstrap_metrics_equal_scikit_learn_on_the_written_out_resample() -> None:
    """The vectorised metric of a weighted resample equals scikit-learn on the resample ROI by ROI."""
    y, p = scored_data(90, 11)
    p = np.round(p, 2)  # ties in the scores
    p /= p.sum(axis=1, keepdims=True)
    rng = np.random.default_rng(0)
    W = rng.integers(0, 4, size=(6, len(y))).astype(float)
    got = B._weighted_metrics(W, y, p, 3)
    assert got.shape == (len(M.metric_names()), 6)
    for r, w in enumerate(W):
        idx = np.repeat(np.arange(len(y)), w.astype(int))
        np.testing.assert_allclose(got[:, r], M.metric_vector(y[idx], p[idx], 3), atol=1e-12)


# ----------------------------------------------------------------------- the patient bootstrap


def test_patient_bootstrap_records_its_unit_and_counts() -> None:
    y, p, patient = clustered_data(30, 4, seed=1)
    lesion = np.arange(len(y)) // 2  # two views per lesion
    ev = EV.evaluate(y, p, n_boot=50, seed=0, groups=patient, lesions=lesion)
    assert (ev.resampling_unit, ev.n, ev.n_patients, ev.n_lesions) == ("patient", 120, 30, 60)
    assert ev.counts["BENIGN"] == {"rois": 40, "lesions": 20, "patients": 10}
    assert ev.counts["not BENIGN"] == {"rois": 80, "lesions": 40, "patients": 20}
    table = ev.table().set_index("metric")
    assert table.loc["sensitivity[MALIGNANT]", ["n_rois", "n_patients"]].tolist() == [40, 10]
    assert table.loc["specificity[MALIGNANT]", ["n_rois", "n_patients"]].tolist() == [80, 20]
    assert table.loc["accuracy", ["n_rois", "n_lesions", "n_patients"]].tolist() == [120, 60, 30]
    assert "patient-level" in ev.ci_note() and "30 patients, 60 lesions, 120 ROIs" in ev.ci_note()
    roi = EV.evaluate(y, p, n_boot=50, seed=0)
    assert (roi.resampling_unit, roi.n_patients, roi.n_lesions) == ("roi", None, None)
    assert "ROI-level" in roi.ci_note()
    back = EV.Evaluation.from_dict(json.loads(json.dumps(ev.to_dict(), allow_nan=False)))
    assert back == ev


def test_patient_bootstrap_deterministic_by_seed_and_wider_when_clustered() -> None:
    y, p, patient = clustered_data(45, 6, seed=2)
    a = EV.evaluate(y, p, n_boot=200, seed=3, groups=patient)
    b = EV.evaluate(y, p, n_boot=200, seed=3, groups=patient)
    c = EV.evaluate(y, p, n_boot=200, seed=4, groups=patient)
    assert a.ci == b.ci and a.ci != c.ci
    roi = EV.evaluate(y, p, n_boot=200, seed=3, groups=patient, unit="roi")
    assert roi.resampling_unit == "roi" and roi.n_patients == 45  # counts still reported
    width = lambda ev, m: ev.ci[m][1] - ev.ci[m][0]  # noqa: E731
    for m in ("accuracy", "auc_pooled", "auc_macro"):
        assert width(a, m) > 1.3 * width(roi, m), m


@pytest.mark.parametrize("method", ["percentile", "bca", "basic"])
def test_one_roi_per_patient_patient_and_roi_bootstrap_agree(method: str) -> None:
    y, p = scored_data(60, 5)
    ids = np.array([f"P_{i:05d}" for i in range(len(y))])
    patient = EV.evaluate(
        y, p, n_boot=100, seed=1, method=method, groups=ids, proportion_ci="bootstrap"
    )
    roi = EV.evaluate(y, p, n_boot=100, seed=1, method=method)
    assert patient.ci == roi.ci
    assert all(np.isfinite(v).all() for v in patient.ci.values())


def test_patient_bootstrap_class_of_one_patient_is_kept() -> None:
    """A class held by one patient is in every resample (its ROIs fixed), so its metrics stay defined."""
    y, p, patient = clustered_data(30, 3, seed=6)
    y = np.where(y == 2, 0, y)
    y[patient == 0] = 2  # patient 0 alone holds MALIGNANT
    ev = EV.evaluate(y, p, n_boot=100, seed=0, groups=patient, proportion_ci="bootstrap")
    assert all(np.isfinite(ev.ci[f"auc[{c}]"]).all() for c in CLASSES)
    lo, hi = ev.ci["sensitivity[MALIGNANT]"]
    assert lo == hi == ev.sensitivity["MALIGNANT"]  # the bootstrap's interval is degenerate there
    lo, hi = EV.evaluate(y, p, n_boot=100, seed=0, groups=patient).ci["sensitivity[MALIGNANT]"]
    assert lo < hi  # the cluster-Wilson interval (the default) rests on the one patient


def test_patient_bootstrap_rejects_bad_ids() -> None:
    y, p = scored_data(30, 8)
    with pytest.raises(DataError, match="30 ids"):
        EV.evaluate(y, p, n_boot=10, groups=np.arange(29))
    with pytest.raises(DataError, match="missing id at position 4"):
        EV.evaluate(y, p, n_boot=10, groups=[None if i == 4 else i for i in range(30)])
    with pytest.raises(DataError, match="patient id"):
        EV.evaluate(y, p, n_boot=10, unit="patient")
    with pytest.raises(ValueError, match="unit"):
        EV.evaluate(y, p, n_boot=10, groups=np.arange(30), unit="lesion")


def accuracy_interval(
    y: np.ndarray, p: np.ndarray, clusters: np.ndarray, n_boot: int, seed: int
) -> tuple[float, float]:
    """95% interval of the accuracy from the study's cluster resampler with an accuracy-only statistic."""
    correct = (p.argmax(axis=1) == y).astype(float)
    lo, hi, _ = B.cluster_bootstrap(
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
    ev = EV.evaluate(y, p, n_boot=400, seed=5, groups=patient, proportion_ci="bootstrap")
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
    d = B.paired_difference(y, p, p, groups=patient, n_boot=100, seed=0)
    assert list(d.columns) == B.PAIRED_COLUMNS
    assert (d["difference"] == 0).all() and (d["ci_low"] == 0).all() and (d["ci_high"] == 0).all()
    assert (d["p_value"] == 1).all()
    assert set(d["resampling_unit"]) == {"patient"} and set(d["n_patients"]) == {30}


def test_paired_difference_detects_a_better_model_and_pairs_the_resamples() -> None:
    y, p, patient = clustered_data(60, 4, seed=8, tau=1.0)
    rng = np.random.default_rng(0)
    worse = 0.3 * p + 0.7 * rng.dirichlet(np.ones(3), size=len(y))
    d = B.paired_difference(
        y, p, worse, metrics=("accuracy", "auc_pooled"), groups=patient, n_boot=300, seed=0
    ).set_index("metric")
    a = EV.evaluate(y, p, n_boot=0)
    b = EV.evaluate(y, worse, n_boot=0)
    assert d.loc["accuracy", "difference"] == pytest.approx(a.accuracy - b.accuracy)
    assert d.loc["auc_pooled", "difference"] == pytest.approx(a.auc_pooled - b.auc_pooled)
    assert (d["ci_low"] > 0).all() and (d["p_value"] < 0.05).all()
    # the paired interval is narrower than what two separate intervals would suggest
    sa = EV.evaluate(y, p, n_boot=300, seed=0, groups=patient)
    sb = EV.evaluate(y, worse, n_boot=300, seed=0, groups=patient)
    separate = (sa.ci["auc_pooled"][1] - sa.ci["auc_pooled"][0]) + (
        sb.ci["auc_pooled"][1] - sb.ci["auc_pooled"][0]
    )
    assert d.loc["auc_pooled", "ci_high"] - d.loc["auc_pooled", "ci_low"] < 0.75 * separate
    with pytest.raises(ValueError, match="unknown metric"):
        B.paired_difference(y, p, worse, metrics=("kappa",), groups=patient, n_boot=0)


# ----------------------------------------------------------------------- cluster-Wilson intervals


def _real_test_clusters() -> tuple[np.ndarray, np.ndarray]:
    """Patient id and class index of every ROI of the real official test table (shipped with mcalc)."""
    from mcalc.data.calibration import read_split, shipped_tables

    df = read_split(shipped_tables()["test"], "test")
    return df["patient_id"].to_numpy(), df["pathology"].map(CLASSES.index).to_numpy()


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
    mask = labels == CLASSES.index(cls)
    codes = pd.factorize(patients[mask])[0]
    if cls == "BENIGN_WITHOUT_CALLBACK":
        assert (mask.sum(), codes.max() + 1) == (67, 17)
    z, w = np.polynomial.hermite_e.hermegauss(40)
    mu = brentq(lambda a: expit(a + sigma * z) @ (w / w.sum()) - truth, -30, 30)
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(1000):
        pi = expit(mu + sigma * rng.normal(size=codes.max() + 1))[codes]
        lo, hi = B.cluster_wilson(rng.uniform(size=len(codes)) < pi, codes)
        assert lo < hi
        hits += lo <= truth <= hi
    assert hits / 1000 >= WILSON_COVERAGE_FLOOR, hits / 1000


def test_cluster_wilson_all_correct_rests_on_the_patients() -> None:
    """17 patients, 67 ROIs, all correct: the lower limit is Wilson's for 17, not for 67, ROIs."""
    codes = np.repeat(np.arange(17), [4] * 16 + [3])
    lo, hi = B.cluster_wilson(np.ones(67), codes)
    assert lo == pytest.approx(17 / (17 + 1.959964**2), abs=1e-4) and hi == 1.0
    assert B.cluster_wilson(np.ones(67), np.arange(67))[0] > 0.94


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
    truth = EV.evaluate(np.tile(y, 200), big, n_boot=0).values()
    rng = np.random.default_rng(0)
    hits = dict.fromkeys(names, 0)
    reps = 200
    for r in range(reps):
        ev = EV.evaluate(y, draw(rng), n_boot=500, seed=r, groups=patients)
        for n in names:
            lo, hi = ev.ci[n]
            hits[n] += lo <= truth[n] <= hi
    coverage = {n: h / reps for n, h in hits.items()}
    assert min(coverage.values()) >= 0.88, coverage
