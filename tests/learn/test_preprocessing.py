"""Tests for mcalc.learn.preprocessing: square stretch, intensity scaling, error handling (reading: tests/data/test_images.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import write_dicom

from mcalc.errors import DataError
from mcalc.learn.preprocessing import (
    PreprocessConfig,
    load_roi,
    preprocess_roi,
    resize_for_display,
    square_stretch,
)


@pytest.fixture
def content() -> np.ndarray:
    """A rectangular 8-bit test ROI with a gradient and a bright spot."""
    yy, xx = np.mgrid[0:40, 0:64]
    img = (xx * 3 + yy).astype(np.float64)
    img[10:14, 20:26] = 255
    return np.clip(img, 0, 255).astype(np.uint8)


def test_output_shape_dtype_range(tmp_path: Path, content: np.ndarray) -> None:
    path = write_dicom(tmp_path / "a.dcm", content)
    out = load_roi(path, PreprocessConfig(image_size=299))
    assert out.shape == (299, 299, 3)
    assert out.dtype == np.float32
    assert out.min() >= -1.0 and out.max() <= 1.0
    # min–max scaling reaches both ends of the range
    assert out.min() == pytest.approx(-1.0, abs=1e-3) and out.max() == pytest.approx(1.0, abs=1e-3)


def test_three_channels_identical(content: np.ndarray) -> None:
    out = preprocess_roi(content.astype(np.float32), PreprocessConfig(image_size=80))
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_8_and_16_bit_same_output(tmp_path: Path, content: np.ndarray) -> None:
    p8 = write_dicom(tmp_path / "u8.dcm", content)
    p16 = write_dicom(tmp_path / "u16.dcm", content.astype(np.uint16) * 257)
    p12 = write_dicom(tmp_path / "u12.dcm", content.astype(np.uint16) * 16, bits_stored=12)
    cfg = PreprocessConfig(image_size=96)
    a, b, c = load_roi(p8, cfg), load_roi(p16, cfg), load_roi(p12, cfg)
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a, c, atol=1e-5)


def test_non_square_stretched_to_square() -> None:
    # a left-to-right ramp on a wide crop stays a left-to-right ramp covering the full width
    wide = np.tile(np.linspace(0, 1, 200, dtype=np.float32), (50, 1))
    out = square_stretch(wide, 100)
    assert out.shape == (100, 100)
    np.testing.assert_allclose(
        out[0], out[-1], atol=1e-5
    )  # rows identical: pure stretch, no crop/pad
    assert out[:, 0].mean() < 0.02 and out[:, -1].mean() > 0.98
    np.testing.assert_allclose(out[50], np.linspace(0, 1, 100), atol=0.02)
    tall = wide.T
    np.testing.assert_allclose(square_stretch(tall, 100), out.T, atol=1e-5)


def test_resize_matches_pillow_bicubic() -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    img = (rng.random((37, 81)) * 255).astype(np.float32)
    ours = square_stretch(img, 64)
    pil = np.asarray(Image.fromarray(img, mode="F").resize((64, 64), Image.BICUBIC))
    np.testing.assert_allclose(ours, pil, atol=0.05)


def test_resize_for_display(content: np.ndarray) -> None:
    out = resize_for_display(content, size=120)
    assert out.shape == (120, 120) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_config_key_stable_and_distinct() -> None:
    assert PreprocessConfig().key() == PreprocessConfig(299, "bicubic").key()
    assert PreprocessConfig(224).key() != PreprocessConfig(299).key()
    assert PreprocessConfig(299, "bilinear").key() != PreprocessConfig(299).key()
    with pytest.raises(ValueError, match="interpolation"):
        PreprocessConfig(interpolation="cubic-ish")


def test_constant_roi_raises() -> None:
    with pytest.raises(DataError, match="constant"):
        preprocess_roi(np.ones((10, 10), dtype=np.float32))


def test_not_2d_raises() -> None:
    with pytest.raises(DataError, match="2-D"):
        preprocess_roi(np.random.default_rng(0).random((8, 8, 3)))


def test_resize_filter_is_a_parameter_and_the_default_key_is_unchanged():
    """antialias=False (point-sampled, INTER_CUBIC-like) is a different recipe; the default keeps its cache key."""
    from mcalc.learn.preprocessing import PreprocessConfig, square_stretch

    assert PreprocessConfig().key() == "preprocess-v1;image_size=299;interpolation=bicubic"
    assert "antialias=False" in PreprocessConfig(antialias=False).key()
    rng = np.random.default_rng(0)
    img = rng.random((600, 400)).astype(np.float32)
    smooth = square_stretch(img, 100, antialias=True)
    sampled = square_stretch(img, 100, antialias=False)
    assert smooth.shape == sampled.shape == (100, 100)
    # averaging over ~6 × 4 input pixels shrinks the noise far more than point sampling does
    assert smooth.std() < 0.5 * sampled.std()


def test_speck_contrast_shows_point_sampling_aliases_small_specks():
    """A one-pixel speck's peak depends on its position far more under point sampling than antialiased."""
    from mcalc.learn.preprocessing import speck_contrast

    table = speck_contrast(widths_px=(1,), roi_side=300, size=100, offsets=6)
    ratio = table.set_index("filter")["largest / smallest"]
    anti = ratio[ratio.index.str.startswith("antialiased")].iloc[0]
    point = ratio[ratio.index.str.startswith("point")].iloc[0]
    assert point > 5 * anti
    assert (table["speck width (mm)"] == 0.05).all()
