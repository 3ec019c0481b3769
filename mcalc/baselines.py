"""Classical baselines (paper Table 4): GLCM (Haralick) texture + SVM / k-NN, majority, metadata rule.

The paper extracts "14 second-order GLCM features" and classifies them with an RBF SVM and a k-NN,
reporting 10-fold cross-validated accuracy, AUC and sensitivity. Here:

* :func:`glcm_features` — the 14 Haralick features of ``mahotas.features.haralick`` (the 14th, the
  maximal correlation coefficient, included), averaged over the four directions, on the ROI quantised
  to ``levels`` grey levels;
* :func:`make_svm`, :func:`make_knn` — scikit-learn pipelines with the feature scaling *inside* the
  pipeline, so that cross-validation refits the scaler on each training fold;
* :func:`cross_validated_proba` — out-of-fold probabilities (``cross_val_predict``);
* :func:`fit_predict_proba` — fit on the training table, predict the official test table;
* :func:`majority_baseline` and :func:`assessment_rule` — baselines that never look at the image. The
  BI-RADS ``assessment`` column alone separates BENIGN_WITHOUT_CALLBACK (assessment 2) almost
  perfectly: a property of the labels (that class marks lesions not biopsied; the assessment is the
  radiologist's reading), reported as a reference point, not as a bar for an image model.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from mcalc.errors import DataError

try:  # the shared class order lives in mcalc.curation
    from mcalc.curation import CLASSES
except ModuleNotFoundError as _exc:  # pragma: no cover - only while mcalc.curation is absent
    if _exc.name != "mcalc.curation":
        raise
    CLASSES: tuple[str, ...] = ("BENIGN", "BENIGN_WITHOUT_CALLBACK", "MALIGNANT")

#: Names of the 14 Haralick features, in the order ``mahotas.features.haralick`` returns them.
HARALICK_NAMES: tuple[str, ...] = (
    "angular_second_moment",
    "contrast",
    "correlation",
    "sum_of_squares_variance",
    "inverse_difference_moment",
    "sum_average",
    "sum_variance",
    "sum_entropy",
    "entropy",
    "difference_variance",
    "difference_entropy",
    "info_measure_correlation_1",
    "info_measure_correlation_2",
    "max_correlation_coefficient",
)


def quantise(image: np.ndarray, levels: int = 64) -> np.ndarray:
    """Min–max quantise a 2-D image to integers 0..levels-1 (uint8), rounding to the nearest level."""
    if not 2 <= int(levels) <= 256:
        raise ValueError(f"levels must be between 2 and 256, got {levels}")
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise DataError(f"expected a 2-D greyscale image, got shape {img.shape}")
    if img.size == 0 or min(img.shape) < 2:
        raise DataError(f"image of shape {img.shape} is too small for a co-occurrence matrix")
    if not np.all(np.isfinite(img)):
        raise DataError("image contains non-finite values")
    lo, hi = float(img.min()), float(img.max())
    if hi <= lo:
        raise DataError(
            f"constant image (all pixels = {lo:g}): GLCM texture features are undefined"
        )
    q = np.rint((img - lo) / (hi - lo) * (levels - 1))
    return q.astype(np.uint8)


def glcm_features(image: np.ndarray, levels: int = 64) -> np.ndarray:
    """The 14 Haralick GLCM features (mahotas), mean over the 4 directions, of the quantised ROI.

    Quantisation: the ROI's own minimum and maximum are mapped linearly to 0 and ``levels - 1`` and
    values rounded to the nearest integer (uint8), so the features are invariant to a global gain
    and offset of the intensities. Co-occurrences are counted at distance 1 in the four directions
    0°, 45°, 90°, 135° (symmetric), *including* level 0 (``ignore_zeros=False``: after min–max
    quantisation 0 is the darkest tissue, not background). A constant ROI has no texture and raises
    :class:`~mcalc.errors.DataError` (mahotas would return meaningless numbers), as does a ROI whose
    features are not finite.
    """
    import mahotas

    q = quantise(image, levels)
    feats = mahotas.features.haralick(
        q, ignore_zeros=False, compute_14th_feature=True, return_mean=True
    )
    feats = np.asarray(feats, dtype=np.float64)
    if feats.shape != (14,):
        raise DataError(f"unexpected Haralick feature shape {feats.shape}")
    if not np.all(np.isfinite(feats)):
        bad = [HARALICK_NAMES[i] for i in np.flatnonzero(~np.isfinite(feats))]
        raise DataError(f"non-finite Haralick feature(s): {', '.join(bad)}")
    return feats


def _glcm_from_path(path: str, levels: int) -> np.ndarray:
    """GLCM features of the DICOM at ``path`` (errors name the file)."""
    from mcalc.preprocessing import read_dicom_image

    image = read_dicom_image(path)
    try:
        return glcm_features(image, levels)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


def glcm_feature_matrix(
    paths: Sequence[str | Path], levels: int = 64, workers: int = 2, progress: bool = True
) -> np.ndarray:
    """(N, 14) Haralick features of the DICOM ROIs at ``paths``, in order (process pool when workers > 1)."""
    from tqdm.auto import tqdm

    paths = [str(p) for p in paths]
    if not paths:
        return np.zeros((0, len(HARALICK_NAMES)), dtype=np.float64)
    fn = partial(_glcm_from_path, levels=int(levels))
    bar = partial(tqdm, total=len(paths), desc="GLCM features", disable=not progress)
    if workers <= 1 or len(paths) == 1:
        rows = [fn(p) for p in bar(paths)]
    else:
        # "spawn" keeps the workers free of any TensorFlow state of the parent process
        with ProcessPoolExecutor(max_workers=int(workers), mp_context=get_context("spawn")) as pool:
            chunk = max(1, len(paths) // (int(workers) * 8))
            rows = list(bar(pool.map(fn, paths, chunksize=chunk)))
    return np.vstack(rows)


def make_svm(seed: int = 0) -> Pipeline:
    """StandardScaler + RBF SVC with Platt-scaled (sigmoid) probabilities.

    This is what ``SVC(probability=True)`` does (Platt scaling fitted on internal 5-fold
    cross-validated decision values, then one SVC refitted on all the data), written as
    ``CalibratedClassifierCV(SVC(), method="sigmoid", ensemble=False)``, the form scikit-learn
    recommends since it deprecated ``probability=True`` (1.9). For three classes the calibration is
    one-vs-rest (normalised) instead of libsvm's pairwise coupling.
    """
    svc = SVC(kernel="rbf", random_state=seed)
    calibrated = CalibratedClassifierCV(
        svc,
        method="sigmoid",
        ensemble=False,
        cv=StratifiedKFold(n_splits=5, shuffle=True, random_state=seed),
    )
    return Pipeline([("scale", StandardScaler()), ("svm", calibrated)])


def make_knn(k: int = 5) -> Pipeline:
    """StandardScaler + k-nearest-neighbours classifier (probabilities = neighbour class fractions)."""
    return Pipeline([("scale", StandardScaler()), ("knn", KNeighborsClassifier(n_neighbors=k))])


def _check_xy(
    X: np.ndarray, y: np.ndarray, what: str, n_classes: int
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
    counts = np.bincount(y, minlength=n_classes) if (y >= 0).all() else None
    if counts is None or len(counts) > n_classes:
        raise DataError(f"{what}: labels must be in 0..{n_classes - 1}")
    for k, c in enumerate(CLASSES[:n_classes]):
        if counts[k] == 0:
            raise DataError(f"{what}: class {c!r} (label {k}) has no example in the training data")
    return X, y


def cross_validated_proba(
    X: np.ndarray,
    y: np.ndarray,
    pipeline: Pipeline,
    n_splits: int = 10,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Out-of-fold class probabilities (n, 3) from stratified (grouped if ``groups``) k-fold CV.

    The whole pipeline, scaler included, is refitted on every training fold by
    ``cross_val_predict(method="predict_proba")``, so no statistic of a held-out fold leaks into
    its own prediction.
    """
    X, y = _check_xy(X, y, "cross_validated_proba", len(CLASSES))
    if groups is None:
        cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    else:
        groups = np.asarray(groups)
        if len(groups) != len(y):
            raise DataError(f"cross_validated_proba: {len(groups)} groups for {len(y)} rows")
        cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return cross_val_predict(clone(pipeline), X, y, cv=cv, groups=groups, method="predict_proba")


