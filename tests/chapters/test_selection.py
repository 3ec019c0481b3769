"""Choosing on the test set vs on validation, and how far a head's outputs move (mcalc.chapters.selection)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mcalc.chapters.selection import head_output_change, selection_optimism, selection_runs
from mcalc.errors import DataError
from mcalc.learn.model import TrainConfig


def features(n: int = 90, d: int = 12, seed: int = 0):
    """Class-shifted Gaussian features, labels 0..2, and train / validation / test indices."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = (rng.normal(size=(n, d)) + 1.5 * np.eye(3, d)[y]).astype(np.float32)
    order = rng.permutation(n)
    idx = {"train": order[:50], "validation": order[50:70], "test": order[70:]}
    return X, y, idx


def test_selection_optimism_on_a_hand_built_history():
    """The validation choice, the test choice and their difference are read off the right epochs."""
    runs = pd.DataFrame(
        {
            "optimizer": ["adam"] * 3 + ["rmsprop"] * 3,
            "seed": [0] * 6,
            "epoch": [1, 2, 3] * 2,
            "val_accuracy": [0.50, 0.70, 0.60, 0.55, 0.65, 0.60],
            "test_accuracy": [0.40, 0.55, 0.80, 0.50, 0.60, 0.58],
        }
    )
    table = selection_optimism(runs)
    on_val = table.iloc[1]
    assert (on_val["optimizer"], on_val["epoch"], on_val["test accuracy"]) == ("adam", 2, 0.55)
    on_test = table.iloc[2]
    assert (on_test["optimizer"], on_test["epoch"], on_test["test accuracy"]) == ("adam", 3, 0.80)
    assert table.iloc[3]["test accuracy"] == pytest.approx(0.25)
    assert table.iloc[0]["test accuracy"] == pytest.approx((0.80 + 0.58) / 2)
    # epoch alone: adam 0.80 - 0.55, rmsprop 0.60 - 0.60
    assert table.iloc[4]["test accuracy"] == pytest.approx(0.125)
    with pytest.raises(DataError):
        selection_optimism(runs.drop(columns="test_accuracy"))


