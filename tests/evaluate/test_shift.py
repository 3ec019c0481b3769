"""Tests for mcalc.evaluate.shift: how far each ROI's backbone features moved between two results folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mcalc.errors import DataError
from mcalc.evaluate import shift as S


def write_features(folder: Path, X: np.ndarray, ids: list[str]) -> None:
    """A features.npz as notebook 02 writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "features.npz", X=X, roi_id=np.asarray(ids))


def test_feature_shift_measures_each_rois_move(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 8)) + 5
    ids = [f"R{i}" for i in range(20)]
    write_features(tmp_path / "a", X, ids)
    write_features(tmp_path / "same", X, ids)
    same = S.feature_shift(tmp_path / "a", tmp_path / "same")
    assert (same["relative_change"] == 0).all() and not same["moved_past_neighbour"].any()
    assert (same["nearest_other_roi"] > 0).all()
    Y = X.copy()
    Y[3] *= 1.1  # one ROI moved by 10% of its norm; one missing in B; one NaN in B
    Y[5] = np.nan
    write_features(tmp_path / "b", Y[:-1], ids[:-1])
    shift = S.feature_shift(tmp_path / "a", tmp_path / "b").set_index("roi_id")
    assert len(shift) == 18 and "R5" not in shift.index and "R19" not in shift.index
    assert shift.loc["R3", "relative_change"] == pytest.approx(0.1)
    assert shift.drop("R3")["relative_change"].max() == 0
    summary = S.shift_summary(shift.reset_index())
    assert summary.loc["ROIs matched by id", "value"] == "18"
    with pytest.raises(DataError, match="no features.npz"):
        S.feature_shift(tmp_path / "a", tmp_path / "nowhere")
