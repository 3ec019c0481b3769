"""Tests for mcalc.learn.stacked: heads trained side by side are the heads trained one by one."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mcalc.errors import DataError
from mcalc.learn import model as M
from mcalc.learn.stacked import train_heads_side_by_side


def _data(n: int = 150, d: int = 24, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Features with a learnable three-class signal (the first column's terciles)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = np.digitize(X[:, 0], np.quantile(X[:, 0], [1 / 3, 2 / 3]))
    return X, y


@pytest.mark.slow
def test_side_by_side_heads_equal_their_own_train_head_runs():
    """Every optimizer, its own learning rate and seed, a partial last batch (100 rows, batch 16):
    the same weights bit for bit, the same validation accuracy per epoch as Keras reports it, and the
    same test accuracy and right-or-wrong test ROIs as train_head's test record."""
    X, y = _data()
    tr, va, te = np.arange(100), np.arange(100, 125), np.arange(125, 150)
    base = M.TrainConfig(batch_size=16, epochs=3)
    configs = [
        replace(base, optimizer=o, learning_rate=lr, seed=s)
        for o, lr, s in [("adam", 1e-2, 0), ("adagrad", 1e-1, 1), ("adadelta", 1.0, 2)]
    ] + [replace(base, optimizer="rmsprop", learning_rate=1e-2, seed=0)]
    runs = train_heads_side_by_side(X[tr], y[tr], X[va], y[va], configs, test=(X[te], y[te]))
    assert [r.config for r in runs] == configs
    moved = False
    for run in runs:
        alone = M.train_head(X[tr], y[tr], X[va], y[va], run.config, test=(X[te], y[te]))
        for a, b in zip(alone.model.get_weights(), run.model.get_weights()):
            np.testing.assert_array_equal(a, b)
        first = M.build_head(X.shape[1], seed=run.config.seed).get_weights()
        moved |= any(not np.array_equal(a, b) for a, b in zip(first, run.model.get_weights()))
        assert list(run.history["epoch"]) == [1, 2, 3]
        assert list(run.history["val_accuracy"]) == list(alone.history["val_accuracy"])
        assert list(run.history["test_accuracy"]) == list(alone.history["test_accuracy"])
        hits = M.predict_proba(run.model, X[te]).argmax(axis=1) == y[te]
        assert run.history["test_correct"].iloc[-1] == "".join("1" if h else "0" for h in hits)
    assert moved  # the comparison is not between untrained heads


@pytest.mark.slow
def test_without_validation_or_test_the_history_has_epochs_only():
    X, y = _data(40)
    (run,) = train_heads_side_by_side(X, y, None, None, [M.TrainConfig(batch_size=8, epochs=2)])
    assert list(run.history.columns) == ["epoch"] and len(run.history) == 2


def test_heads_side_by_side_must_share_batches_and_epochs():
    X, y = _data(40)
    a = M.TrainConfig(batch_size=8, epochs=2)
    with pytest.raises(ValueError, match="must share batch_size"):
        train_heads_side_by_side(X, y, None, None, [a, replace(a, batch_size=16)])
    with pytest.raises(ValueError, match="must share epochs"):
        train_heads_side_by_side(X, y, None, None, [a, replace(a, epochs=3)])
    with pytest.raises(ValueError, match="at least one configuration"):
        train_heads_side_by_side(X, y, None, None, [])


def test_bad_features_are_a_data_error():
    X, y = _data(40)
    config = [M.TrainConfig(batch_size=8, epochs=1)]
    with pytest.raises(DataError, match="2-D"):
        train_heads_side_by_side(X[:, :, None], y, None, None, config)
    with pytest.raises(DataError, match="equal length"):
        train_heads_side_by_side(X, y[:-1], None, None, config)


@pytest.mark.slow
def test_heads_on_their_own_rows_equal_train_head_on_those_rows():
    """Each head its own training rows of one feature matrix, of different lengths (so different
    batches per epoch, one head's epoch ending two steps before another's; one head narrower): each
    head's weights are those of train_head on its rows alone."""
    X, y = _data()
    rows = [np.arange(0, 100), np.arange(30, 150, 2), np.arange(149, 80, -1)]  # 100, 60, 69 rows
    configs = [M.TrainConfig(batch_size=16, epochs=2, seed=s) for s in (0, 1, 2)]
    configs[1] = replace(configs[1], optimizer="rmsprop", learning_rate=1e-2)
    configs[2] = replace(configs[2], hidden_units=16)  # heads of their own widths
    runs = train_heads_side_by_side(X, y, None, None, configs, train_rows=rows)
    for run, r in zip(runs, rows):
        alone = M.train_head(X[r], y[r], None, None, run.config)
        for a, b in zip(alone.model.get_weights(), run.model.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_row_sets_must_match_the_heads_and_lie_within_the_features():
    X, y = _data(40)
    config = [M.TrainConfig(batch_size=8, epochs=1)] * 2
    with pytest.raises(ValueError, match="1 row sets for 2 configurations"):
        train_heads_side_by_side(X, y, None, None, config, train_rows=[np.arange(5)])
    with pytest.raises(DataError, match="within the 40 rows"):
        train_heads_side_by_side(X, y, None, None, config, train_rows=[np.arange(5), [39, 40]])
    with pytest.raises(DataError, match="within the 40 rows"):
        train_heads_side_by_side(X, y, None, None, config, train_rows=[np.arange(5), []])
