"""Classical baselines (paper Table 4): GLCM (Haralick) texture + SVM / k-NN, majority, metadata rule.

The paper extracts "14 second-order GLCM features" and classifies them with an RBF SVM and a k-NN,
reporting 10-fold cross-validated accuracy, AUC and sensitivity. Here:

* :func:`mcalc.learn.glcm.glcm_features` — the 14 Haralick features of the ROI (feature extraction
  lives in :mod:`mcalc.learn.glcm`);
* :func:`make_svm`, :func:`make_knn` — scikit-learn pipelines with the feature scaling *inside* the
  pipeline, so that cross-validation refits the scaler on each training fold; the SVM's Platt
  calibration is fitted on folds grouped by patient (:class:`GroupedPlattSVC`);
* :class:`TunedClassifier` — the SVM's C and gamma, or k of the k-NN, chosen by patient-grouped inner
  cross-validation on the data it is fitted on (nested inside the outer CV), not fixed defaults;
* :func:`cross_validated_proba` — out-of-fold probabilities (``cross_val_predict``), patient ids
  passed down to every inner split;
* :func:`fit_model`, :func:`fit_predict_proba` — fit on the training table, predict the official test
  table;
* :func:`majority_baseline` and :func:`assessment_rule` — baselines that never look at the image. The
  BI-RADS ``assessment`` column alone separates BENIGN_WITHOUT_CALLBACK (assessment 2) almost
  perfectly: a property of the labels (that class marks lesions not biopsied; the assessment is the
  radiologist's reading), reported as a reference point, not as a bar for an image model;
* :func:`run_baselines` — chapter 4's step: all of the above on the curated ROIs (GLCM features through
  the content-keyed cache, :func:`glcm_matrix`), evaluated and saved as run records.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedGroupKFold,
    StratifiedKFold,
    cross_val_predict,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from mcalc.errors import DataError
from mcalc.evaluate.evaluation import Evaluation, evaluate_rows
from mcalc.evaluate.metadata import assessment_rule, majority_baseline
from mcalc.evaluate.runs import BaselineRun
from mcalc.learn.glcm import GLCM_LEVELS, glcm_feature_matrix, glcm_settings
from mcalc.learn.splits import FastStratifiedGroupKFold
from mcalc.records.cache import FeatureCache, cache_key, file_digest, load_or_compute
from mcalc.records.provenance import Provenance
from mcalc.records.results import (
    RUNS,
    load_manifest,
    read_results_provenance,
    usable_under_task,
    write_json,
)
from mcalc.study import CLASSES, DEFAULT_TASK, N_BOOT, Task, get_task

__all__ = [
    "TuningConfig",
    "grouped_folds",
    "GroupedPlattSVC",
    "make_svm",
    "make_knn",
    "TunedClassifier",
    "cross_validated_proba",
    "fit_model",
    "predict_proba",
    "fit_predict_proba",
    "BaselineResults",
    "glcm_matrix",
    "run_baselines",
]


@dataclass(frozen=True)
class TuningConfig:
    """Hyper-parameter grids, searched by patient-grouped inner cross-validation, and its folds."""

    svm_C: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0)
    svm_gamma: tuple[float, ...] = (0.01, 0.1, 1.0)
    knn_k: tuple[int, ...] = (3, 5, 7, 11, 15, 21)
    #: folds of the inner (tuning) cross-validation, grouped by patient
    inner_splits: int = 5
    #: folds of the SVM's Platt calibration, grouped by patient
    platt_splits: int = 5
    #: the criterion the inner CV maximises (a scikit-learn scorer name)
    scoring: str = "accuracy"

    def to_dict(self) -> dict:
        """JSON-serialisable dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def grouped_folds(
    y: np.ndarray,
    groups: np.ndarray | None,
    n_splits: int,
    seed: int,
    what: str,
    classes: Sequence[str] = CLASSES,
) -> StratifiedGroupKFold | StratifiedKFold:
    """Label-stratified folds that keep each patient in one fold (fewer folds when a class has fewer patients).

    A fold can only hold a class out if the class has a patient to spare: the number of folds is
    capped at the smallest number of patients of any class (at least 2, else DataError). Without
    ``groups`` every ROI is its own patient (plain ``StratifiedKFold``).
    """
    y = np.asarray(y)
    names, classes = tuple(classes), np.unique(y)
    if groups is None:
        per_class = [int((y == c).sum()) for c in classes]
    else:
        groups = np.asarray(groups)
        per_class = [len(np.unique(groups[y == c])) for c in classes]
    n = min(int(n_splits), *per_class)
    if n < 2:
        c = names[int(classes[int(np.argmin(per_class))])]
        raise DataError(
            f"{what}: class {c!r} has ROIs of a single patient; "
            "patient-grouped cross-validation needs at least 2 patients per class"
        )
    if groups is None:
        return StratifiedKFold(n_splits=n, shuffle=True, random_state=seed)
    return FastStratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed)


