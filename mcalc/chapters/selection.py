"""Two measurements behind chapter 5's reading of the paper: choosing on the test set, and output change.

* :func:`selection_runs` trains the head with each optimizer, learning rate (the paper searched 1e-2
  to 1e-5) and several seeds, recording validation and test accuracy after every epoch and which
  test ROIs each epoch gets right; :func:`selection_optimism` then compares the test accuracy of the
  run and epoch chosen on the validation split with the best test accuracy over every run and epoch,
  the figure a study reports when it chooses on its test set. The difference is the optimism of
  test-set selection, one of the hypotheses for the paper's 94%; the whole choose-then-report
  procedure is bootstrapped over test patients for its interval.
* :func:`head_output_change` trains the head once per optimizer and measures how far its predicted
  probabilities on the test ROIs moved from those of the same head untrained: a per-weight step
  size (``update_sizes``) says how far one weight moves, not how far the predictions do.

The measurements take the backbone features ``X``, labels ``y`` and row indices ``idx`` with the keys
``train``, ``validation`` and ``test`` (as the study's splits give them); chapter 5's steps
(:func:`measure_selection`, :func:`measure_output_change`) take a results folder's
:class:`~mcalc.chapters.inputs.StepInputs` and keep their tables under it.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mcalc.errors import DataError
from mcalc.paper import OPTIMIZERS, SEARCH_LEARNING_RATES
from mcalc.study import N_BOOT

if TYPE_CHECKING:
    from mcalc.chapters.inputs import StepInputs
    from mcalc.learn.model import TrainConfig

__all__ = [
    "PAPER_LEARNING_RATES",
    "OPTIMISM_ROW",
    "MEASUREMENTS",
    "selection_runs",
    "selection_optimism",
    "head_output_change",
    "measure_selection",
    "measure_output_change",
]


def _check_idx(idx: dict[str, np.ndarray]) -> None:
    """Raise DataError when a split the measurements need is missing or empty."""
    for part in ("train", "validation", "test"):
        if part not in idx or len(idx[part]) == 0:
            raise DataError(f"the {part} split is missing or empty")


#: The learning rates the paper's search covered (§2.4: tuned from 1e-2 to 1e-5), searched with the optimizers.
PAPER_LEARNING_RATES = SEARCH_LEARNING_RATES


def selection_runs(
    X: np.ndarray,
    y: np.ndarray,
    idx: dict[str, np.ndarray],
    config: TrainConfig,
    optimizers: tuple[str, ...] = OPTIMIZERS,
    n_seeds: int = 3,
    learning_rates: tuple[float, ...] | None = None,
) -> pd.DataFrame:
    """Validation and test accuracy after every epoch of heads trained per optimizer, learning rate and
    seed (one row per epoch), with which test ROIs each epoch gets right (``test_correct``, '0101…').

    ``learning_rates`` defaults to the configuration's alone; :data:`PAPER_LEARNING_RATES` is the
    paper's search.
    """
    from mcalc.learn.stacked import train_heads_side_by_side

    _check_idx(idx)
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n_seeds}")
    rates = (config.learning_rate,) if learning_rates is None else tuple(learning_rates)
    tr, va, te = idx["train"], idx["validation"], idx["test"]
    configs = [
        replace(config, optimizer=opt, learning_rate=float(lr), seed=config.seed + s)
        for opt in optimizers
        for lr in rates
        for s in range(n_seeds)
    ]
    runs = train_heads_side_by_side(
        X[tr], y[tr], X[va], y[va], configs, test=(X[te], y[te])
    )  # each head's weights and accuracies are those of its own train_head run (tested)
    frames = [
        run.history[["epoch", "val_accuracy", "test_accuracy"]].assign(
            optimizer=run.config.optimizer,
            learning_rate=float(run.config.learning_rate),
            seed=run.config.seed,
            test_correct=run.history["test_correct"],
        )
        for run in runs
    ]
    return pd.concat(frames, ignore_index=True)


#: Row of :func:`selection_optimism` that holds the optimism (and its interval).
OPTIMISM_ROW = "optimism of choosing on the test set (difference of the two rows above)"


def selection_optimism(
    runs: pd.DataFrame,
    test_patients: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> pd.DataFrame:
    """Test accuracy without selection, chosen on validation, and chosen on the test set; the optimism.

    With ``test_patients`` (and ``test_labels``, for the stratification) and runs that recorded which
    test ROIs each epoch got right, the whole procedure — choose the run and epoch of best test
    accuracy, report it, minus the test accuracy of the choice made on validation — is bootstrapped
    over test patients (:func:`mcalc.evaluate.bootstrap.cluster_bootstrap`): each resample re-chooses on the
    test set, so the interval includes the luck of the choice, not only that of the accuracy.
    """
    needed = {"optimizer", "seed", "epoch", "val_accuracy", "test_accuracy"}
    if not needed <= set(runs.columns) or runs.empty:
        raise DataError(f"selection_optimism needs non-empty runs with columns {sorted(needed)}")
    keys = (
        ["optimizer", "learning_rate", "seed"] if "learning_rate" in runs else ["optimizer", "seed"]
    )
    runs = runs.sort_values([*keys, "epoch"], kind="stable").reset_index(drop=True)
    last = runs.groupby(keys).tail(1)
    j_val = int(runs["val_accuracy"].idxmax())  # ties: the first (earliest) in sorted order
    on_val = runs.loc[j_val]
    on_test = runs.loc[runs["test_accuracy"].idxmax()]
    per_run = runs.groupby(keys)
    epoch_gain = per_run.apply(
        lambda g: g["test_accuracy"].max() - g.loc[g["val_accuracy"].idxmax(), "test_accuracy"],
        include_groups=False,
    )
    ci = {}
    if test_patients is not None and "test_correct" in runs and n_boot > 0:
        ci = _optimism_ci(runs, j_val, test_patients, test_labels, n_boot, seed)

    def row(choice: str, r: pd.Series | None, value: float, interval=None) -> dict:
        """One table row."""
        lo, hi = interval if interval is not None else (np.nan, np.nan)
        return {
            "choice": choice,
            "optimizer": "—" if r is None else r["optimizer"],
            "learning rate": "—"
            if r is None or "learning_rate" not in r
            else f"{r['learning_rate']:g}",
            "seed": "—" if r is None else int(r["seed"]),
            "epoch": "—" if r is None else int(r["epoch"]),
            "test accuracy": round(float(value), 4),
            "95% CI (patient bootstrap of the procedure)": "—"
            if np.isnan(lo)
            else f"[{lo:.4f}, {hi:.4f}]",
        }

    rows = [
        row(
            f"last epoch, no selection (mean of {len(last)} runs)",
            None,
            last["test_accuracy"].mean(),
        ),
        row(
            "chosen on the validation split (best validation accuracy)",
            on_val,
            on_val["test_accuracy"],
            ci.get("on_val"),
        ),
        row(
            "chosen on the test set (best test accuracy)",
            on_test,
            on_test["test_accuracy"],
            ci.get("on_test"),
        ),
        row(
            OPTIMISM_ROW,
            None,
            on_test["test_accuracy"] - on_val["test_accuracy"],
            ci.get("optimism"),
        ),
        row(
            "of which choosing the epoch alone (mean over runs)",
            None,
            float(epoch_gain.mean()),
        ),
    ]
    return pd.DataFrame(rows).set_index("choice")


def _optimism_ci(
    runs: pd.DataFrame,
    j_val: int,
    patients: np.ndarray,
    labels: np.ndarray | None,
    n_boot: int,
    seed: int,
) -> dict[str, tuple[float, float]]:
    """Patient-bootstrap 95% intervals of the validation choice's, the test choice's accuracy and their difference."""
    from mcalc.evaluate.bootstrap import cluster_bootstrap
    from mcalc.evaluate.clusters import cluster_codes

    C = np.array([[c == "1" for c in s] for s in runs["test_correct"]], dtype=float)
    n = C.shape[1]
    codes = cluster_codes(np.asarray(patients), n, "test_patients")
    y = np.zeros(n, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)

    def stat(W: np.ndarray) -> np.ndarray:
        """(choice on validation, choice on test, optimism) of every resample of weights W."""
        acc = (W @ C.T) / W.sum(axis=1, keepdims=True)  # (R, runs x epochs)
        best = acc.max(axis=1)
        return np.stack([acc[:, j_val], best, best - acc[:, j_val]])

    lo, hi, _ = cluster_bootstrap(stat, codes, y, int(y.max()) + 1, n_boot=n_boot, seed=seed)
    return {k: (float(a), float(b)) for k, a, b in zip(("on_val", "on_test", "optimism"), lo, hi)}


def head_output_change(
    X: np.ndarray,
    y: np.ndarray,
    idx: dict[str, np.ndarray],
    config: TrainConfig,
    optimizers: tuple[str, ...] = OPTIMIZERS,
) -> pd.DataFrame:
    """Per optimizer: how far the trained head's test probabilities and weights moved from the untrained head's."""
    from mcalc.learn.model import build_head, make_deterministic, predict_proba, train_head

    _check_idx(idx)
    tr, va, te = idx["train"], idx["validation"], idx["test"]
    rows = []
    for opt in optimizers:
        cfg = replace(config, optimizer=opt)
        make_deterministic(cfg.seed)
        untrained = build_head(X.shape[1], cfg.hidden_units, cfg.n_classes, cfg.seed)
        before = predict_proba(untrained, X[te])
        w_before = untrained.get_weights()
        result = train_head(X[tr], y[tr], X[va], y[va], cfg)
        after = predict_proba(result.model, X[te])
        moved = 0.5 * np.abs(after - before).sum(axis=1)  # total-variation distance per ROI
        w_moved = max(
            float(np.abs(a - b).max()) for a, b in zip(result.model.get_weights(), w_before)
        )
        rows.append(
            {
                "optimizer": opt,
                "largest weight change": w_moved,
                "mean change of the test probabilities": float(moved.mean()),
                "largest change of the test probabilities": float(moved.max()),
                "test ROIs whose predicted class changed": float(
                    (after.argmax(axis=1) != before.argmax(axis=1)).mean()
                ),
                "training accuracy after": float(result.history["accuracy"].iloc[-1]),
            }
        )
    return pd.DataFrame(rows).set_index("optimizer")


#: Where chapter 5's measurements keep their tables, under the results folder (keyed by content).
MEASUREMENTS = "measurements"


def _measured(
    results_dir: str | Path, name: str, inputs: tuple, settings: tuple, compute
) -> pd.DataFrame:
    """A measurement's table, computed once for the same inputs (features, labels, split), settings
    and mcalc code, and read back after (a changed optimizer chapter re-runs chapter 5, not these)."""
    from mcalc.records.cache import array_digest, cache_key, cached_table, source_digest

    X, y, idx = inputs
    parts = [array_digest(X), array_digest(y), *(array_digest(idx[k]) for k in sorted(idx))]
    key = cache_key(name, *parts, *settings, source_digest())
    return cached_table(Path(results_dir) / MEASUREMENTS, f"{name}-{key[:24]}", compute)


def measure_selection(
    inputs: StepInputs,
    n_seeds: int = 3,
    learning_rates: tuple[float, ...] | None = PAPER_LEARNING_RATES,
) -> pd.DataFrame:
    """Chapter 5: the optimism of choosing epoch, optimizer, learning rate and seed on the official
    test split, with its patient-bootstrap interval (``inputs.n_boot`` resamples)."""
    config, n_boot = inputs.config, inputs.n_boot
    manifest, X, y, idx = inputs.official()
    test_patients = manifest.iloc[idx["test"]]["patient_id"].astype(str).to_numpy()
    return _measured(
        inputs.results_dir,
        "selection",
        (X, y, idx),
        (asdict(config), n_seeds, OPTIMIZERS, learning_rates, n_boot),
        lambda: selection_optimism(
            selection_runs(X, y, idx, config, OPTIMIZERS, n_seeds, learning_rates),
            test_patients,
            y[idx["test"]],
            n_boot=n_boot,
            seed=config.seed,
        ),
    )


def measure_output_change(inputs: StepInputs) -> pd.DataFrame:
    """Chapter 5: how far each optimizer moves the head's test probabilities at the paper's settings."""
    config = inputs.config
    _, X, y, idx = inputs.official()
    return _measured(
        inputs.results_dir,
        "output_change",
        (X, y, idx),
        (asdict(config), OPTIMIZERS),
        lambda: head_output_change(X, y, idx, config, OPTIMIZERS),
    )
