"""The results folder: its layout, the run records the notebooks write, and reading them back.

Layout (``results_dir``): ``manifest.csv`` (+ ``.exclusions.csv``, ``.swaps.csv``) from curation;
``provenance.json`` (data, then backbone weights); ``features.npz`` + ``features.json`` (the backbone
features of the usable ROIs); ``runs/*.json``, one record per trained or fitted model
(:class:`OptimizerRun`, :class:`BaselineRun`), gathered by :func:`gather_results`.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from mcalc.errors import DataError, ExclusionWarning
from mcalc.records.fsio import write_text
from mcalc.records.manifest import read_manifest
from mcalc.records.provenance import Provenance, read_provenance
from mcalc.study import DEFAULT_TASK, Task, apply_task, get_task

__all__ = [
    "MANIFEST",
    "PROVENANCE",
    "FEATURES",
    "FEATURES_META",
    "RUNS",
    "SENSITIVITY_DIR",
    "WRITERS",
    "damaged",
    "read_json",
    "write_json",
    "read_results_provenance",
    "load_manifest",
    "usable_under_task",
    "load_features",
    "load_study_inputs",
]

MANIFEST = "manifest.csv"
PROVENANCE = "provenance.json"
FEATURES = "features.npz"
FEATURES_META = "features.json"
RUNS = "runs"
SENSITIVITY_DIR = "runs/sensitivity"  # the sensitivity analyses' run records


#: The notebook that writes each file of the results folder: a damaged file means "re-run it".
WRITERS = {
    MANIFEST: "01_data_curation",
    PROVENANCE: "01_data_curation",
    FEATURES: "02_preprocessing",
    FEATURES_META: "02_preprocessing",
    "cnn": "03_optimizer",
    "baseline": "04_glcm_baselines",
}


def damaged(path: Path, why: object, writer: str) -> DataError:
    """The one-line error for a results file that cannot be read back: the file, why, and the fix."""
    why = " ".join(str(why).split()) or "unreadable"
    return DataError(
        f"{path} is damaged ({why[:200]}): re-run notebook {writer}, which writes it "
        f"(mcalc notebooks --only {writer} --force)"
    )


def read_json(path: Path, writer: str) -> dict:
    """A JSON object written by mcalc, or the one-line 'damaged: re-run the writer' error."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise damaged(path, exc, writer) from None
    if not isinstance(data, dict):
        raise damaged(path, "not a JSON object", writer)
    return data


def write_json(obj: dict, path: Path) -> Path:
    """Write JSON atomically (mcalc.records.fsio: whole or not at all, umask permissions)."""
    text = json.dumps(obj, indent=1, allow_nan=False)  # fails before anything is written
    return write_text(path, text)


def read_results_provenance(results_dir: str | Path) -> Provenance:
    """The provenance recorded in the results folder (data, and weights once features exist)."""
    try:
        prov = read_provenance(Path(results_dir) / PROVENANCE)
    except (ValueError, KeyError, TypeError) as exc:
        raise damaged(Path(results_dir) / PROVENANCE, exc, WRITERS[PROVENANCE]) from None
    if prov is None:
        raise DataError(f"no {PROVENANCE} in {results_dir}: run notebook 01 (data curation) first")
    return _with_features_precision(prov, Path(results_dir) / FEATURES_META)


def _with_features_precision(prov: Provenance, meta: Path) -> Provenance:
    """``prov`` naming the arithmetic the results' features were computed in, as their own record
    says (it outlives a re-run of notebook 01, which rewrites the provenance)."""
    try:  # no features yet, or an unreadable record (reported where the features are read): as written
        precision = json.loads(meta.read_text()).get("backbone_precision")
    except (OSError, ValueError, AttributeError):
        return prov
    return replace(prov, backbone_precision=precision) if isinstance(precision, str) else prov