def _check_groups(groups: np.ndarray | None, n: int, what: str) -> np.ndarray | None:
    """The patient id of each row (None stays None: every ROI its own patient)."""
    if groups is None:
        return None
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) != n:
        raise DataError(f"{what}: {len(groups)} groups for {n} rows")
    return groups


class GroupedPlattSVC(ClassifierMixin, BaseEstimator):
    """RBF SVC with Platt-scaled (sigmoid) probabilities whose calibration folds are grouped by patient.

    This is what ``SVC(probability=True)`` does (Platt scaling fitted on internal cross-validated
    decision values, then one SVC refitted on all the data), written as
    ``CalibratedClassifierCV(SVC(), method="sigmoid", ensemble=False)``, the form scikit-learn
    recommends since it deprecated ``probability=True`` (1.9) — but with the internal folds grouped by
    patient (``fit(X, y, groups=patient_ids)``), as the outer cross-validation is: ungrouped folds
    would calibrate on decision values of ROIs whose other view was in the SVC's training fold. For
    three classes the calibration is one-vs-rest (normalised) instead of libsvm's pairwise coupling.
    """

    def __init__(
        self, C: float = 1.0, gamma: float | str = "scale", n_splits: int = 5, random_state: int = 0
    ) -> None:
        self.C = C
        self.gamma = gamma
        self.n_splits = n_splits
        self.random_state = random_state

    def fit(
        self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None
    ) -> GroupedPlattSVC:
        """Fit the SVC and its patient-grouped Platt calibration."""
        groups = _check_groups(groups, len(y), "GroupedPlattSVC")
        folds = grouped_folds(y, groups, self.n_splits, self.random_state, "Platt calibration")
        svc = SVC(kernel="rbf", C=self.C, gamma=self.gamma, random_state=self.random_state)
        self.calibrated_ = CalibratedClassifierCV(
            svc, method="sigmoid", ensemble=False, cv=list(folds.split(X, y, groups))
        ).fit(X, y)
        self.classes_ = self.calibrated_.classes_
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities."""
        return self.calibrated_.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class of highest calibrated probability."""
        return self.calibrated_.predict(X)


def make_svm(seed: int = 0, C: float = 1.0, gamma: float | str = "scale") -> Pipeline:
    """StandardScaler + RBF SVC with patient-grouped Platt calibration (:class:`GroupedPlattSVC`)."""
    svm = GroupedPlattSVC(C=C, gamma=gamma, n_splits=TuningConfig().platt_splits, random_state=seed)
    return Pipeline([("scale", StandardScaler()), ("svm", svm)])


def make_knn(k: int = 5) -> Pipeline:
    """StandardScaler + k-nearest-neighbours classifier (probabilities = neighbour class fractions)."""
    return Pipeline([("scale", StandardScaler()), ("knn", KNeighborsClassifier(n_neighbors=k))])


