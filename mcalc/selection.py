"""Two measurements behind chapter 5's reading of the paper: choosing on the test set, and output change.

* :func:`selection_runs` trains the head with each optimizer and several seeds, recording validation
  and test accuracy after every epoch; :func:`selection_optimism` then compares the test accuracy of
  the run and epoch chosen on the validation split with the best test accuracy over every run and
  epoch, the figure a study reports when it chooses on its test set. The difference is the optimism
  of test-set selection, one of the hypotheses for the paper's 94%.
* :func:`head_output_change` trains the head once per optimizer and measures how far its predicted
  probabilities on the test ROIs moved from those of the same head untrained: a per-weight step
  size (``update_sizes``) says how far one weight moves, not how far the predictions do.

All functions take the backbone features ``X``, labels ``y`` and row indices ``idx`` with the keys
``train``, ``validation`` and ``test`` (as the study's splits give them).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mcalc.curation import DEFAULT_TASK, get_task
from mcalc.errors import DataError
from mcalc.paper import OPTIMIZERS
from mcalc.results import load_study_inputs
from mcalc.splits import official_split

if TYPE_CHECKING:
    from mcalc.model import TrainConfig


def _check_idx(idx: dict[str, np.ndarray]) -> None:
    """Raise DataError when a split the measurements need is missing or empty."""
    for part in ("train", "validation", "test"):
        if part not in idx or len(idx[part]) == 0:
            raise DataError(f"the {part} split is missing or empty")


def selection_runs(
    X: np.ndarray,
    y: np.ndarray,
    idx: dict[str, np.ndarray],
    config: TrainConfig,
    optimizers: tuple[str, ...] = OPTIMIZERS,
    n_seeds: int = 3,
) -> pd.DataFrame:
    """Validation and test accuracy after every epoch of heads trained per optimizer and seed (one row per epoch)."""
    from mcalc.model import train_head

    _check_idx(idx)
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n_seeds}")
    tr, va, te = idx["train"], idx["validation"], idx["test"]
    frames = []
    for opt in optimizers:
        for s in range(n_seeds):
            cfg = replace(config, optimizer=opt, seed=config.seed + s)
            result = train_head(X[tr], y[tr], X[va], y[va], cfg, test=(X[te], y[te]))
            history = result.history[["epoch", "val_accuracy", "test_accuracy"]]
            frames.append(history.assign(optimizer=opt, seed=cfg.seed))
    return pd.concat(frames, ignore_index=True)


def selection_optimism(runs: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy without selection, chosen on validation, and chosen on the test set; and the optimism."""
    needed = {"optimizer", "seed", "epoch", "val_accuracy", "test_accuracy"}
    if not needed <= set(runs.columns) or runs.empty:
        raise DataError(f"selection_optimism needs non-empty runs with columns {sorted(needed)}")
    runs = runs.sort_values(["optimizer", "seed", "epoch"], kind="stable").reset_index(drop=True)
    last = runs.groupby(["optimizer", "seed"]).tail(1)
    on_val = runs.loc[runs["val_accuracy"].idxmax()]  # ties: the first (earliest) in sorted order
    on_test = runs.loc[runs["test_accuracy"].idxmax()]
    per_run = runs.groupby(["optimizer", "seed"])
    epoch_gain = per_run.apply(
        lambda g: g["test_accuracy"].max() - g.loc[g["val_accuracy"].idxmax(), "test_accuracy"],
        include_groups=False,
    )

    def row(choice: str, r: pd.Series | None, value: float) -> dict:
        """One table row."""
        return {
            "choice": choice,
            "optimizer": "—" if r is None else r["optimizer"],
            "seed": "—" if r is None else int(r["seed"]),
            "epoch": "—" if r is None else int(r["epoch"]),
            "test accuracy": round(float(value), 4),
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
        ),
        row("chosen on the test set (best test accuracy)", on_test, on_test["test_accuracy"]),
        row(
            "optimism of choosing on the test set (difference of the two rows above)",
            None,
            on_test["test_accuracy"] - on_val["test_accuracy"],
        ),
        row(
            "of which choosing the epoch alone (mean over runs)",
            None,
            float(epoch_gain.mean()),
        ),
    ]
    return pd.DataFrame(rows).set_index("choice")


def head_output_change(
    X: np.ndarray,
    y: np.ndarray,
    idx: dict[str, np.ndarray],
    config: TrainConfig,
    optimizers: tuple[str, ...] = OPTIMIZERS,
) -> pd.DataFrame:
    """Per optimizer: how far the trained head's test probabilities and weights moved from the untrained head's."""
    from mcalc.model import build_head, make_deterministic, predict_proba, train_head

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


def _official_inputs(
    results_dir: str | Path,
    image_size: int,
    weights: str,
    validation_size: int | float,
    seed: int,
    task: str = DEFAULT_TASK,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Features, labels (under the task) and the official split (validation grouped by patient) of a results folder."""
    manifest, X, y = load_study_inputs(results_dir, image_size, weights, task)
    return X, y, official_split(manifest, validation_size, seed, get_task(task).classes)


#: Where chapter 5's measurements keep their tables, under the results folder (keyed by content).
MEASUREMENTS = "measurements"


def _measured(
    results_dir: str | Path, name: str, inputs: tuple, settings: tuple, compute
) -> pd.DataFrame:
    """A measurement's table, computed once for the same inputs (features, labels, split), settings
    and mcalc code, and read back after (a changed optimizer chapter re-runs chapter 5, not these)."""
    from mcalc.cache import array_digest, cache_key, cached_table
    from mcalc.rebuild import source_digest

    X, y, idx = inputs
    parts = [array_digest(X), array_digest(y), *(array_digest(idx[k]) for k in sorted(idx))]
    key = cache_key(name, *parts, *settings, source_digest())
    return cached_table(Path(results_dir) / MEASUREMENTS, f"{name}-{key[:24]}", compute)


def measure_selection(
    results_dir: str | Path,
    image_size: int,
    weights: str,
    config: TrainConfig,
    validation_size: int | float = 200,
    n_seeds: int = 3,
) -> pd.DataFrame:
    """Chapter 5: the optimism of choosing epoch, optimizer and seed on the official test split."""
    X, y, idx = _official_inputs(
        results_dir, image_size, weights, validation_size, config.seed, config.task
    )
    return _measured(
        results_dir,
        "selection",
        (X, y, idx),
        (asdict(config), n_seeds, OPTIMIZERS),
        lambda: selection_optimism(selection_runs(X, y, idx, config, OPTIMIZERS, n_seeds)),
    )


def measure_output_change(
    results_dir: str | Path,
    image_size: int,
    weights: str,
    config: TrainConfig,
    validation_size: int | float = 200,
) -> pd.DataFrame:
    """Chapter 5: how far each optimizer moves the head's test probabilities at the paper's settings."""
    X, y, idx = _official_inputs(
        results_dir, image_size, weights, validation_size, config.seed, config.task
    )
    return _measured(
        results_dir,
        "output_change",
        (X, y, idx),
        (asdict(config), OPTIMIZERS),
        lambda: head_output_change(X, y, idx, config, OPTIMIZERS),
    )
