"""Train / validation / test splits of the ROI manifest (paper §2.4) and a leakage report.

The paper trains on 1547 ROIs, validates on 200 and tests on 326, the official CBIS-DDSM test total;
its "80 % / 20 % stratified" wording paraphrases how the data set's authors describe their official,
patient-disjoint split (its training counts match that split's, its test counts per class do not, so
whether the paper used it is not settled). This module offers:

* :func:`validation_split` — a validation set of about ``n_val`` ROIs carved out of the training
  table, grouped by patient (no patient on both sides) and stratified by label as well as the
  grouping allows;
* :func:`patient_grouped_split` — an 80/20 (``test_fraction``) patient-grouped, label-stratified split;
* :func:`roi_level_split` — an 80/20 ROI-level random stratified split that ignores patients, as
  many studies do: it lets the CC and MLO views of one (presumed) lesion, and other ROIs of the same
  mammogram, fall on both sides;
* :func:`leakage_report` — counts how many held-out ROIs have such relatives in the training side;
* :func:`lesion_matching_report` — how far matching the two views of a lesion by ``abnormality_id``
  can be trusted: the ids are numbered per image, so the match is presumed, and the report counts
  the breasts whose CC and MLO views hold different numbers of ROIs and the id-matched pairs whose
  pathologies differ.

All split functions return ``(train_positions, held_out_positions)``: sorted integer *positions*
into the manifest (use ``manifest.iloc[...]``), like scikit-learn splitters. A class with no ROI on
a side where it must be present raises :class:`mcalc.errors.DataError` naming the class and side.

Grouped splits are built with ``sklearn.model_selection.StratifiedGroupKFold``: for a held-out size
``m`` out of ``n`` ROIs, the folds of ``round(n / m)``-fold (and neighbouring fold counts) shuffled
splitters with a few derived seeds are candidates, and the fold minimising
``|size - m| / m + Σ_class |p_fold - p_all|`` is held out. The choice depends only on ``seed``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from mcalc.errors import DataError
from mcalc.paper import VALIDATION_SIZE
from mcalc.study import CLASSES

#: Number of shuffled StratifiedGroupKFold seeds tried per fold count by the grouped splits.
SEARCH_SEEDS = 8


class FastStratifiedGroupKFold(StratifiedGroupKFold):
    """scikit-learn's ``StratifiedGroupKFold`` with the same folds, its search for each patient's
    fold done for all folds at once (the library's per-fold Python loop was most of a head
    training's time: 24 splitters run per validation hold-out).

    Every candidate's per-class spread is computed with the same arithmetic in the same order as
    the library's, so the folds are identical (tests/test_splits.py compares them with the library's).
    """

    def _find_best_fold(
        self, y_counts_per_fold: np.ndarray, y_cnt: np.ndarray, group_y_counts: np.ndarray
    ) -> int:
        """The fold whose class spread grows least by taking this group (ties: the smaller fold)."""
        k = len(y_counts_per_fold)
        # candidate i: every fold's counts, fold i's with the group added (x + 0.0 elsewhere: exact)
        candidates = y_counts_per_fold[None, :, :] + np.eye(k)[:, :, None] * group_y_counts
        fractions = candidates / y_cnt.reshape(1, 1, -1)
        fold_eval = np.std(fractions, axis=1).mean(axis=1)
        samples = y_counts_per_fold.sum(axis=1)
        best, min_eval, min_samples = None, np.inf, np.inf
        for i in range(k):  # the library's sequential choice, tolerance included
            e = float(fold_eval[i])
            close = abs(e - min_eval) <= 1e-8 + 1e-5 * abs(min_eval)  # np.isclose's defaults
            if e < min_eval or (close and samples[i] < min_samples):
                best, min_eval, min_samples = i, e, samples[i]
        return best


def _require_columns(manifest: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise DataError naming the first missing column."""
    missing = [c for c in columns if c not in manifest.columns]
    if missing:
        raise DataError(f"{what}: missing column(s) {', '.join(missing)}")


def _labels(manifest: pd.DataFrame, what: str, classes: Sequence[str] = CLASSES) -> np.ndarray:
    """Integer labels of the manifest (column ``label``), checked to be class indices."""
    _require_columns(manifest, ["label"], what)
    lab = manifest["label"]
    if lab.isna().any():
        row = manifest.index[lab.isna().to_numpy()][0]
        raise DataError(f"{what}: missing label in row {row!r}")
    y = lab.to_numpy()
    if not np.issubdtype(y.dtype, np.integer):
        try:
            yi = y.astype(np.int64)
        except (TypeError, ValueError):
            raise DataError(f"{what}: column 'label' is not integer (dtype {lab.dtype})") from None
        if not np.array_equal(yi, y.astype(float)):
            raise DataError(f"{what}: column 'label' is not integer")
        y = yi
    bad = (y < 0) | (y >= len(classes))
    if bad.any():
        row = manifest.index[bad][0]
        raise DataError(f"{what}: label {y[bad][0]} in row {row!r} is not in 0..{len(classes) - 1}")
    return y.astype(np.int64)


