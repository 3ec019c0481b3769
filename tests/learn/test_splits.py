"""Tests for mcalc.learn.splits: patient-grouped and ROI-level splits, class checks, leakage counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared_tables

from mcalc.errors import DataError
from mcalc.learn import splits as S

CLASSES = ("BENIGN", "BENIGN_WITHOUT_CALLBACK", "MALIGNANT")


def roi(patient: str, side: str, view: str, abn: int, label: int = 0) -> dict:
    """One manifest row."""
    image_id = f"{patient}_{side}_{view}"
    return {
        "roi_id": f"Calc-Training_{image_id}_{abn}",
        "patient_id": patient,
        "side": side,
        "view": view,
        "image_id": image_id,
        "abnormality_id": abn,
        "label": label,
        "pathology": CLASSES[label],
    }


def synthetic_manifest(n_patients: int = 120, seed: int = 0) -> pd.DataFrame:
    """Patients with 1–3 lesions, each seen in CC and usually MLO; one label per patient."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        patient = f"P_{i:05d}"
        label = int(rng.choice(3, p=[0.35, 0.30, 0.35]))
        side = str(rng.choice(["LEFT", "RIGHT"]))
        for abn in range(1, int(rng.integers(1, 4)) + 1):
            for view in ("CC", "MLO") if rng.random() < 0.85 else ("CC",):
                rows.append(roi(patient, side, view, abn, label))
    return pd.DataFrame(rows)


def load_real(split: str) -> pd.DataFrame:
    """The real calcification table as a minimal manifest (pandas only)."""
    name = {
        "train": "calc_case_description_train_set.csv",
        "test": "calc_case_description_test_set.csv",
    }[split]
    raw = pd.read_csv(shared_tables() / name)
    df = pd.DataFrame(
        {
            "patient_id": raw["patient_id"],
            "side": raw["left or right breast"],
            "view": raw["image view"],
            "abnormality_id": raw["abnormality id"].astype(int),
            "label": raw["pathology"].map(CLASSES.index).astype(int),
        }
    )
    df["image_id"] = df["patient_id"] + "_" + df["side"] + "_" + df["view"]
    prefix = "Calc-Training_" if split == "train" else "Calc-Test_"
    df["roi_id"] = prefix + df["image_id"] + "_" + df["abnormality_id"].astype(str)
    return df


def assert_partition(n: int, a: np.ndarray, b: np.ndarray) -> None:
    """a and b are disjoint sorted positions covering 0..n-1."""
    assert len(np.intersect1d(a, b)) == 0
    assert np.array_equal(np.sort(np.concatenate([a, b])), np.arange(n))


def class_fractions(df: pd.DataFrame) -> np.ndarray:
    """Fraction of each class."""
    return np.bincount(df["label"], minlength=3) / len(df)


def test_validation_split_grouped_stratified_sized() -> None:
    m = synthetic_manifest()
    tr, va = S.validation_split(m, n_val=60, seed=0)
    assert_partition(len(m), tr, va)
    assert set(m.iloc[tr]["patient_id"]).isdisjoint(m.iloc[va]["patient_id"])
    assert abs(len(va) - 60) <= 10
    np.testing.assert_allclose(class_fractions(m.iloc[va]), class_fractions(m), atol=0.1)


def test_validation_split_fraction_and_determinism() -> None:
    m = synthetic_manifest(seed=1)
    a = S.validation_split(m, n_val=0.25, seed=3)
    b = S.validation_split(m, n_val=0.25, seed=3)
    c = S.validation_split(m, n_val=0.25, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], c[1])
    assert abs(len(a[1]) - 0.25 * len(m)) <= 0.05 * len(m)


def test_validation_split_bad_sizes() -> None:
    m = synthetic_manifest()
    for bad in (0, len(m), 1.5, 0.0):
        with pytest.raises(ValueError):
            S.validation_split(m, n_val=bad)