def fit_predict_proba(
    pipeline: Pipeline, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray
) -> np.ndarray:
    """Fit a clone of ``pipeline`` on the training table and return test probabilities (n_test, 3)."""
    X_train, y_train = _check_xy(X_train, y_train, "fit_predict_proba", len(CLASSES))
    X_test = np.asarray(X_test, dtype=np.float64)
    if X_test.ndim != 2 or X_test.shape[1] != X_train.shape[1]:
        raise DataError(
            f"fit_predict_proba: X_test shape {X_test.shape} does not match X_train {X_train.shape}"
        )
    if not np.all(np.isfinite(X_test)):
        row = int(np.flatnonzero(~np.isfinite(X_test).all(axis=1))[0])
        raise DataError(f"fit_predict_proba: non-finite feature in X_test row {row}")
    model = clone(pipeline).fit(X_train, y_train)
    proba = model.predict_proba(X_test)
    out = np.zeros((len(X_test), len(CLASSES)))
    out[:, np.asarray(model.classes_, dtype=int)] = proba
    return out


def majority_baseline(
    y_train: np.ndarray, n_test: int, n_classes: int = len(CLASSES)
) -> np.ndarray:
    """Every test row gets the training class frequencies (argmax = majority class, AUC = 0.5)."""
    y = np.asarray(y_train, dtype=np.int64)
    if y.size == 0:
        raise DataError("majority_baseline: y_train is empty")
    freq = np.bincount(y, minlength=n_classes)[:n_classes] / len(y)
    return np.tile(freq, (int(n_test), 1))


