"""Feature extraction never aborts the run for one bad ROI: it is left out (NaN row), reported, and the
study's inputs go on without it."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import write_dicom

from mcalc.errors import DataError, ExclusionWarning
from mcalc.learn import features as Fe
from mcalc.learn.preprocessing import PreprocessConfig
from mcalc.learn.weights import resolve_weights
from mcalc.records import results as R
from mcalc.study import CLASSES

SIZE = 75


def tiny_backbone() -> keras.Model:
    """A stand-in backbone with InceptionResNetV2's input and output shapes (fast to build and run)."""
    inputs = keras.Input((SIZE, SIZE, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, keras.layers.Dense(Fe.N_FEATURES, activation="relu")(pooled))


def rois(tmp_path, n: int = 5) -> list[str]:
    """n textured ROI DICOMs."""
    rng = np.random.default_rng(0)
    return [
        str(
            write_dicom(
                tmp_path / f"roi{i}.dcm", rng.integers(100, 4000, (30, 20)).astype(np.uint16)
            )
        )
        for i in range(n)
    ]


def extract(paths, tmp_path, backbone):
    """extract_features with the stand-in backbone and a cache below tmp_path."""
    return Fe.extract_features(
        paths,
        PreprocessConfig(SIZE),
        resolve_weights("random"),
        tmp_path / "cache",
        batch_size=4,
        progress=False,
        backbone=backbone,
    )


def test_one_bad_roi_is_left_out_reported_and_the_rest_extracted(tmp_path):
    """A two-frame DICOM and a missing file: their rows NaN and named in one warning; others as alone."""
    backbone = tiny_backbone()
    paths = rois(tmp_path)
    alone = extract(paths, tmp_path / "a", backbone)
    frames = write_dicom(tmp_path / "frames.dcm", np.arange(600, dtype=np.uint16).reshape(30, 20))
    import pydicom

    ds = pydicom.dcmread(frames)
    ds.NumberOfFrames, ds.Rows = 2, 15
    ds.save_as(frames)
    mixed = [paths[0], str(frames), *paths[1:3], str(tmp_path / "gone.dcm"), *paths[3:]]
    with pytest.warns(ExclusionWarning, match="2 of 7 ROI") as record:
        X = extract(mixed, tmp_path / "b", backbone)
    message = str(record[0].message)
    assert "frames.dcm" in message and "gone.dcm" in message
    assert X.shape == (7, Fe.N_FEATURES)
    assert np.isnan(X[[1, 4]]).all()
    np.testing.assert_allclose(np.delete(X, [1, 4], axis=0), alone, rtol=1e-5, atol=1e-6)


def test_every_roi_bad_is_a_data_error(tmp_path):
    """Nothing usable at all: a DataError naming the files, not a table of NaN."""
    bad = write_dicom(tmp_path / "flat.dcm", np.full((30, 20), 7, np.uint16))
    with pytest.raises(DataError, match="flat.dcm"):
        extract([str(bad)], tmp_path, tiny_backbone())


def test_study_inputs_leave_out_rows_without_features(tmp_path, monkeypatch):
    """Rows whose features are NaN are dropped from the manifest and features with a warning."""
    manifest = pd.DataFrame(
        {"roi_id": ["a", "b", "c"], "label": [0, 1, 2], "pathology": list(CLASSES), "status": "ok"}
    )
    X = np.ones((3, 4), np.float32)
    X[1] = np.nan
    meta = {"image_size": SIZE, "weights": {"requested": "random"}}
    monkeypatch.setattr(R, "load_manifest", lambda _r: manifest)
    monkeypatch.setattr(R, "load_features", lambda _r, _m: (X, meta))
    with pytest.warns(ExclusionWarning, match="1 ROI.*b"):
        m, x, y = R.load_study_inputs(tmp_path, SIZE, "random")
    assert list(m["roi_id"]) == ["a", "c"] and x.shape == (2, 4) and list(y) == [0, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X[1] = 1.0
        assert len(R.load_study_inputs(tmp_path, SIZE, "random")[0]) == 3
