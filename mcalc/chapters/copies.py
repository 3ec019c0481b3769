"""Chapter 8's step: one phantom written as the DICOM release and as the Kaggle JPEG re-release, each run
through the study's own steps under the same seeds, ready for :func:`mcalc.evaluate.compare.compare_runs`.

Each copy gets its own data root and results folder and goes through what chapters 1–4 do, by the
same functions: curation (:func:`mcalc.chapters.prepare.prepare_data`), the backbone features
(:func:`mcalc.learn.features.compute_features`), the head under each of the paper's optimizers
(:func:`mcalc.chapters.training.run_optimizer`) and the GLCM baselines (:func:`mcalc.evaluate.baselines.run_baselines`).
The phantom is rendered once per layout from the same seed, so both copies hold the same patients,
ROIs and pixels before the Kaggle copy's 8-bit JPEG encoding: on the phantom the comparison measures
the JPEG round trip of the pipeline, not the real copies.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from mcalc.chapters.inputs import StepInputs
from mcalc.data.kaggle import LAYOUT
from mcalc.learn.backbone import DEFAULT_VARIANT
from mcalc.learn.model import TrainConfig
from mcalc.paper import IMAGE_SIZE, OPTIMIZERS, VALIDATION_SIZE
from mcalc.records.provenance import Provenance
from mcalc.study import DEFAULT_TASK, N_BOOT

__all__ = [
    "COPIES",
    "COPIES_FOLDER",
    "BOOK_SCALE",
    "CopiesConfig",
    "run_copy",
    "run_copies",
    "pair_label",
]

#: The two copies: name (their folders, and A then B in the comparison) → the phantom's layout.
COPIES = {"dicom": "uid", "kaggle-jpeg": LAYOUT}
#: The copies' folder under the results folder (their run records) and under the cache (their images).
COPIES_FOLDER = "copies"
#: The phantom scale of the copies in the book (a quarter of the real sizes: two feature extractions of
#: about 470 ROIs); a profile with a smaller phantom uses its own.
BOOK_SCALE = 0.25


@dataclass(frozen=True)
class CopiesConfig:
    """Where the two copies go and the study settings both are run under."""

    results_dir: str | Path
    cache_dir: str | Path
    scale: float = BOOK_SCALE
    seed: int = 0
    task: str = DEFAULT_TASK
    image_size: int = IMAGE_SIZE
    weights: str = "auto"
    backbone_variant: str = DEFAULT_VARIANT
    train: TrainConfig = field(default_factory=TrainConfig)
    validation_size: int | float = round(VALIDATION_SIZE * BOOK_SCALE)
    n_boot: int = N_BOOT
    cv_folds: int = 10

    def results(self, name: str) -> Path:
        """The results folder of one copy."""
        return Path(self.results_dir) / COPIES_FOLDER / name

    def data_root(self, name: str) -> Path:
        """The data root (the phantom's images) of one copy."""
        return Path(self.cache_dir) / COPIES_FOLDER / name

    def step_inputs(self, name: str) -> StepInputs:
        """The chapter steps' inputs of one copy: its results folder, the head under the copies' seed and task."""
        return StepInputs(
            self.results(name),
            self.image_size,
            self.weights,
            replace(self.train, seed=self.seed, task=self.task),
            validation_size=self.validation_size,
            n_boot=self.n_boot,
        )


def run_copy(name: str, config: CopiesConfig) -> dict[str, object]:
    """Curate, extract and train one copy as chapters 1–4 do; what it used (its exclusions counted)."""
    from mcalc.chapters.prepare import prepare_data
    from mcalc.chapters.training import run_optimizer
    from mcalc.data.case_tables import CurationWarning
    from mcalc.errors import ExclusionWarning
    from mcalc.evaluate.baselines import run_baselines
    from mcalc.evaluate.compare import copy_label
    from mcalc.learn.features import compute_features
    from mcalc.learn.weights import resolve_weights
    from mcalc.records.results import load_manifest, read_results_provenance

    results = config.results(name)
    with warnings.catch_warnings():  # exclusions are counted below and in each copy's records
        warnings.simplefilter("ignore", CurationWarning)
        warnings.simplefilter("ignore", ExclusionWarning)
        curation = prepare_data(
            "phantom",
            config.data_root(name),
            phantom_scale=config.scale,
            seed=config.seed,
            results_dir=results,
            progress=False,
            task=config.task,
            layout=COPIES[name],
        )
        manifest = load_manifest(results)
        weights_info = resolve_weights(config.weights)
        provenance = read_results_provenance(results).with_weights(
            weights_info.used, weights_info.note
        )
        X = compute_features(
            manifest,
            config.image_size,
            weights_info,
            config.cache_dir,
            results,
            provenance,
            progress=False,
            variant=config.backbone_variant,
        )
        inputs = config.step_inputs(name)
        for optimizer in OPTIMIZERS:
            run_optimizer(inputs.with_config(optimizer=optimizer))
        run_baselines(
            results,
            config.cache_dir,
            cv_folds=config.cv_folds,
            seed=config.seed,
            n_boot=config.n_boot,
            progress=False,
            task=config.task,
        )
    return {
        "copy": copy_label(provenance),
        "results folder": str(results),
        "ROI rows read": len(curation.manifest),
        "usable": len(curation.usable()),
        "excluded at curation": len(curation.exclusions),
        "left out at feature extraction": int((~np.isfinite(X).all(axis=1)).sum()),
    }


def run_copies(config: CopiesConfig) -> pd.DataFrame:
    """Both copies run (the DICOM one first); one row per copy saying what it used."""
    return pd.DataFrame([run_copy(name, config) for name in COPIES]).set_index("copy")


def pair_label(a: Provenance, b: Provenance) -> Provenance:
    """One provenance for a table of both copies: A's, its detail naming both layouts."""
    both = "written twice: as the DICOM release and as the Kaggle JPEG re-release"
    detail = f"{a.data_detail}; {both}" if a.data_detail else both
    if b.weights != a.weights:
        detail += f"; weights differ: {a.weights} vs {b.weights}"
    return replace(a, data_detail=detail)