def load_manifest(results_dir: str | Path) -> pd.DataFrame:
    """The usable (status ok) ROIs of the curated manifest, in manifest order."""
    path = Path(results_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"no manifest at {path}: run notebook 01 (data curation) first")
    try:
        manifest = read_manifest(path)
    except DataError as exc:
        raise damaged(path, exc, WRITERS[MANIFEST]) from None
    return manifest[manifest["status"] == "ok"].reset_index(drop=True)


def _task_rows(manifest: pd.DataFrame, task: str | Task = DEFAULT_TASK) -> np.ndarray:
    """Which usable ROIs a task keeps (a boolean mask); warns how many it leaves out, and why."""
    task = get_task(task)
    kept = (apply_task(manifest, task)["status"] == "ok").to_numpy()
    if not kept.all():
        warnings.warn(
            f"{int((~kept).sum())} ROI(s) left out by task {task.name}: {task.reason} "
            "(notebook 01 run under this task records them in the exclusion report)",
            ExclusionWarning,
            stacklevel=3,
        )
    return kept


def usable_under_task(manifest: pd.DataFrame, task: str | Task = DEFAULT_TASK) -> pd.DataFrame:
    """The usable ROIs under a task: labels from its classes, the ROIs it leaves out left out (with a warning)."""
    kept = _task_rows(manifest, task)
    return apply_task(manifest, task)[kept].reset_index(drop=True)


def load_features(results_dir: str | Path, manifest: pd.DataFrame) -> tuple[np.ndarray, dict]:
    """The saved backbone features, checked row by row against the manifest's ROI ids."""
    results = Path(results_dir)
    if not (results / FEATURES).is_file():
        raise DataError(f"no {FEATURES} in {results}: run notebook 02 (preprocessing) first")
    try:
        with np.load(results / FEATURES, allow_pickle=False) as z:
            X, ids = z["X"], z["roi_id"]
    except Exception as exc:  # noqa: BLE001 - a cut or edited archive fails in many ways
        raise damaged(
            results / FEATURES, f"{type(exc).__name__}: {exc}", WRITERS[FEATURES]
        ) from None
    if list(ids) != list(manifest["roi_id"]) or X.ndim != 2 or len(X) != len(ids):
        raise DataError(f"{results / FEATURES} does not match the manifest (re-run notebook 02)")
    meta = read_json(results / FEATURES_META, WRITERS[FEATURES_META])
    if not {"image_size", "weights"} <= set(meta):
        raise damaged(
            results / FEATURES_META, "image_size or weights missing", WRITERS[FEATURES_META]
        )
    return X, meta


def load_study_inputs(
    results_dir: str | Path, image_size: int, weights: str, task: str | Task = DEFAULT_TASK
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The usable manifest under a task (its labels; ROIs it leaves out reported and left out), its
    backbone features (checked against the asked image size and weights) and labels."""
    task = get_task(task)
    manifest = load_manifest(results_dir)
    X, meta = load_features(results_dir, manifest)
    kept = _task_rows(manifest, task)
    manifest, X = manifest[kept].reset_index(drop=True), X[kept]
    manifest = usable_under_task(manifest, task)
    if meta["image_size"] != image_size or meta["weights"]["requested"] != weights:
        raise DataError(
            f"the saved features were made at {meta['image_size']} px with weights "
            f"{meta['weights']['requested']!r}, not {image_size} px / {weights!r}: re-run notebook 02 with these"
        )
    usable = np.isfinite(X).all(axis=1)
    if not usable.all():
        left_out = manifest.loc[~usable, "roi_id"].tolist()
        warnings.warn(
            f"{len(left_out)} ROI(s) left out: their images could not be read at feature extraction "
            f"({', '.join(left_out[:10])}{' ...' if len(left_out) > 10 else ''})",
            ExclusionWarning,
            stacklevel=2,
        )
        manifest, X = manifest[usable].reset_index(drop=True), X[usable]
    return manifest, X, manifest["label"].to_numpy(dtype=int)