def _check_xy(
    X: np.ndarray, y: np.ndarray, what: str, classes: Sequence[str] = CLASSES
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a feature matrix and its labels; every class must be present."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2:
        raise DataError(f"{what}: X must be 2-D, got shape {X.shape}")
    if y.ndim != 1 or len(y) != len(X):
        raise DataError(f"{what}: y must be 1-D with {len(X)} labels, got shape {y.shape}")
    if not np.all(np.isfinite(X)):
        row = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise DataError(f"{what}: non-finite feature in row {row}")
    y = y.astype(np.int64)
    n_classes = len(classes)
    counts = np.bincount(y, minlength=n_classes) if (y >= 0).all() else None
    if counts is None or len(counts) > n_classes:
        raise DataError(f"{what}: labels must be in 0..{n_classes - 1}")
    for k, c in enumerate(classes):
        if counts[k] == 0:
            raise DataError(f"{what}: class {c!r} (label {k}) has no example in the training data")
    return X, y


class TunedClassifier(ClassifierMixin, BaseEstimator):
    """GLCM classifier whose hyper-parameters are chosen by patient-grouped inner cross-validation.

    ``fit(X, y, groups=patient_ids)`` searches ``config``'s grid (SVM: C × gamma of a plain RBF SVC;
    k-NN: k) with ``GridSearchCV`` over :func:`grouped_folds`, maximising ``config.scoring``, then
    fits the chosen model (for the SVM, :func:`make_svm` with its patient-grouped Platt calibration) on
    all the rows. ``best_params_`` holds the choice. Inside :func:`cross_validated_proba` this is a
    nested CV: every outer training fold chooses its own hyper-parameters from its own patients.
    """

    def __init__(
        self, kind: str = "svm", config: TuningConfig | None = None, seed: int = 0
    ) -> None:
        self.kind = kind
        self.config = config
        self.seed = seed

    def _grid(self, config: TuningConfig, n_train: int) -> tuple[Pipeline, dict[str, list]]:
        """The plain pipeline searched and its grid."""
        if self.kind == "svm":
            plain = Pipeline(
                [("scale", StandardScaler()), ("svm", SVC(kernel="rbf", random_state=self.seed))]
            )
            return plain, {"svm__C": list(config.svm_C), "svm__gamma": list(config.svm_gamma)}
        if self.kind == "knn":
            ks = [k for k in config.knn_k if k < n_train] or [min(config.knn_k)]
            return make_knn(), {"knn__n_neighbors": ks}
        raise ValueError(f"kind must be 'svm' or 'knn', got {self.kind!r}")

    def fit(
        self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None
    ) -> TunedClassifier:
        """Choose the hyper-parameters by grouped inner CV, then fit the chosen model on all rows."""
        config = self.config if isinstance(self.config, TuningConfig) else TuningConfig()
        groups = _check_groups(groups, len(y), "TunedClassifier")
        folds = grouped_folds(y, groups, config.inner_splits, self.seed, "hyper-parameter search")
        n_train = int(len(y) * (1 - 1 / folds.get_n_splits()))
        plain, grid = self._grid(config, n_train)
        search = GridSearchCV(plain, grid, cv=folds, scoring=config.scoring, refit=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # folds a little unbalanced by grouping
            search.fit(X, y, groups=groups)
        best = search.best_params_
        if self.kind == "svm":
            self.best_params_ = {"C": best["svm__C"], "gamma": best["svm__gamma"]}
            self.model_ = make_svm(self.seed, **self.best_params_).fit(X, y, svm__groups=groups)
        else:
            self.best_params_ = {"k": best["knn__n_neighbors"]}
            self.model_ = make_knn(self.best_params_["k"]).fit(X, y)
        self.best_score_ = float(search.best_score_)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities of the chosen model."""
        return self.model_.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class predicted by the chosen model."""
        return self.model_.predict(X)


def _group_fit_params(estimator: BaseEstimator, groups: np.ndarray | None) -> dict:
    """Fit parameters that hand the patient ids to an estimator (or a pipeline's last step) that takes them."""
    if groups is None:
        return {}
    prefix, final = "", estimator
    if isinstance(estimator, Pipeline):
        name, final = estimator.steps[-1]
        prefix = f"{name}__"
    takes = "groups" in inspect.signature(final.fit).parameters
    return {f"{prefix}groups": groups} if takes else {}


def cross_validated_proba(
    X: np.ndarray,
    y: np.ndarray,
    pipeline: BaseEstimator,
    n_splits: int = 10,
    seed: int = 0,
    groups: np.ndarray | None = None,
    classes: Sequence[str] = CLASSES,
) -> np.ndarray:
    """Out-of-fold class probabilities (n, classes) from stratified (grouped if ``groups``) k-fold CV.

    The whole pipeline, scaler included, is refitted on every training fold by
    ``cross_val_predict(method="predict_proba")``, so no statistic of a held-out fold leaks into
    its own prediction; with ``groups`` the folds keep patients whole (:func:`grouped_folds`) and the
    training fold's patient ids go down to the estimator (grouped Platt calibration, grouped tuning).
    """
    X, y = _check_xy(X, y, "cross_validated_proba", classes)
    groups = _check_groups(groups, len(y), "cross_validated_proba")
    if groups is None:
        cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    else:
        cv = grouped_folds(y, groups, n_splits, seed, "cross_validated_proba", classes)
    return cross_val_predict(
        clone(pipeline),
        X,
        y,
        cv=cv,
        groups=groups,
        params=_group_fit_params(pipeline, groups),
        method="predict_proba",
    )


def fit_model(
    pipeline: BaseEstimator,
    X_train: np.ndarray,
    y_train: np.ndarray,
    groups: np.ndarray | None = None,
    classes: Sequence[str] = CLASSES,
) -> BaseEstimator:
    """A clone of ``pipeline`` fitted on the training table (patient ids passed on where it takes them)."""
    X_train, y_train = _check_xy(X_train, y_train, "fit_model", classes)
    groups = _check_groups(groups, len(y_train), "fit_model")
    return clone(pipeline).fit(X_train, y_train, **_group_fit_params(pipeline, groups))


def predict_proba(
    model: BaseEstimator, X_test: np.ndarray, n_features: int, n_classes: int = len(CLASSES)
) -> np.ndarray:
    """Test probabilities (n_test, n_classes) of a fitted model, a column per class in class order."""
    X_test = np.asarray(X_test, dtype=np.float64)
    if X_test.ndim != 2 or X_test.shape[1] != n_features:
        raise DataError(
            f"fit_predict_proba: X_test shape {X_test.shape} does not match {n_features} features"
        )
    if not np.all(np.isfinite(X_test)):
        row = int(np.flatnonzero(~np.isfinite(X_test).all(axis=1))[0])
        raise DataError(f"fit_predict_proba: non-finite feature in X_test row {row}")
    proba = model.predict_proba(X_test)
    out = np.zeros((len(X_test), int(n_classes)))
    out[:, np.asarray(model.classes_, dtype=int)] = proba
    return out


def fit_predict_proba(
    pipeline: BaseEstimator,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    groups: np.ndarray | None = None,
    classes: Sequence[str] = CLASSES,
) -> np.ndarray:
    """Fit a clone of ``pipeline`` on the training table and return test probabilities (n_test, classes)."""
    model = fit_model(pipeline, X_train, y_train, groups, classes)
    return predict_proba(model, X_test, np.asarray(X_train).shape[1], len(classes))


# --------------------------------------------------------------------------- the chapter's step


@dataclass
class BaselineResults:
    """The GLCM features and every baseline's evaluations."""

    features: np.ndarray
    runs: dict[str, BaselineRun]
    provenance: Provenance

    def test_evaluations(self) -> dict[str, Evaluation]:
        """Test-split evaluation of every baseline, by label."""
        return {r.label: r.evaluations["test"] for r in self.runs.values()}


def glcm_matrix(
    paths: list[str], levels: int, cache_dir: str | Path, progress: bool = True
) -> np.ndarray:
    """The 14 Haralick features of each ROI, through the content-keyed cache."""
    memo: dict = {}
    keys = [cache_key("glcm", levels, file_digest(p, memo)) for p in paths]

    def compute(missing: list[int]):
        yield (
            missing,
            glcm_feature_matrix([paths[i] for i in missing], levels=levels, progress=progress),
        )

    cache = FeatureCache(Path(cache_dir) / "glcm")
    return load_or_compute(keys, compute, cache, row_shape=(14,), meta={"levels": levels}).array


def run_baselines(
    results_dir: str | Path,
    cache_dir: str | Path,
    cv_folds: int = 10,
    levels: int = GLCM_LEVELS,
    seed: int = 0,
    n_boot: int = N_BOOT,
    progress: bool = True,
    task: str | Task = DEFAULT_TASK,
    tuning: TuningConfig | None = None,
) -> BaselineResults:
    """GLCM + SVM / k-NN (CV on train and the test split), majority class and the assessment rule, under a
    task (its labels and classes; ROIs it leaves out left out); save JSON.

    The SVM's C and gamma and the k-NN's k are chosen by patient-grouped inner CV (:class:`TunedClassifier`:
    nested inside the k-fold CV; on the whole training split for the test-split model, whose choice
    the run record keeps); every evaluation is patient-level and keeps its per-ROI predictions.
    """
    classes = get_task(task).classes
    tuning = TuningConfig() if tuning is None else tuning
    manifest = usable_under_task(load_manifest(results_dir), task)
    prov = read_results_provenance(results_dir).with_weights("n/a")
    F = glcm_matrix(list(manifest["crop_path"]), levels, cache_dir, progress=progress)
    y = manifest["label"].to_numpy(dtype=int)
    is_train = manifest["split"].to_numpy() == "train"
    tr, te = np.flatnonzero(is_train), np.flatnonzero(~is_train)
    train_rows, test_rows = manifest.iloc[tr], manifest.iloc[te]
    groups = train_rows["patient_id"].to_numpy()
    # the folds cross_validated_proba will draw: fewer than asked when a class has fewer patients
    folds_run = grouped_folds(y[tr], groups, cv_folds, seed, "cross-validation", classes)
    runs: dict[str, BaselineRun] = {}
    for key, name in (("svm", "GLCM + SVM (RBF)"), ("knn", "GLCM + k-NN")):
        model = TunedClassifier(key, tuning, seed)
        cv = cross_validated_proba(
            F[tr], y[tr], model, n_splits=cv_folds, seed=seed, groups=groups, classes=classes
        )
        fitted = fit_model(model, F[tr], y[tr], groups, classes)
        test = predict_proba(fitted, F[te], F.shape[1], len(classes))
        runs[key] = BaselineRun(
            key,
            name,
            {
                "cv": evaluate_rows(train_rows, cv, n_boot=n_boot, seed=seed, classes=classes),
                "test": evaluate_rows(test_rows, test, n_boot=n_boot, seed=seed, classes=classes),
            },
            prov,
            {
                "cv_folds": cv_folds,
                "cv_folds_run": folds_run.get_n_splits(),
                "cv_grouped_by": "patient",
                "glcm": glcm_settings(levels),
                "tuning": tuning.to_dict(),
                "chosen": fitted.best_params_,
                "inner_cv_score": fitted.best_score_,
            },
        )
    majority = majority_baseline(y[tr], len(te), len(classes))
    rule = assessment_rule(train_rows, test_rows, classes=classes)
    runs["majority"] = BaselineRun(
        "majority",
        "Majority class",
        {"test": evaluate_rows(test_rows, majority, n_boot=n_boot, seed=seed, classes=classes)},
        prov,
    )
    runs["assessment"] = BaselineRun(
        "assessment",
        "BI-RADS assessment only (metadata rule)",
        {"test": evaluate_rows(test_rows, rule, n_boot=n_boot, seed=seed, classes=classes)},
        prov,
    )
    for run in runs.values():
        write_json(run.to_dict(), Path(results_dir) / RUNS / f"baseline_{run.name}.json")
    return BaselineResults(features=F, runs=runs, provenance=prov)