def _groups(manifest: pd.DataFrame, what: str) -> np.ndarray:
    """Patient ids of the manifest, checked to be present."""
    _require_columns(manifest, ["patient_id"], what)
    g = manifest["patient_id"]
    if g.isna().any():
        row = manifest.index[g.isna().to_numpy()][0]
        raise DataError(f"{what}: missing patient_id in row {row!r}")
    return g.astype(str).to_numpy()


def check_classes_present(y: np.ndarray, split: str, classes: Sequence[str] = CLASSES) -> None:
    """Raise DataError naming the class and split when a class has no ROI in ``y``."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(classes))
    for k, c in enumerate(classes):
        if counts[k] == 0:
            hint = (
                " (a benign-vs-malignant data set runs with --task binary-biopsied or --task binary-merged)"
                if len(classes) == 3 and c == CLASSES[1]
                else ""
            )
            raise DataError(f"class {c!r} (label {k}) has no ROI in the {split} split{hint}")


def _n_held_out(n: int, size: int | float, what: str) -> int:
    """Held-out count from an int count or a float fraction of ``n``."""
    if isinstance(size, (bool, np.bool_)):
        raise ValueError(f"{what}: expected an int count or a float fraction, got {size!r}")
    if isinstance(size, (float, np.floating)):
        if not 0.0 < size < 1.0:
            raise ValueError(f"{what}: a fraction must be in (0, 1), got {size}")
        m = int(round(size * n))
    else:
        m = int(size)
    if not 1 <= m < n:
        raise ValueError(f"{what}: held-out size {m} must be between 1 and {n - 1} (n = {n})")
    return m


def _grouped_holdout(
    y: np.ndarray, groups: np.ndarray, m: int, seed: int, n_classes: int
) -> np.ndarray:
    """Boolean mask of a patient-grouped, label-stratified held-out set of about ``m`` ROIs."""
    n = len(y)
    n_groups = len(np.unique(groups))
    p_all = np.bincount(y, minlength=n_classes) / n
    base = max(2, int(round(n / m)))
    best: tuple[float, int, np.ndarray] | None = None
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 2**31 - 1, size=SEARCH_SEEDS)
    x_dummy = np.zeros((n, 1))
    for k in sorted({max(2, base - 1), base, base + 1}):
        if k > n_groups:
            continue
        for s in seeds:
            cv = FastStratifiedGroupKFold(n_splits=k, shuffle=True, random_state=int(s))
            with warnings.catch_warnings():
                # rare classes are checked (and reported by name) after the split
                warnings.filterwarnings(
                    "ignore", message="The least populated class", category=UserWarning
                )
                folds = [hold for _, hold in cv.split(x_dummy, y, groups)]
            for hold in folds:
                p_fold = np.bincount(y[hold], minlength=n_classes) / len(hold)
                score = abs(len(hold) - m) / m + float(np.abs(p_fold - p_all).sum())
                key = (score, len(hold))
                if best is None or key < best[:2]:
                    best = (score, len(hold), hold)
    if best is None:
        raise DataError(f"cannot split {n_groups} patient(s) into a held-out set of {m} ROIs")
    mask = np.zeros(n, dtype=bool)
    mask[best[2]] = True
    return mask


def _finish(
    y: np.ndarray, held: np.ndarray, names: tuple[str, str], classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of both sides, after checking every class is on both."""
    check_classes_present(y[~held], names[0], classes)
    check_classes_present(y[held], names[1], classes)
    return np.flatnonzero(~held), np.flatnonzero(held)


def validation_split(
    manifest_train: pd.DataFrame,
    n_val: int | float = VALIDATION_SIZE,
    seed: int = 0,
    classes: Sequence[str] = CLASSES,
) -> tuple[np.ndarray, np.ndarray]:
    """Patient-grouped, label-stratified (train, validation) positions with about ``n_val`` validation ROIs."""
    what = "validation_split"
    y = _labels(manifest_train, what, classes)
    groups = _groups(manifest_train, what)
    check_classes_present(y, "input (training)", classes)
    m = _n_held_out(len(y), n_val, what)
    held = _grouped_holdout(y, groups, m, seed, len(classes))
    return _finish(y, held, ("training", "validation"), classes)