def _manifest_labels(manifest: pd.DataFrame, what: str) -> np.ndarray:
    """Integer labels from the ``label`` column, or from ``pathology`` names when there is no label."""
    if "label" in manifest.columns:
        y = manifest["label"]
        if y.isna().any():
            raise DataError(
                f"{what}: missing label in row {manifest.index[y.isna().to_numpy()][0]!r}"
            )
        return y.to_numpy().astype(np.int64)
    if "pathology" not in manifest.columns:
        raise DataError(f"{what}: needs a 'label' or 'pathology' column")
    index = {c: k for k, c in enumerate(CLASSES)}
    y = manifest["pathology"].map(index)
    if y.isna().any():
        row = manifest.index[y.isna().to_numpy()][0]
        raise DataError(
            f"{what}: unknown pathology {manifest.loc[row, 'pathology']!r} in row {row!r}"
        )
    return y.to_numpy().astype(np.int64)


def assessment_rule_table(manifest_train: pd.DataFrame, alpha: float = 1.0) -> pd.DataFrame:
    """Per BI-RADS assessment value: training class counts, smoothed probabilities and the rule's class.

    Probabilities are (count + alpha) / (total + alpha · n_classes) (additive smoothing); the rule's
    class is the most frequent class (ties to the first in class order). A last row ``"*"`` holds the
    overall training frequencies, used for assessment values never seen in training.
    """
    what = "assessment_rule (train)"
    if "assessment" not in manifest_train.columns:
        raise DataError(f"{what}: missing column 'assessment'")
    y = _manifest_labels(manifest_train, what)
    a = manifest_train["assessment"]
    if a.isna().any():
        raise DataError(
            f"{what}: missing assessment in row {manifest_train.index[a.isna().to_numpy()][0]!r}"
        )
    k = len(CLASSES)
    counts = pd.crosstab(a.astype("int64").to_numpy(), y, dropna=False).reindex(
        columns=range(k), fill_value=0
    )
    counts.loc["*"] = np.bincount(y, minlength=k)[:k]
    counts.columns = list(CLASSES)
    counts.index.name = "assessment"
    total = counts.sum(axis=1)
    proba = (counts + alpha).div(total + alpha * k, axis=0)
    table = counts.add_prefix("n_").join(proba.add_prefix("p_"))
    table["n"] = total
    table["rule"] = [CLASSES[int(np.argmax(row))] for row in counts.to_numpy()]
    return table


def assessment_rule(
    manifest_train: pd.DataFrame, manifest_test: pd.DataFrame, alpha: float = 1.0
) -> np.ndarray:
    """Metadata-only baseline: test probabilities = smoothed training class frequencies of its assessment.

    Argmax gives the most frequent training class of the ROI's BI-RADS assessment (on CBIS-DDSM,
    assessment 2 ⇒ BENIGN_WITHOUT_CALLBACK). Test assessment values never seen in training, or
    missing, get the overall training frequencies; a warning states how many.
    """
    if "assessment" not in manifest_test.columns:
        raise DataError("assessment_rule (test): missing column 'assessment'")
    table = assessment_rule_table(manifest_train, alpha)
    pcols = [f"p_{c}" for c in CLASSES]
    learned = {key: row for key, row in zip(table.index, table[pcols].to_numpy()) if key != "*"}
    fallback = table.loc["*", pcols].to_numpy(dtype=float)
    out = np.empty((len(manifest_test), len(CLASSES)))
    unseen = 0
    for i, value in enumerate(manifest_test["assessment"].to_numpy()):
        key = None if pd.isna(value) else int(value)
        if key in learned:
            out[i] = learned[key]
        else:
            out[i] = fallback
            unseen += 1
    if unseen:
        warnings.warn(
            f"assessment_rule: {unseen} test ROI(s) with an assessment unseen in training (or missing) "
            "get the overall training class frequencies",
            stacklevel=2,
        )
    return out
