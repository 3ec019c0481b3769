"""The results folder read back (mcalc.records.results): a damaged file is named with the notebook that writes it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mcalc.errors import DataError
from mcalc.evaluate import runs
from mcalc.records import results as rs


@pytest.fixture()
def folder(tmp_path):
    """A results folder with features of two ROIs and a baseline run record."""
    np.savez(tmp_path / rs.FEATURES, X=np.ones((2, 4), np.float32), roi_id=np.array(["a", "b"]))
    (tmp_path / rs.FEATURES_META).write_text(json.dumps({"image_size": 75, "weights": {}}))
    (tmp_path / rs.RUNS).mkdir()
    return tmp_path


MANIFEST = pd.DataFrame({"roi_id": ["a", "b"]})


def test_intact_features_read_back(folder):
    """The fixture's files are readable: the damage below is what the errors are about."""
    X, meta = rs.load_features(folder, MANIFEST)
    assert X.shape == (2, 4) and meta["image_size"] == 75


@pytest.mark.parametrize(
    "name, damage, writer",
    [
        (rs.FEATURES, lambda b: b[: len(b) // 2], "02_preprocessing"),
        (rs.FEATURES, lambda b: b"PK" + b[2:40], "02_preprocessing"),
        (rs.FEATURES_META, lambda b: b[:-3], "02_preprocessing"),
        (rs.FEATURES_META, lambda b: b"[1, 2]", "02_preprocessing"),
    ],
)
def test_a_damaged_features_file_names_itself_and_the_fix(folder, name, damage, writer):
    """Issue 27.4: a cut or edited features file is a one-line DataError naming the file and the
    notebook to re-run (with the command), not a zipfile / JSON traceback."""
    path = folder / name
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError) as info:
        rs.load_features(folder, MANIFEST)
    message = str(info.value)
    assert str(path) in message and f"re-run notebook {writer}" in message
    assert f"mcalc notebooks --only {writer} --force" in message and "\n" not in message


@pytest.mark.parametrize(
    "record, text, writer",
    [
        ("cnn_adam.json", '{"kind": "cnn", "name": "adam", "hist', "03_optimizer"),
        ("cnn_adam.json", '{"kind": "cnn", "name": "adam"}', "03_optimizer"),
        ("baseline_svm.json", "[]", "04_glcm_baselines"),
    ],
)
def test_a_damaged_run_record_names_itself_and_its_writer(folder, record, text, writer):
    """A cut or emptied run record: the error names it and the notebook that writes run records."""
    path = folder / rs.RUNS / record
    path.write_text(text)
    with pytest.raises(DataError, match=rf"{path} is damaged .*re-run notebook {writer}"):
        runs.gather_results(folder)


def test_a_damaged_manifest_names_the_curation(folder):
    """A manifest cut mid-header is named with notebook 01, which writes it."""
    path = folder / rs.MANIFEST
    path.write_text("roi_id,split,pati")
    with pytest.raises(DataError, match=rf"{path} is damaged .*re-run notebook 01_data_curation"):
        rs.load_manifest(folder)


def test_the_results_provenance_names_the_arithmetic_of_their_features(tmp_path):
    """The features' own record says their arithmetic, so a notebook 01 re-run that rewrites the
    provenance (without it) does not turn a bfloat16 build back into float32; no record: as written."""
    import json

    from mcalc.records.provenance import Provenance, write_provenance
    from mcalc.records.results import read_results_provenance

    write_provenance(
        Provenance(data="phantom").with_weights("random"), tmp_path / "provenance.json"
    )
    assert read_results_provenance(tmp_path).backbone_precision == "float32"
    (tmp_path / "features.json").write_text(json.dumps({"backbone_precision": "bfloat16"}))
    assert read_results_provenance(tmp_path).backbone_precision == "bfloat16"
    (tmp_path / "features.json").write_text("[1, 2]")  # not a record: the provenance as written
    assert read_results_provenance(tmp_path).backbone_precision == "float32"