def patient_grouped_split(
    manifest: pd.DataFrame,
    test_fraction: float = 0.2,
    seed: int = 0,
    classes: Sequence[str] = CLASSES,
) -> tuple[np.ndarray, np.ndarray]:
    """Patient-grouped, label-stratified (train, test) positions with about ``test_fraction`` of the ROIs held out."""
    what = "patient_grouped_split"
    y = _labels(manifest, what, classes)
    groups = _groups(manifest, what)
    check_classes_present(y, "input", classes)
    m = _n_held_out(len(y), float(test_fraction), what)
    held = _grouped_holdout(y, groups, m, seed, len(classes))
    return _finish(y, held, ("training", "test"), classes)


def roi_level_split(
    manifest: pd.DataFrame,
    test_fraction: float = 0.2,
    seed: int = 0,
    classes: Sequence[str] = CLASSES,
) -> tuple[np.ndarray, np.ndarray]:
    """Random label-stratified (train, test) positions at ROI level, ignoring patients (leaky by design)."""
    what = "roi_level_split"
    y = _labels(manifest, what, classes)
    check_classes_present(y, "input", classes)
    m = _n_held_out(len(y), float(test_fraction), what)
    try:
        _, hold = train_test_split(np.arange(len(y)), test_size=m, stratify=y, random_state=seed)
    except ValueError as exc:  # a class with a single ROI cannot be stratified
        raise DataError(f"{what}: cannot stratify by label ({exc})") from None
    held = np.zeros(len(y), dtype=bool)
    held[hold] = True
    return _finish(y, held, ("training", "test"), classes)


def leakage_report(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, int | float]:
    """How many test ROIs have a relative in ``train``: same lesion other view, same patient, same image.

    Counts (each over the test ROIs, with the matching fraction ``frac_*``):

    * ``same_roi`` — the same ``roi_id`` is in train (a duplicate);
    * ``same_lesion_other_view`` — train holds the presumed same lesion in the other view: same
      patient, side and ``abnormality_id``, different view (CC ↔ MLO); the ids are numbered per
      image, so this match is presumed (:func:`lesion_matching_report` counts where it fails);
    * ``same_breast_other_view`` — train holds any ROI of the same breast (patient, side) in another view;
    * ``same_image`` — train holds a ROI of the same mammogram (``image_id``);
    * ``same_patient`` — train holds any ROI of the same patient.

    Also ``n_train``, ``n_test``, ``test_patients`` and ``shared_patients`` (patients on both sides).
    """
    cols = ["roi_id", "patient_id", "side", "view", "image_id", "abnormality_id"]
    _require_columns(train, cols, "leakage_report (train)")
    _require_columns(test, cols, "leakage_report (test)")
    tr = train[cols].reset_index(drop=True).astype({"abnormality_id": "int64"})
    te = test[cols].reset_index(drop=True).astype({"abnormality_id": "int64"})
    te = te.assign(_row=np.arange(len(te)))

    def n_matching(keys: list[str], other_view: bool) -> int:
        """Number of test rows with a train row equal on ``keys`` (and of another view if asked)."""
        right = tr[keys + (["view"] if other_view and "view" not in keys else [])].drop_duplicates()
        merged = te[keys + ["_row"] + (["view"] if other_view else [])].merge(
            right, on=keys, how="inner", suffixes=("", "_train")
        )
        if other_view:
            merged = merged[merged["view"] != merged["view_train"]]
        return int(merged["_row"].nunique())

    n_test = len(te)
    counts = {
        "same_roi": int(te["roi_id"].isin(set(tr["roi_id"])).sum()),
        "same_lesion_other_view": n_matching(
            ["patient_id", "side", "abnormality_id"], other_view=True
        ),
        "same_breast_other_view": n_matching(["patient_id", "side"], other_view=True),
        "same_image": n_matching(["image_id"], other_view=False),
        "same_patient": n_matching(["patient_id"], other_view=False),
    }
    report: dict[str, int | float] = {"n_train": int(len(tr)), "n_test": int(n_test)}
    report.update(counts)
    for key, value in counts.items():
        report[f"frac_{key}"] = float(value / n_test) if n_test else float("nan")
    test_patients = set(te["patient_id"])
    report["test_patients"] = len(test_patients)
    report["shared_patients"] = len(test_patients & set(tr["patient_id"]))
    return report


