"""Tests for mcalc.evaluate.baselines: GLCM features, in-fold scaling in CV, majority and assessment baselines."""

from __future__ import annotations

import warnings
from pathlib import Path

import mahotas
import numpy as np
import pandas as pd
import pytest
from conftest import shared_tables, write_dicom
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from mcalc.errors import DataError
from mcalc.evaluate import baselines as B
from mcalc.evaluate import metadata as MD
from mcalc.evaluate import metrics as M

CLASSES = ("BENIGN", "BENIGN_WITHOUT_CALLBACK", "MALIGNANT")


def noise_image(seed: int = 0, shape: tuple[int, int] = (48, 40)) -> np.ndarray:
    """Integer-valued uniform noise spanning 0..255."""
    img = np.random.default_rng(seed).integers(0, 256, shape).astype(np.float64)
    img[0, 0], img[0, 1] = 0, 255
    return img


def striped_image(shape: tuple[int, int] = (48, 40)) -> np.ndarray:
    """Vertical stripes, period 4 columns."""
    cols = np.arange(shape[1])
    return np.tile(np.where(cols % 4 < 2, 200.0, 20.0), (shape[0], 1))


def features_dataset(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features informative about three balanced classes."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.normal(size=(n, 5))
    X[:, 0] += 2 * y
    return X, y


def test_glcm_shape_names_and_mahotas_directly() -> None:
    img = noise_image()
    feats = B.glcm_features(img, levels=64)
    assert feats.shape == (14,) == (len(B.HARALICK_NAMES),)
    q = np.rint((img - img.min()) / (img.max() - img.min()) * 63).astype(np.uint8)
    direct = mahotas.features.haralick(
        q, ignore_zeros=False, compute_14th_feature=True, return_mean=True
    )
    np.testing.assert_array_equal(feats, direct)
    assert B.quantise(img, 64).max() == 63 and B.quantise(img, 64).min() == 0


def test_glcm_invariant_to_global_gain_and_offset() -> None:
    img = noise_image(1)
    base = B.glcm_features(img)
    np.testing.assert_allclose(B.glcm_features(4.0 * img), base, rtol=1e-12)
    np.testing.assert_allclose(B.glcm_features(3.0 * img + 1000.0), base, rtol=1e-12)


def test_glcm_distinguishes_noise_from_stripes() -> None:
    noise = B.glcm_features(noise_image(2))
    stripes = B.glcm_features(striped_image())
    name = dict(zip(B.HARALICK_NAMES, range(14)))
    # two grey levels in a regular pattern: far more concentrated co-occurrences, far less entropy
    assert stripes[name["angular_second_moment"]] > 10 * noise[name["angular_second_moment"]]
    assert stripes[name["entropy"]] < 0.5 * noise[name["entropy"]]


def test_glcm_levels_change_features() -> None:
    img = noise_image(3)
    assert not np.allclose(B.glcm_features(img, levels=16), B.glcm_features(img, levels=64))


def test_glcm_bad_images_raise() -> None:
    with pytest.raises(DataError, match="constant"):
        B.glcm_features(np.full((20, 20), 7.0))
    nan = noise_image()
    nan[3, 3] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        B.glcm_features(nan)
    with pytest.raises(DataError, match="2-D"):
        B.glcm_features(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError):
        B.glcm_features(noise_image(), levels=1)


def test_glcm_feature_matrix_reads_dicoms(tmp_path: Path) -> None:
    from mcalc.data.images import read_image

    images = [noise_image(s) * 16 for s in range(3)] + [striped_image() * 10]
    paths = [write_dicom(tmp_path / f"roi{i}.dcm", img) for i, img in enumerate(images)]
    serial = B.glcm_feature_matrix(paths, workers=1, progress=False)
    assert serial.shape == (4, 14)
    for row, path in zip(serial, paths):
        np.testing.assert_array_equal(row, B.glcm_features(read_image(path)))
    np.testing.assert_allclose(serial[0], B.glcm_features(images[0]), rtol=1e-12)


@pytest.mark.slow
def test_glcm_feature_matrix_process_pool_same_as_serial(tmp_path: Path) -> None:
    paths = [write_dicom(tmp_path / f"roi{i}.dcm", noise_image(i) * 16) for i in range(5)]
    np.testing.assert_array_equal(
        B.glcm_feature_matrix(paths, workers=2, progress=False),
        B.glcm_feature_matrix(paths, workers=1, progress=False),
    )


def test_glcm_feature_matrix_error_names_file(tmp_path: Path) -> None:
    good = write_dicom(tmp_path / "good.dcm", noise_image())
    flat = write_dicom(tmp_path / "flat.dcm", np.full((16, 16), 100))
    with pytest.raises(DataError, match="flat.dcm"):
        B.glcm_feature_matrix([good, flat], workers=1, progress=False)


def test_pipelines_scale_inside() -> None:
    svm, knn = B.make_svm(0), B.make_knn(7)
    assert isinstance(svm.steps[0][1], StandardScaler) and isinstance(
        knn.steps[0][1], StandardScaler
    )
    assert knn.steps[-1][1].n_neighbors == 7


@pytest.mark.parametrize("make", [lambda: B.make_svm(0), lambda: B.make_knn(5)])
def test_cross_validated_proba_rows_sum_to_one(make) -> None:
    X, y = features_dataset()
    proba = B.cross_validated_proba(X, y, make(), n_splits=10, seed=0)
    assert proba.shape == (len(y), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert M.accuracy(y, proba.argmax(axis=1)) > 0.6  # informative features are learned
    np.testing.assert_array_equal(proba, B.cross_validated_proba(X, y, make(), n_splits=10, seed=0))


def test_cross_validation_fits_scaler_inside_folds() -> None:
    # one row carries a huge value of feature 1: a scaler fitted on all rows (leakage) shrinks that
    # feature to ~0 everywhere, while the scaler of the fold that holds the row out does not, so the
    # k-NN neighbours of that fold's other rows change
    X, y = features_dataset(90, seed=1)
    X[0, 1] = 1e6
    pipeline = B.make_knn(5)
    ours = B.cross_validated_proba(X, y, pipeline, n_splits=10, seed=0)
    cv = StratifiedKFold(n_splits=10, shuffle=True, random_state=0)
    in_fold = np.zeros_like(ours)
    for tr, te in cv.split(X, y):
        in_fold[te] = clone(pipeline).fit(X[tr], y[tr]).predict_proba(X[te])
    np.testing.assert_allclose(ours, in_fold)
    leaky_X = StandardScaler().fit_transform(X)
    leaky = np.zeros_like(ours)
    for tr, te in cv.split(X, y):
        leaky[te] = KNeighborsClassifier(5).fit(leaky_X[tr], y[tr]).predict_proba(leaky_X[te])
    assert not np.allclose(ours, leaky)


def test_cross_validated_proba_grouped() -> None:
    X, y = features_dataset(120, seed=2)
    groups = np.repeat(np.arange(40), 3)
    y = np.repeat(np.arange(40) % 3, 3)  # one label per group
    proba = B.cross_validated_proba(X, y, B.make_knn(5), n_splits=5, groups=groups)
    assert proba.shape == (120, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    with pytest.raises(DataError, match="groups"):
        B.cross_validated_proba(X, y, B.make_knn(5), groups=groups[:-1])


def test_fit_predict_proba_and_bad_input() -> None:
    X, y = features_dataset(90, seed=3)
    proba = B.fit_predict_proba(B.make_knn(5), X[:60], y[:60], X[60:])
    expected = Pipeline([("s", StandardScaler()), ("k", KNeighborsClassifier(5))]).fit(
        X[:60], y[:60]
    )
    np.testing.assert_allclose(proba, expected.predict_proba(X[60:]))
    with pytest.raises(DataError, match="MALIGNANT"):
        B.fit_predict_proba(B.make_knn(5), X[y != 2], y[y != 2], X)
    bad = X.copy()
    bad[4, 2] = np.inf
    with pytest.raises(DataError, match="row 4"):
        B.cross_validated_proba(bad, y, B.make_knn(5))


def test_majority_baseline() -> None:
    y_train = np.array([0, 2, 2, 1, 2, 0])
    proba = MD.majority_baseline(y_train, 4)
    assert proba.shape == (4, 3)
    np.testing.assert_allclose(proba[0], [2 / 6, 1 / 6, 3 / 6])
    assert (proba.argmax(axis=1) == 2).all()


def test_assessment_rule_small() -> None:
    train = pd.DataFrame(
        {"assessment": [2, 2, 2, 4, 4, 4, 5, 5], "label": [1, 1, 0, 0, 0, 2, 2, 2]}
    )
    test = pd.DataFrame({"assessment": [2, 4, 5, 3]})
    with pytest.warns(UserWarning, match="1 test ROI"):
        proba = MD.assessment_rule(train, test, alpha=1.0)
    np.testing.assert_allclose(proba[0], [2 / 6, 3 / 6, 1 / 6])  # (1+1, 2+1, 0+1) / (3+3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba.argmax(axis=1)[:3].tolist() == [1, 0, 2]
    np.testing.assert_allclose(
        proba[3], [(3 + 1) / 11, (2 + 1) / 11, (3 + 1) / 11]
    )  # unseen value 3: overall
    table = MD.assessment_rule_table(train)
    assert table.loc[2, "rule"] == "BENIGN_WITHOUT_CALLBACK" and table.loc[4, "n"] == 3
    with pytest.raises(DataError, match="assessment"):
        MD.assessment_rule(train.drop(columns="assessment"), test)


def test_assessment_rule_real_tables() -> None:
    folder = shared_tables()
    train = pd.read_csv(folder / "calc_case_description_train_set.csv")[["assessment", "pathology"]]
    test = pd.read_csv(folder / "calc_case_description_test_set.csv")[["assessment", "pathology"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every test assessment value occurs in training
        proba = MD.assessment_rule(train, test)
    y = test["pathology"].map(CLASSES.index).to_numpy()
    pred = proba.argmax(axis=1)
    assert 0.70 <= M.accuracy(y, pred) <= 0.73
    assert M.sensitivity_per_class(y, pred)[CLASSES.index("BENIGN_WITHOUT_CALLBACK")] >= 0.95
    assert MD.assessment_rule_table(train).loc[2, "rule"] == "BENIGN_WITHOUT_CALLBACK"


# ------------------------------------------------------ patient-grouped calibration and tuning


def patient_dataset(
    n_patients: int = 60, per_patient: int = 4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, patient): one class per patient, a patient effect shared by that patient's ROIs."""
    rng = np.random.default_rng(seed)
    patient = np.repeat(np.arange(n_patients), per_patient)
    y = (np.arange(n_patients) % 3)[patient]
    X = rng.normal(size=(len(y), 4))
    X[:, 0] += 1.5 * y
    X[:, 1] += 2 * rng.normal(size=n_patients)[patient]
    return X, y, patient


def assert_patients_whole(splits, patient: np.ndarray) -> None:
    """No patient on both sides of any (train, test) split."""
    for tr, te in splits:
        assert not set(patient[tr]) & set(patient[te])


def test_svm_platt_calibration_folds_are_grouped_by_patient() -> None:
    X, y, patient = patient_dataset()
    model = B.fit_model(B.make_svm(0), X, y, groups=patient)
    splits = model.named_steps["svm"].calibrated_.cv
    assert len(splits) == 5
    assert_patients_whole(splits, patient)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # without patient ids every ROI is its own group: the calibration folds then split patients
    ungrouped = B.fit_model(B.make_svm(0), X, y).named_steps["svm"].calibrated_.cv
    assert any(set(patient[tr]) & set(patient[te]) for tr, te in ungrouped)


class GroupsSpy(ClassifierMixin, BaseEstimator):
    """A classifier that checks it receives the patient ids of exactly its training rows (column 0)."""

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> GroupsSpy:
        """Fail unless ``groups`` are this fold's patient ids."""
        assert groups is not None and np.array_equal(np.asarray(groups), X[:, 0])
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Uniform probabilities."""
        return np.full((len(X), len(self.classes_)), 1 / len(self.classes_))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The first class."""
        return np.full(len(X), self.classes_[0])


def test_cross_validated_proba_hands_each_fold_its_patient_ids() -> None:
    X, y, patient = patient_dataset(30, 3)
    X = np.column_stack([patient.astype(float), X])
    proba = B.cross_validated_proba(X, y, GroupsSpy(), n_splits=5, groups=patient)
    np.testing.assert_allclose(proba, 1 / 3)
    spy_in_pipeline = Pipeline([("spy", GroupsSpy())])
    B.cross_validated_proba(X, y, spy_in_pipeline, n_splits=5, groups=patient)


@pytest.mark.parametrize("kind", ["knn", "svm"])
def test_tuned_classifier_chooses_by_grouped_inner_cv(kind: str) -> None:
    X, y, patient = patient_dataset(45, 4, seed=1)
    config = B.TuningConfig(svm_C=(0.1, 10.0), svm_gamma=(0.01, 1.0), knn_k=(1, 9, 25))
    model = B.fit_model(B.TunedClassifier(kind, config, seed=0), X, y, groups=patient)
    # the same search by hand: grouped folds, the plain model, the grid
    folds = B.grouped_folds(y, patient, config.inner_splits, 0, "test")
    if kind == "knn":
        plain, grid = B.make_knn(), {"knn__n_neighbors": list(config.knn_k)}
    else:
        plain = Pipeline([("scale", StandardScaler()), ("svm", SVC(kernel="rbf", random_state=0))])
        grid = {"svm__C": list(config.svm_C), "svm__gamma": list(config.svm_gamma)}
    search = GridSearchCV(plain, grid, cv=folds, scoring="accuracy", refit=False)
    search.fit(X, y, groups=patient)
    expected = {k.split("__")[1]: v for k, v in search.best_params_.items()}
    expected = {"k": expected["n_neighbors"]} if kind == "knn" else expected
    assert model.best_params_ == expected
    assert model.best_score_ == pytest.approx(search.best_score_)
    # nested inside a grouped outer CV it still gives a probability for every ROI
    proba = B.cross_validated_proba(
        X, y, B.TunedClassifier(kind, config), n_splits=5, groups=patient
    )
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    if kind == "svm":  # the chosen SVM keeps its patient-grouped calibration
        assert_patients_whole(model.model_.named_steps["svm"].calibrated_.cv, patient)


def test_tuned_knn_prefers_many_neighbours_on_noisy_patients_and_one_on_clean() -> None:
    rng = np.random.default_rng(3)
    patient = np.repeat(np.arange(60), 3)
    y = (np.arange(60) % 3)[patient]
    clean = np.column_stack([4.0 * y + 0.1 * rng.normal(size=len(y)), rng.normal(size=len(y))])
    noisy = np.column_stack([0.4 * y + rng.normal(size=len(y)), rng.normal(size=len(y))])
    config = B.TuningConfig(knn_k=(1, 31))
    assert B.fit_model(B.TunedClassifier("knn", config), noisy, y, patient).best_params_ == {
        "k": 31
    }
    # with separated classes every k is perfect and the first (smallest) wins the tie
    assert B.fit_model(B.TunedClassifier("knn", config), clean, y, patient).best_params_ == {"k": 1}


def test_grouped_folds_cap_and_refuse() -> None:
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    patient = np.array([1, 2, 3, 4, 5, 6, 7])
    assert B.grouped_folds(y, patient, 10, 0, "t").get_n_splits() == 2
    with pytest.raises(DataError, match="single patient"):
        B.grouped_folds(y, np.array([1, 2, 3, 3, 5, 6, 7]), 5, 0, "t")


def test_glcm_settings_state_what_glcm_features_does() -> None:
    s = B.glcm_settings()
    assert s["grey levels"] == B.GLCM_LEVELS == 64 and s["distance (pixels)"] == 1
    assert s["angles"].startswith("0°, 45°, 90°, 135°")
    # the stated distance and angles are mahotas' own: one direction's matrix at distance 1
    img = noise_image(4)
    q = B.quantise(img, B.GLCM_LEVELS)
    per_direction = mahotas.features.haralick(q, ignore_zeros=False, compute_14th_feature=True)
    assert per_direction.shape[0] == len(B.GLCM_ANGLES)
    np.testing.assert_allclose(B.glcm_features(img), per_direction.mean(axis=0))
