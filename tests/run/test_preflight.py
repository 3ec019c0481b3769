"""The check before any notebook runs (mcalc.run.preflight): a bad data root fails in seconds, in one line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mcalc.errors import DataError
from mcalc.run.preflight import check_counts, preflight, scaled_validation
from mcalc.run.profiles import get_profile
from tests.conftest import shared_tables

CALC = ("calc_case_description_train_set.csv", "calc_case_description_test_set.csv")


def _counts(train: tuple[int, int, int], test: tuple[int, int, int]) -> pd.DataFrame:
    """A split × class table."""
    cols = ["BENIGN", "BENIGN_WITHOUT_CALLBACK", "MALIGNANT"]
    return pd.DataFrame([train, test], index=["train", "test"], columns=cols)


def test_the_validation_count_scales_with_the_training_split() -> None:
    assert scaled_validation(200, 1546) == 200
    assert scaled_validation(200, 3000) == 200  # never more than asked
    assert scaled_validation(200, 150) == 19  # 200 · 150 / 1546
    assert scaled_validation(200, 10) == 3  # at least one ROI per class
    assert scaled_validation(0.2, 150) == 0.2  # a fraction is already relative


def test_missing_split_class_or_too_few_rois_is_one_clear_error() -> None:
    assert check_counts(_counts((50, 50, 50), (5, 5, 5)), "root", 200) == 19
    with pytest.raises(DataError, match="has no test split"):
        check_counts(_counts((50, 50, 50), (0, 0, 0)), "root", 200)
    with pytest.raises(DataError, match="class MALIGNANT has no ROI in the train split"):
        check_counts(_counts((50, 50, 0), (5, 5, 5)), "root", 200)
    with pytest.raises(DataError, match="too few for a validation hold-out"):
        check_counts(_counts((2, 2, 1), (5, 5, 5)), "root", 200)


def test_the_phantom_is_not_checked() -> None:
    profile = get_profile("ci")
    assert preflight(profile) == (profile, None)


def _small_root(tmp_path: Path, n_train: int, with_test: bool = True) -> Path:
    """A data root holding the first rows of each real calcification table."""
    tables = shared_tables()
    root = tmp_path / "root"
    root.mkdir()
    for name in CALC if with_test else CALC[:1]:
        df = pd.read_csv(tables / name)
        df = df.groupby("pathology").head(n_train // 3) if "train" in name else df.head(40)
        df.to_csv(root / name, index=False)
    return root


def test_a_small_real_root_gets_a_smaller_hold_out(tmp_path: Path) -> None:
    root = _small_root(tmp_path, 150)
    profile = get_profile("default", data_source="cbis-ddsm", data_root=str(root))
    checked, data = preflight(profile)
    n_train = int(data.counts.loc["train"].sum())
    assert n_train < 200  # the paper's 200 would not even fit
    assert checked.validation_size == scaled_validation(200, n_train) < n_train
    assert "validation hold-out" in data.describe()


def test_a_root_without_the_test_table_fails_before_running(tmp_path: Path) -> None:
    root = _small_root(tmp_path, 150, with_test=False)
    profile = get_profile("default", data_source="cbis-ddsm", data_root=str(root))
    with pytest.raises(DataError, match="test"):
        preflight(profile)