def lesion_matching_report(manifest: pd.DataFrame) -> dict[str, int]:
    """How far CC/MLO lesion matching by ``abnormality_id`` holds: breasts and id-matched pairs that disagree.

    CBIS-DDSM numbers abnormalities per image, so "same patient, side and ``abnormality_id`` in the
    other view" is only a presumed match. Counts (over the rows given, e.g. one table or the pooled data):

    * ``breasts_two_views`` — breasts (patient, side) with ROIs in both CC and MLO;
    * ``breasts_count_mismatch`` — of those, breasts whose CC and MLO views hold different numbers of ROIs;
    * ``id_pairs`` — (patient, side, ``abnormality_id``) present in both views;
    * ``id_pairs_pathology_mismatch`` — of those, pairs whose CC and MLO pathologies differ;
    * ``id_pairs_unmatched`` — ids of a two-view breast present in one view only.
    """
    cols = ["patient_id", "side", "view", "abnormality_id", "pathology"]
    _require_columns(manifest, cols, "lesion_matching_report")
    df = manifest[cols].dropna(subset=["patient_id", "side", "view", "abnormality_id"])
    df = df[df["view"].isin(["CC", "MLO"])].astype({"abnormality_id": "int64"})
    per_view = df.groupby(["patient_id", "side", "view"]).size().unstack("view", fill_value=0)
    per_view = per_view.reindex(columns=["CC", "MLO"], fill_value=0)
    two_views = per_view[(per_view["CC"] > 0) & (per_view["MLO"] > 0)]
    key = ["patient_id", "side", "abnormality_id"]
    first = df.groupby(key + ["view"])["pathology"].first().unstack("view")
    first = first.reindex(columns=["CC", "MLO"])
    in_two = first.reset_index().set_index(["patient_id", "side"]).index.isin(two_views.index)
    first = first[in_two]
    paired = first.dropna(subset=["CC", "MLO"])
    return {
        "breasts_two_views": int(len(two_views)),
        "breasts_count_mismatch": int((two_views["CC"] != two_views["MLO"]).sum()),
        "id_pairs": int(len(paired)),
        "id_pairs_pathology_mismatch": int((paired["CC"] != paired["MLO"]).sum()),
        "id_pairs_unmatched": int(first[["CC", "MLO"]].isna().any(axis=1).sum()),
    }


# ---------------------------------------------------------------- the study's splits, as row indices

#: The split schemes compared by the leakage audit (chapter 6), with their labels in its tables.
SPLIT_SCHEMES = {
    "official": "(a) official split, patient-disjoint (reference: its own test set)",
    "roi_level": "(b) random ROI-level 80/20 of the pooled data",
    "patient_grouped": "(c) patient-grouped 80/20 of the same pooled data",
}


def held_out_size(size: int | float) -> int | float:
    """A held-out size as the splits take it: a count (>= 1) as an int, a fraction (< 1) as a float."""
    return int(size) if size >= 1 else float(size)


def official_split(
    manifest: pd.DataFrame,
    validation_size: int | float,
    seed: int,
    classes: Sequence[str] = CLASSES,
) -> dict[str, np.ndarray]:
    """Row indices of the manifest for train / validation (patient-grouped, from the official train split) / test."""
    train_pos = np.flatnonzero(manifest["split"].to_numpy() == "train")
    test_pos = np.flatnonzero(manifest["split"].to_numpy() == "test")
    if len(train_pos) == 0 or len(test_pos) == 0:
        raise DataError("the manifest needs usable ROIs in both the train and the test split")
    tr, va = validation_split(
        manifest.iloc[train_pos].reset_index(drop=True),
        n_val=held_out_size(validation_size),
        seed=seed,
        classes=classes,
    )
    return {
        "train": train_pos[np.asarray(tr)],
        "validation": train_pos[np.asarray(va)],
        "test": test_pos,
    }


def scheme_indices(
    manifest: pd.DataFrame,
    scheme: str,
    validation_size: int | float,
    seed: int,
    classes: Sequence[str] = CLASSES,
) -> dict[str, np.ndarray]:
    """Train / validation / test row indices of the usable manifest under one of :data:`SPLIT_SCHEMES`."""
    if scheme == "official":
        return official_split(manifest, validation_size, seed, classes)
    splitter = {"roi_level": roi_level_split, "patient_grouped": patient_grouped_split}[scheme]
    train, test = splitter(manifest, test_fraction=0.2, seed=seed, classes=classes)
    train, test = np.asarray(train), np.asarray(test)
    n_val = held_out_size(validation_size)
    if scheme == "roi_level":  # the leaky scheme holds its validation ROIs out at random too
        tr, va = roi_level_split(
            manifest.iloc[train].reset_index(drop=True),
            test_fraction=n_val / len(train) if n_val >= 1 else n_val,
            seed=seed,
            classes=classes,
        )
    else:
        tr, va = validation_split(
            manifest.iloc[train].reset_index(drop=True), n_val=n_val, seed=seed, classes=classes
        )
    return {"train": train[np.asarray(tr)], "validation": train[np.asarray(va)], "test": test}