def test_patient_grouped_split_disjoint() -> None:
    m = synthetic_manifest(seed=2)
    tr, te = S.patient_grouped_split(m, test_fraction=0.2, seed=0)
    assert_partition(len(m), tr, te)
    assert set(m.iloc[tr]["patient_id"]).isdisjoint(m.iloc[te]["patient_id"])
    assert abs(len(te) - 0.2 * len(m)) <= 0.05 * len(m)
    np.testing.assert_allclose(class_fractions(m.iloc[te]), class_fractions(m), atol=0.1)
    report = S.leakage_report(m.iloc[tr], m.iloc[te])
    assert report["same_patient"] == report["shared_patients"] == 0


def test_roi_level_split_stratified_but_leaky() -> None:
    m = synthetic_manifest(seed=3)
    tr, te = S.roi_level_split(m, test_fraction=0.2, seed=0)
    assert_partition(len(m), tr, te)
    assert len(te) == round(0.2 * len(m))
    expected = np.bincount(m["label"], minlength=3) * len(te) / len(m)
    assert np.all(np.abs(np.bincount(m.iloc[te]["label"], minlength=3) - expected) <= 1)
    report = S.leakage_report(m.iloc[tr], m.iloc[te])
    assert report["shared_patients"] > 0 and report["same_lesion_other_view"] > 0


def test_missing_class_raises_naming_class_and_split() -> None:
    m = synthetic_manifest()
    no_bwc = m[m["label"] != 1].reset_index(drop=True)
    with pytest.raises(DataError, match="BENIGN_WITHOUT_CALLBACK.*input"):
        S.validation_split(no_bwc, n_val=30)
    with pytest.raises(DataError, match="BENIGN_WITHOUT_CALLBACK"):
        S.roi_level_split(no_bwc)
    # MALIGNANT in one patient only: it cannot be on both sides of a patient-grouped split
    one_patient = pd.concat(
        [
            m[m["label"] != 2],
            pd.DataFrame([roi("P_99999", "LEFT", "CC", 1, 2), roi("P_99999", "LEFT", "MLO", 1, 2)]),
        ],
        ignore_index=True,
    )
    with pytest.raises(DataError, match=r"'MALIGNANT'.*(training|validation) split"):
        S.validation_split(one_patient, n_val=40)


def test_bad_manifest_raises() -> None:
    m = synthetic_manifest()
    with pytest.raises(DataError, match="patient_id"):
        S.validation_split(m.drop(columns="patient_id"))
    bad = m.copy()
    bad.loc[5, "label"] = 7
    with pytest.raises(DataError, match="row 5"):
        S.patient_grouped_split(bad)


def test_leakage_report_hand_built() -> None:
    train = pd.DataFrame(
        [
            roi("P1", "LEFT", "CC", 1),
            roi("P2", "RIGHT", "MLO", 1),
            roi("P3", "LEFT", "CC", 2),
        ]
    )
    test = pd.DataFrame(
        [
            roi("P1", "LEFT", "MLO", 1),  # same lesion, other view; same breast; same patient
            roi("P2", "RIGHT", "MLO", 2),  # same mammogram (another ROI); same patient
            roi("P3", "LEFT", "MLO", 1),  # same breast other view, different lesion; same patient
            roi("P3", "RIGHT", "CC", 1),  # same patient only
            roi("P9", "LEFT", "CC", 1),  # unrelated
        ]
    )
    r = S.leakage_report(train, test)
    assert (r["n_train"], r["n_test"]) == (3, 5)
    assert r["same_roi"] == 0
    assert r["same_lesion_other_view"] == 1
    assert r["same_breast_other_view"] == 2
    assert r["same_image"] == 1
    assert r["same_patient"] == 4
    assert r["frac_same_patient"] == pytest.approx(4 / 5)
    assert (r["test_patients"], r["shared_patients"]) == (4, 3)
    dup = S.leakage_report(train, train.iloc[[0]])
    assert dup["same_roi"] == 1 and dup["same_image"] == 1 and dup["same_lesion_other_view"] == 0


