"""Tests for mcalc.evaluate.clusters: patient and lesion ids of the real test table and their counts."""

from __future__ import annotations

import pytest

from mcalc.errors import DataError
from mcalc.evaluate import clusters as CL


def test_cluster_ids_on_the_real_test_table() -> None:
    """151 patients, 189 lesions on the 326 test ROIs; BENIGN_WITHOUT_CALLBACK: 67 ROIs of 17 patients."""
    from mcalc.evaluate.metadata import read_real_tables

    rows = read_real_tables()
    table = rows[rows["split"] == "test"]
    patients, lesions = CL.cluster_ids(table)
    y = table["label"].to_numpy(dtype=int)
    counts = CL.unit_counts(y, patients, lesions)
    assert counts["all"] == {"rois": 326, "lesions": 189, "patients": 151}
    assert counts["BENIGN_WITHOUT_CALLBACK"]["rois"] == 67
    assert counts["BENIGN_WITHOUT_CALLBACK"]["patients"] == 17
    with pytest.raises(DataError, match="abnormality_id"):
        CL.cluster_ids(table.drop(columns="abnormality_id"))
