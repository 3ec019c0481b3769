"""Tests for mcalc.learn.glcm: the 14 Haralick GLCM features, their quantisation and settings, and reading
them off DICOM ROIs (serially and in a process pool)."""

from __future__ import annotations

from pathlib import Path

import mahotas
import numpy as np
import pytest
from conftest import write_dicom

from mcalc.errors import DataError
from mcalc.learn import glcm as G


def noise_image(seed: int = 0, shape: tuple[int, int] = (48, 40)) -> np.ndarray:
    """Integer-valued uniform noise spanning 0..255."""
    img = np.random.default_rng(seed).integers(0, 256, shape).astype(np.float64)
    img[0, 0], img[0, 1] = 0, 255
    return img


def striped_image(shape: tuple[int, int] = (48, 40)) -> np.ndarray:
    """Vertical stripes, period 4 columns."""
    cols = np.arange(shape[1])
    return np.tile(np.where(cols % 4 < 2, 200.0, 20.0), (shape[0], 1))


def test_glcm_shape_names_and_mahotas_directly() -> None:
    img = noise_image()
    feats = G.glcm_features(img, levels=64)
    assert feats.shape == (14,) == (len(G.HARALICK_NAMES),)
    q = np.rint((img - img.min()) / (img.max() - img.min()) * 63).astype(np.uint8)
    direct = mahotas.features.haralick(
        q, ignore_zeros=False, compute_14th_feature=True, return_mean=True
    )
    np.testing.assert_array_equal(feats, direct)
    assert G.quantise(img, 64).max() == 63 and G.quantise(img, 64).min() == 0


def test_glcm_invariant_to_global_gain_and_offset() -> None:
    img = noise_image(1)
    base = G.glcm_features(img)
    np.testing.assert_allclose(G.glcm_features(4.0 * img), base, rtol=1e-12)
    np.testing.assert_allclose(G.glcm_features(3.0 * img + 1000.0), base, rtol=1e-12)


def test_glcm_distinguishes_noise_from_stripes() -> None:
    noise = G.glcm_features(noise_image(2))
    stripes = G.glcm_features(striped_image())
    name = dict(zip(G.HARALICK_NAMES, range(14)))
    # two grey levels in a regular pattern: far more concentrated co-occurrences, far less entropy
    assert stripes[name["angular_second_moment"]] > 10 * noise[name["angular_second_moment"]]
    assert stripes[name["entropy"]] < 0.5 * noise[name["entropy"]]


def test_glcm_levels_change_features() -> None:
    img = noise_image(3)
    assert not np.allclose(G.glcm_features(img, levels=16), G.glcm_features(img, levels=64))


def test_glcm_bad_images_raise() -> None:
    with pytest.raises(DataError, match="constant"):
        G.glcm_features(np.full((20, 20), 7.0))
    nan = noise_image()
    nan[3, 3] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        G.glcm_features(nan)
    with pytest.raises(DataError, match="2-D"):
        G.glcm_features(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError):
        G.glcm_features(noise_image(), levels=1)


def test_glcm_feature_matrix_reads_dicoms(tmp_path: Path) -> None:
    from mcalc.data.images import read_image

    images = [noise_image(s) * 16 for s in range(3)] + [striped_image() * 10]
    paths = [write_dicom(tmp_path / f"roi{i}.dcm", img) for i, img in enumerate(images)]
    serial = G.glcm_feature_matrix(paths, workers=1, progress=False)
    assert serial.shape == (4, 14)
    for row, path in zip(serial, paths):
        np.testing.assert_array_equal(row, G.glcm_features(read_image(path)))
    np.testing.assert_allclose(serial[0], G.glcm_features(images[0]), rtol=1e-12)


@pytest.mark.slow
def test_glcm_feature_matrix_process_pool_same_as_serial(tmp_path: Path) -> None:
    paths = [write_dicom(tmp_path / f"roi{i}.dcm", noise_image(i) * 16) for i in range(5)]
    np.testing.assert_array_equal(
        G.glcm_feature_matrix(paths, workers=2, progress=False),
        G.glcm_feature_matrix(paths, workers=1, progress=False),
    )


def test_glcm_feature_matrix_error_names_file(tmp_path: Path) -> None:
    good = write_dicom(tmp_path / "good.dcm", noise_image())
    flat = write_dicom(tmp_path / "flat.dcm", np.full((16, 16), 100))
    with pytest.raises(DataError, match="flat.dcm"):
        G.glcm_feature_matrix([good, flat], workers=1, progress=False)


def test_glcm_settings_state_what_glcm_features_does() -> None:
    s = G.glcm_settings()
    assert s["grey levels"] == G.GLCM_LEVELS == 64 and s["distance (pixels)"] == 1
    assert s["angles"].startswith("0°, 45°, 90°, 135°")
    # the stated distance and angles are mahotas' own: one direction's matrix at distance 1
    img = noise_image(4)
    q = G.quantise(img, G.GLCM_LEVELS)
    per_direction = mahotas.features.haralick(q, ignore_zeros=False, compute_14th_feature=True)
    assert per_direction.shape[0] == len(G.GLCM_ANGLES)
    np.testing.assert_allclose(G.glcm_features(img), per_direction.mean(axis=0))
