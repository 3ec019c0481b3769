"""Tests for mcalc.evaluate.evaluation: point estimates, the Evaluation record (serialisation, tables,
counts), evaluating manifest rows, paired comparison of evaluations, interval comparison, reliability."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from metric_cases import (
    CM,
    HAND_ACC,
    HAND_SENS,
    HAND_SPEC,
    clustered_data,
    labels_from_cm,
    scored_data,
)

from mcalc.errors import DataError
from mcalc.evaluate import bootstrap as B
from mcalc.evaluate import clusters as CL
from mcalc.evaluate import evaluation as EV
from mcalc.evaluate import metadata as MD
from mcalc.evaluate import metrics as M
from mcalc.study import CLASSES


def test_evaluate_point_estimates_match_functions() -> None:
    y, p = scored_data(90, 2)
    ev = EV.evaluate(y, p, n_boot=0)
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


def test_evaluate_hand_worked_confusion() -> None:
    y, pred = labels_from_cm(CM)
    proba = np.full((len(y), 3), 0.1)
    proba[np.arange(len(y)), pred] = 0.8
    ev = EV.evaluate(y, proba, n_boot=0)
    assert ev.confusion == CM.tolist()
    assert ev.accuracy == pytest.approx(HAND_ACC)
    assert list(ev.sensitivity.values()) == pytest.approx(HAND_SENS)
    assert list(ev.specificity.values()) == pytest.approx(HAND_SPEC)


def test_json_round_trip() -> None:
    y, p = scored_data(45, 6)
    for n_boot in (0, 30):
        ev = EV.evaluate(y, p, n_boot=n_boot, seed=1)
        text = json.dumps(ev.to_dict(), allow_nan=False)
        back = EV.Evaluation.from_dict(json.loads(text))
        pd.testing.assert_frame_equal(back.table(), ev.table())
        assert back.confusion == ev.confusion and back.classes == ev.classes and back.n == ev.n
        for c in CLASSES:
            np.testing.assert_allclose(back.roc()[c][0], ev.roc()[c][0])
            np.testing.assert_allclose(back.roc()[c][1], ev.roc()[c][1])
        if n_boot:
            assert back == ev


def test_table_and_confusion_frame_layout() -> None:
    y, p = scored_data(30, 7)
    ev = EV.evaluate(y, p, n_boot=0)
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
    assert list(frame.index) == list(CLASSES) == list(frame.columns)


def test_bad_inputs_raise_data_error() -> None:
    y, p = scored_data(30, 8)
    with pytest.raises(DataError, match="MALIGNANT"):
        EV.evaluate(np.where(y == 2, 0, y), p, n_boot=0)
    bad = p.copy()
    bad[3] = [0.5, 0.5, 0.5]
    with pytest.raises(DataError, match="row 3"):
        EV.evaluate(y, bad, n_boot=0)
    with pytest.raises(DataError, match="shape"):
        EV.evaluate(y, p[:, :2], n_boot=0)
    with pytest.raises(DataError, match="rows"):
        EV.evaluate(y[:-1], p, n_boot=0)
    with pytest.raises(DataError, match="not in 0..2"):
        EV.evaluate(np.where(y == 2, 3, y), p, n_boot=0)
    nan = p.copy()
    nan[5, 0] = np.nan
    with pytest.raises(DataError, match="row 5"):
        M.log_loss_kl(y, nan)


def test_methods_page_interval_table_is_what_the_code_gives_on_the_real_tables() -> None:
    """book/methods.md's ROI- vs patient-level table, recomputed from the shipped real tables (BI-RADS rule)."""
    from conftest import REPO

    from mcalc.evaluate.metadata import read_real_tables

    rows = read_real_tables()
    train, test = rows[rows["split"] == "train"], rows[rows["split"] == "test"]
    proba = MD.assessment_rule(train, test)
    patients, lesions = CL.cluster_ids(test)
    table = EV.interval_comparison(
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
    ev = EV.evaluate_rows(rows, p, n_boot=100, seed=0)
    assert (ev.resampling_unit, ev.n_patients, ev.n_lesions) == ("patient", 30, 60)
    assert (
        ev.predictions["roi_id"][:2] == ["R0000", "R0001"] and len(ev.predictions["proba"]) == 120
    )
    back = EV.Evaluation.from_dict(json.loads(json.dumps(ev.to_dict(), allow_nan=False)))
    assert back == ev
    rng = np.random.default_rng(1)
    worse = 0.3 * p + 0.7 * rng.dirichlet(np.ones(3), size=len(y))
    shuffled = rng.permutation(len(y))  # the other model's rows in another order
    other = EV.evaluate_rows(rows.iloc[shuffled], worse[shuffled], n_boot=100, seed=0)
    by_id = EV.compare_evaluations(ev, other).set_index("metric")
    direct = B.paired_difference(y, p, worse, groups=patient, n_boot=100, seed=0).set_index(
        "metric"
    )
    pd.testing.assert_frame_equal(
        by_id[["difference", "ci_low", "ci_high"]], direct[["difference", "ci_low", "ci_high"]]
    )
    assert by_id.loc["accuracy", "n_lesions"] == 60
    with pytest.raises(DataError, match="same ROIs"):
        EV.compare_evaluations(ev, EV.evaluate_rows(rows.iloc[:-1], worse[:-1], n_boot=0))
    with pytest.raises(DataError, match="no per-ROI predictions"):
        EV.compare_evaluations(ev, EV.evaluate(y, worse, n_boot=0))


def test_brier_score_in_every_evaluation_record_with_a_patient_level_interval() -> None:
    """Brier: 0 for perfect one-hot scores, 2 for confident wrong ones; recorded, with its interval,
    in the JSON record; an old record without it reads back as NaN."""
    y = np.array([0, 1, 2, 0, 1, 2])
    assert M.brier_score(y, np.eye(3)[y]) == 0.0
    assert M.brier_score(y, np.eye(3)[(y + 1) % 3]) == 2.0
    y, p, patient = clustered_data(40, 3, seed=4)
    ev = EV.evaluate(y, p, n_boot=200, seed=1, groups=patient)
    record = json.loads(json.dumps(ev.to_dict()))
    assert record["brier"] == pytest.approx(M.brier_score(y, p))
    lo, hi = record["ci"]["brier"]
    assert lo < record["brier"] < hi
    assert "brier" in set(ev.table()["metric"])
    del record["brier"]
    assert math.isnan(EV.Evaluation.from_dict(record).brier)


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
    table = EV.reliability(EV.evaluate_rows(rows, p, n_boot=0))
    assert table["ROIs"].sum() == n
    assert np.abs(table["accuracy"] - table["confidence"]).max() < 0.08
    sure = np.where(np.arange(3)[None, :] == pred[:, None], 0.98, 0.01)
    over = EV.reliability(EV.evaluate_rows(rows, sure, n_boot=0))
    assert (over["confidence"] - over["accuracy"]).max() > 0.2
    edge = np.eye(3)[y] * 0.7 + 0.1  # every confidence exactly on a bin edge (0.8)
    on_edge = EV.reliability(EV.evaluate_rows(rows, edge, n_boot=0))
    assert on_edge["ROIs"].tolist() == [n] and on_edge["confidence"].tolist() == [
        pytest.approx(0.8)
    ]
    with pytest.raises(DataError, match="no per-ROI predictions"):
        EV.reliability(EV.evaluate(y, p, n_boot=0))
