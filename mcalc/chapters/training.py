"""Chapter 3's step: train the paper's head with one optimizer on the official split, evaluate, save the run.

The head trains on the cached backbone features (:mod:`mcalc.learn.features`), or, with ``train_backbone``
"top" / "all", the end-to-end model is fine-tuned on streamed images (:mod:`mcalc.learn.finetune`). Either
way the validation ROIs are held out of the official training split, grouped by patient
(:func:`mcalc.learn.splits.official_split`), and the run is saved as a record in the results folder.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from mcalc.chapters.inputs import StepInputs
from mcalc.evaluate.evaluation import Evaluation, evaluate_rows
from mcalc.evaluate.runs import OptimizerRun
from mcalc.learn.model import TrainConfig, TrainResult, predict_proba, train_head
from mcalc.records.provenance import Provenance
from mcalc.records.results import RUNS, read_results_provenance, write_json
from mcalc.study import N_BOOT, get_task

#: The parts of a split every trained head is evaluated on (train: Table 3's training accuracy).
EVALUATED_PARTS = ("train", "validation", "test")

__all__ = ["EVALUATED_PARTS", "fit_head", "evaluate_head", "fine_tune_head", "run_optimizer"]


def fit_head(
    X: np.ndarray,
    y: np.ndarray,
    idx: dict[str, np.ndarray],
    config: TrainConfig,
    manifest: pd.DataFrame,
    n_boot: int = N_BOOT,
) -> tuple[TrainResult, dict[str, Evaluation]]:
    """Train the head on idx['train'] (validating on idx['validation']); evaluate on train, validation
    and test with patient-level CIs (``manifest``: the rows of ``X``, for patient and lesion ids)."""
    result = train_head(
        X[idx["train"]],
        y[idx["train"]],
        X[idx["validation"]],
        y[idx["validation"]],
        config,
        test=(X[idx["test"]], y[idx["test"]]),  # test accuracy per epoch, for chapter 5's selection
    )
    return result, evaluate_head(result.model, X, idx, config, manifest, n_boot)


def evaluate_head(
    model: object,
    X: np.ndarray,
    idx: dict[str, np.ndarray],
    config: TrainConfig,
    manifest: pd.DataFrame,
    n_boot: int = N_BOOT,
) -> dict[str, Evaluation]:
    """A trained head's evaluations on train, validation and test, with patient-level CIs."""
    return {
        part: evaluate_rows(
            manifest.iloc[idx[part]],
            predict_proba(model, X[idx[part]]),
            classes=get_task(config.task).classes,
            n_boot=n_boot,
            seed=config.seed,
        )
        for part in EVALUATED_PARTS
    }


def fine_tune_head(
    inputs: StepInputs,
    manifest: pd.DataFrame,
    y: np.ndarray,
    idx: dict[str, np.ndarray],
    train_backbone: str,
) -> tuple[TrainResult, dict[str, Evaluation]]:
    """Fine-tune the backbone ('top' or 'all') with the head on streamed images; evaluate on validation and test."""
    from mcalc.learn.finetune import fine_tune, predict_images
    from mcalc.learn.preprocessing import PreprocessConfig
    from mcalc.learn.weights import resolve_weights

    config = inputs.config
    pre = PreprocessConfig(image_size=inputs.image_size)
    paths = manifest["crop_path"].to_numpy(dtype=str)
    result = fine_tune(
        list(paths[idx["train"]]),
        y[idx["train"]],
        list(paths[idx["validation"]]),
        y[idx["validation"]],
        pre,
        resolve_weights(inputs.weights),
        config,
        train_backbone=train_backbone,
        seed=config.seed,
    )
    evals = {
        part: evaluate_rows(
            manifest.iloc[idx[part]],
            predict_images(result.model, list(paths[idx[part]]), pre),
            classes=get_task(config.task).classes,
            n_boot=inputs.n_boot,
            seed=config.seed,
        )
        for part in EVALUATED_PARTS
    }
    return result, evals


def _run_provenance(results_dir: str | Path, train_backbone: str) -> Provenance:
    """The results' provenance for one head run: a fine-tuned backbone runs the plain float32 model,
    whatever arithmetic the cached features came from."""
    prov = read_results_provenance(results_dir)
    return prov if train_backbone == "none" else replace(prov, backbone_precision="float32")


def run_optimizer(
    inputs: StepInputs,
    train_backbone: str = "none",
    save: bool = True,
    tag: str = "",
    record: str | Path | None = None,
) -> OptimizerRun:
    """Train the paper's head with one optimizer (on cached features, or fine-tuning the backbone); evaluate; save JSON (to ``record`` when given)."""
    config, results_dir = inputs.config, inputs.results_dir
    manifest, X, y, idx = inputs.official()
    if train_backbone == "none":
        result, evals = fit_head(X, y, idx, config, manifest, n_boot=inputs.n_boot)
    else:
        result, evals = fine_tune_head(inputs, manifest, y, idx, train_backbone)
        tag = f"_finetune-{train_backbone}{tag}"
    run = OptimizerRun(
        optimizer=config.optimizer,
        config={**asdict(config), "train_backbone": train_backbone},
        history=result.history,
        validation=evals["validation"],
        test=evals["test"],
        train=evals["train"],
        provenance=_run_provenance(results_dir, train_backbone),
        split_sizes={k: int(len(v)) for k, v in idx.items()},
        elapsed_s=round(result.elapsed_s, 3),
    )
    if save:
        run.path = write_json(
            run.to_dict(),
            Path(record)
            if record
            else Path(results_dir) / RUNS / f"cnn_{config.optimizer}{tag}.json",
        )
    return run