def test_leakage_report_missing_column() -> None:
    m = synthetic_manifest()
    with pytest.raises(DataError, match="image_id"):
        S.leakage_report(m, m.drop(columns="image_id"))


@pytest.mark.slow
def test_real_tables_official_split_clean_roi_split_leaky() -> None:
    train, test = load_real("train"), load_real("test")
    official = S.leakage_report(train, test)
    assert official["shared_patients"] == 0 and official["same_patient"] == 0
    tr, va = S.validation_split(train, n_val=200, seed=0)
    assert 180 <= len(va) <= 220
    assert set(train.iloc[tr]["patient_id"]).isdisjoint(train.iloc[va]["patient_id"])
    np.testing.assert_allclose(class_fractions(train.iloc[va]), class_fractions(train), atol=0.03)
    pooled = pd.concat([train, test], ignore_index=True)
    tr, te = S.roi_level_split(pooled, 0.2, seed=0)
    leaky = S.leakage_report(pooled.iloc[tr], pooled.iloc[te])
    # most held-out ROIs have the other view of the same lesion in training
    assert leaky["frac_same_lesion_other_view"] > 0.5


def test_lesion_matching_report_hand_built() -> None:
    """Counts breasts whose views hold different ROI counts, and id pairs that disagree on pathology."""
    rows = [
        roi("P_1", "LEFT", "CC", 1, 0),
        roi("P_1", "LEFT", "MLO", 1, 0),  # a consistent pair
        roi("P_2", "LEFT", "CC", 1, 0),
        roi("P_2", "LEFT", "CC", 2, 2),
        roi(
            "P_2", "LEFT", "MLO", 1, 2
        ),  # 2 CC vs 1 MLO; id 1 pairs BENIGN with MALIGNANT; id 2 alone
        roi("P_3", "RIGHT", "CC", 1, 1),  # one view only: not a two-view breast
    ]
    report = S.lesion_matching_report(pd.DataFrame(rows))
    assert report == {
        "breasts_two_views": 2,
        "breasts_count_mismatch": 1,
        "id_pairs": 2,
        "id_pairs_pathology_mismatch": 1,
        "id_pairs_unmatched": 1,
    }


def test_lesion_matching_is_presumed_on_the_real_tables() -> None:
    """On the official tables the per-image ids do not always pair up: the mismatches are there to count."""
    for split, breasts_mismatch, pathology_mismatch in (("train", 38, 3), ("test", 5, 0)):
        df = load_real(split).assign(pathology=lambda d: d["label"].map(dict(enumerate(CLASSES))))
        report = S.lesion_matching_report(df)
        assert report["breasts_count_mismatch"] == breasts_mismatch
        assert report["id_pairs_pathology_mismatch"] == pathology_mismatch
        assert 0 < report["breasts_count_mismatch"] < report["breasts_two_views"]


def test_fast_grouped_folds_are_the_librarys_folds():
    """FastStratifiedGroupKFold gives scikit-learn's StratifiedGroupKFold folds exactly, exact ties
    (labels constant within patients) included, over many shapes, fold counts and seeds."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    from mcalc.learn.splits import FastStratifiedGroupKFold

    rng = np.random.default_rng(0)
    compared = 0
    for case in range(60):
        n = int(rng.integers(20, 300))
        groups = rng.integers(0, int(rng.integers(5, n // 2)), n)
        y = groups % 3 if case % 3 == 0 else rng.integers(0, 3, n)
        for k in (2, 3, 5, 9, 11):
            for seed in range(2):
                library = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
                fast = FastStratifiedGroupKFold(k, shuffle=True, random_state=seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    try:
                        expected = [list(h) for _, h in library.split(np.zeros(n), y, groups)]
                    except ValueError:  # more folds than patients or than a class has members
                        continue
                    got = [list(h) for _, h in fast.split(np.zeros(n), y, groups)]
                assert got == expected, (case, k, seed)
                compared += 1
    assert compared > 300