def _noise_runs(n_configs: int, n_test: int, seed: int) -> pd.DataFrame:
    """Runs whose epochs get each test ROI right by a coin flip (the same chance everywhere)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_configs):
        hit = rng.uniform(size=n_test) < 0.7
        rows.append(
            {
                "optimizer": f"o{k}",
                "learning_rate": 1e-4,
                "seed": 0,
                "epoch": 1,
                "val_accuracy": rng.uniform(),
                "test_accuracy": hit.mean(),
                "test_correct": "".join("1" if h else "0" for h in hit),
            }
        )
    return pd.DataFrame(rows)


def test_optimism_interval_bootstraps_the_whole_procedure_over_patients():
    """Configurations that differ only by chance: choosing on the test set still gains (the point and
    the interval's bulk above 0), the interval contains the point, and duplicating every test ROI
    within its patient leaves its width about the same (patients, not ROIs, are resampled)."""
    runs = _noise_runs(24, 120, seed=1)
    labels = np.arange(120) % 3
    row = "optimism of choosing on the test set (difference of the two rows above)"
    ci_col = "95% CI (patient bootstrap of the procedure)"
    alone = selection_optimism(runs, np.arange(120), labels, n_boot=400)
    point = alone.loc[row, "test accuracy"]
    lo, hi = (float(v) for v in alone.loc[row, ci_col].strip("[]").split(","))
    assert point > 0 and lo <= point <= hi and hi > 0
    # duplicate every ROI into a patient of two: the same accuracies, but half as many patients
    twice = runs.assign(test_correct=runs["test_correct"].map(lambda s: "".join(c * 2 for c in s)))
    paired = selection_optimism(
        twice, np.repeat(np.arange(120), 2), np.repeat(labels, 2), n_boot=400
    )
    lo2, hi2 = (float(v) for v in paired.loc[row, ci_col].strip("[]").split(","))
    assert paired.loc[row, "test accuracy"] == pytest.approx(point)
    assert hi2 - lo2 == pytest.approx(hi - lo, rel=0.35)  # patients, not ROIs, set the width
    no_ci = selection_optimism(runs)
    assert no_ci.loc[row, ci_col] == "—"


def test_paper_learning_rates_are_the_papers_search():
    """The widened search covers the paper's tuned range, 1e-2 to 1e-5."""
    from mcalc.chapters.selection import PAPER_LEARNING_RATES

    assert max(PAPER_LEARNING_RATES) == 1e-2 and min(PAPER_LEARNING_RATES) == 1e-5
    assert 1e-4 in PAPER_LEARNING_RATES


@pytest.mark.slow
def test_selection_runs_record_test_accuracy_every_epoch():
    """One row per optimizer × seed × epoch; accuracies are shares of the right split sizes."""
    X, y, idx = features()
    runs = selection_runs(
        X,
        y,
        idx,
        TrainConfig(epochs=2, batch_size=16),
        ("adam",),
        n_seeds=2,
        learning_rates=(1e-2, 1e-4),
    )
    assert len(runs) == 1 * 2 * 2 * 2 and set(runs["seed"]) == {0, 1}
    assert set(runs["learning_rate"]) == {1e-2, 1e-4}
    hits = runs["test_correct"].map(lambda s: s.count("1") / len(s))
    np.testing.assert_allclose(
        hits, runs["test_accuracy"]
    )  # per-ROI record agrees with the accuracy
    n_test = len(idx["test"])
    assert np.allclose(runs["test_accuracy"] * n_test, np.round(runs["test_accuracy"] * n_test))
    assert runs[["val_accuracy", "test_accuracy"]].stack().between(0, 1).all()
    optimism = selection_optimism(runs).iloc[3]["test accuracy"]
    assert optimism >= 0  # the best test accuracy is never below the validation-chosen one


@pytest.mark.slow
def test_head_output_change_is_zero_without_learning_and_positive_with_it():
    """At learning rate 0 the trained head is the untrained one; Adam at 1e-2 moves the outputs."""
    X, y, idx = features()
    still = head_output_change(
        X, y, idx, TrainConfig(epochs=1, batch_size=16, learning_rate=0.0), ("adam",)
    )
    assert still.loc["adam", "mean change of the test probabilities"] == pytest.approx(
        0.0, abs=1e-6
    )
    assert still.loc["adam", "test ROIs whose predicted class changed"] == 0.0
    moved = head_output_change(
        X, y, idx, TrainConfig(epochs=3, batch_size=16, learning_rate=1e-2), ("adam",)
    )
    assert moved.loc["adam", "mean change of the test probabilities"] > 0.05
    assert moved.loc["adam", "largest weight change"] > 0


def test_measurements_are_kept_by_inputs_settings_and_code(tmp_path, monkeypatch):
    """A chapter 5 measurement runs once for the same features, labels, split, settings and mcalc
    code; any of them changed runs it again."""
    from mcalc.chapters.selection import MEASUREMENTS, _measured
    from mcalc.records import cache

    X, y = np.zeros((6, 2), np.float32), np.array([0, 1, 2, 0, 1, 2])
    idx = {"train": np.arange(4), "validation": np.array([4]), "test": np.array([5])}
    runs = []

    def measure(tag):
        return lambda: runs.append(tag) or pd.DataFrame({"v": [float(len(runs))]})

    def run(inputs, settings, tag):
        return _measured(tmp_path, "demo", inputs, settings, measure(tag))

    first = run((X, y, idx), ("cfg",), "first")
    assert run((X, y, idx), ("cfg",), "again").equals(first) and runs == ["first"]
    run((X + 1, y, idx), ("cfg",), "features")
    run((X, y, {**idx, "test": np.array([4])}), ("cfg",), "split")
    run((X, y, idx), ("other cfg",), "settings")
    monkeypatch.setattr(cache, "source_digest", lambda: "edited")
    run((X, y, idx), ("cfg",), "code")
    assert runs == ["first", "features", "split", "settings", "code"]
    assert len(list((tmp_path / MEASUREMENTS).glob("demo-*.json"))) == 5
