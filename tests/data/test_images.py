"""Tests of mcalc.data.images: reading DICOM and JPEG files, the size budget, damaged input, pixel formats."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import write_dicom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcalc.data import images
from mcalc.data.images import read_dicom_image
from mcalc.data.phantom.writing import write_jpeg
from mcalc.errors import DataError
from mcalc.learn.preprocessing import load_roi

FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CROP_SHAPE = (12, 10)


@pytest.fixture
def content() -> np.ndarray:
    """A rectangular 8-bit test ROI with a gradient and a bright spot."""
    yy, xx = np.mgrid[0:40, 0:64]
    img = (xx * 3 + yy).astype(np.float64)
    img[10:14, 20:26] = 255
    return np.clip(img, 0, 255).astype(np.uint8)


def texture(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Textured 16-bit pixels."""
    return np.random.default_rng(seed).integers(100, 4000, shape).astype(np.uint16)


def binary_mask(shape: tuple[int, int], on: int = 255, off: int = 0) -> np.ndarray:
    """A binary 8-bit mask with one lesion block."""
    mask = np.full(shape, off, np.uint8)
    mask[4:10, 3:9] = on
    return mask


# ------------------------------------------------------------------------------ DICOM


def test_rescale_slope_intercept_applied(tmp_path: Path, content: np.ndarray) -> None:
    path = write_dicom(tmp_path / "r.dcm", content, slope=2.0, intercept=-100.0)
    img = read_dicom_image(path)
    np.testing.assert_allclose(img, content.astype(np.float32) * 2.0 - 100.0)


def test_monochrome1_inverted(tmp_path: Path, content: np.ndarray) -> None:
    m2 = read_dicom_image(write_dicom(tmp_path / "m2.dcm", content))
    m1 = read_dicom_image(
        write_dicom(tmp_path / "m1.dcm", 255 - content, photometric="MONOCHROME1")
    )
    np.testing.assert_allclose(m1 - m1.min(), m2 - m2.min())
    # the bright spot stays bright after inversion
    assert m1[11, 22] == m1.max()


def test_non_dicom_raises(tmp_path: Path) -> None:
    path = tmp_path / "note.dcm"
    path.write_text("this is not a DICOM file\n" * 20)
    with pytest.raises(DataError, match="note.dcm"):
        read_dicom_image(path)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="absent.dcm"):
        read_dicom_image(tmp_path / "absent.dcm")


def test_truncated_pixel_data_raises(tmp_path: Path, content: np.ndarray) -> None:
    path = write_dicom(tmp_path / "trunc.dcm", content.astype(np.uint16))
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(DataError, match="trunc.dcm"):
        read_dicom_image(path)


def test_truncated_file_raises(tmp_path: Path, content: np.ndarray) -> None:
    path = write_dicom(tmp_path / "cut.dcm", content.astype(np.uint16))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(DataError, match="cut.dcm"):
        read_dicom_image(path)


def test_no_pixel_data_raises(tmp_path: Path, content: np.ndarray) -> None:
    path = write_dicom(tmp_path / "nopix.dcm", content)
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(DataError, match="nopix.dcm.*no pixel data"):
        read_dicom_image(path)


def test_constant_image_raises(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "flat.dcm", np.full((20, 30), 7, dtype=np.uint16))
    with pytest.raises(DataError, match="flat.dcm.*constant"):
        read_dicom_image(path)


def test_a_dicom_declaring_more_pixels_than_the_budget_is_refused_before_decoding(tmp_path):
    """Issue 27.6 for the DICOM release: Rows x Columns over the size budget is an oversized_image,
    named, before any pixel is decoded (the file holds only a few bytes of pixels)."""
    from mcalc.data.images import MAX_IMAGE_PIXELS, check_dicom_image
    from mcalc.errors import UnusableImage

    path = write_dicom(tmp_path / "crop.dcm", np.arange(16, dtype=np.uint16).reshape(4, 4))
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = 60000
    assert 60000 * 60000 > MAX_IMAGE_PIXELS
    ds.save_as(path)
    with pytest.raises(UnusableImage, match="declares 60000x60000 pixels, over the budget") as info:
        check_dicom_image(path)
    assert info.value.reason == "oversized_image" and str(path) in str(info.value)


@pytest.fixture(scope="module")
def valid_dicom(tmp_path_factory) -> tuple[Path, bytes, np.ndarray]:
    """A valid 16-bit DICOM: (folder for variants, its bytes, what read_dicom_image makes of it)."""
    folder = tmp_path_factory.mktemp("dicom")
    path = write_dicom(folder / "valid.dcm", texture((16, 12), 0))
    return folder, path.read_bytes(), read_dicom_image(path)


@FAST
@given(data=st.data())
def test_truncated_dicom_is_a_data_error(valid_dicom, data):
    """A DICOM cut at any byte is a DataError naming the file for preprocessing and an exclusion for curation."""
    folder, raw, _ = valid_dicom
    cut = data.draw(st.integers(0, len(raw) - 1), label="kept bytes")
    path = folder / "truncated.dcm"
    path.write_bytes(raw[:cut])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the broken values it meets on the way
        with pytest.raises(DataError) as err:
            read_dicom_image(path)
        header = images.read_dicom_header(str(path))
    assert str(path) in str(err.value)
    assert header.reason in ("not_dicom", "corrupt_dicom") and str(path) in header.detail


@FAST
@given(data=st.data())
def test_corrupt_bytes_never_escape_as_another_error(valid_dicom, data):
    """Random bytes written over a DICOM: a DataError or a finite 2-D image, never another exception type."""
    folder, raw, _ = valid_dicom
    start = data.draw(st.integers(0, len(raw) - 1), label="start")
    junk = data.draw(st.binary(min_size=1, max_size=64), label="junk")
    damaged = raw[:start] + junk + raw[start + len(junk) :]
    path = folder / "corrupt.dcm"
    path.write_bytes(damaged)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            img = read_dicom_image(path)
        except DataError as exc:
            assert str(path) in str(exc)
        else:
            assert img.ndim == 2 and img.dtype == np.float32 and np.isfinite(img).all()
        header = images.read_dicom_header(str(path))  # never raises
        pixels = images.read_dicom_pixels(str(path))  # an array or a message, never raises
    assert isinstance(header, images.DicomHeader)
    assert isinstance(pixels, (np.ndarray, str))


@pytest.mark.parametrize(
    "content", [b"", b"<html><body>503 Service Unavailable</body></html>\n", b"\0" * 400]
)
def test_non_dicom_file_with_dcm_name(tmp_path, content):
    """A file that is not DICOM but named .dcm: DataError naming it; curation reports not_dicom."""
    path = tmp_path / "000001.dcm"
    path.write_bytes(content)
    with pytest.raises(DataError, match="not a DICOM") as err:
        read_dicom_image(path)
    assert str(path) in str(err.value)
    header = images.read_dicom_header(str(path))
    assert header.reason == "not_dicom" and str(path) in header.detail


def test_12_bits_stored_in_16_read_as_stored(tmp_path):
    """BitsStored 12 in 16 allocated is an ordinary image: the stored values come back."""
    px = texture(CROP_SHAPE, 1)
    img = read_dicom_image(write_dicom(tmp_path / "b12.dcm", px, bits_stored=12))
    np.testing.assert_array_equal(img, px.astype(np.float32))
    assert load_roi(tmp_path / "b12.dcm").shape == (299, 299, 3)


def test_one_bit_pixels_read_exactly(tmp_path):
    """1-bit pixel data (packed) is unpacked to its 0/1 values, not misread as bytes."""
    mask = binary_mask(CROP_SHAPE, on=1)
    path = write_dicom(tmp_path / "bit.dcm", mask, bits_allocated=1)
    assert pydicom.dcmread(path).BitsAllocated == 1
    np.testing.assert_array_equal(read_dicom_image(path), mask.astype(np.float32))
    header = images.read_dicom_header(str(path))
    assert header.reason == "" and (header.rows, header.columns) == CROP_SHAPE
    assert images.is_binary(images.read_dicom_pixels(str(path)))


def to_float_pixel_data(path: Path) -> Path:
    """Rewrite a DICOM so that it holds Float Pixel Data instead of integer PixelData."""
    ds = pydicom.dcmread(path)
    rows, cols = int(ds.Rows), int(ds.Columns)
    del ds.PixelData, ds.BitsStored, ds.HighBit, ds.PixelRepresentation
    ds.BitsAllocated = 32
    ds.FloatPixelData = np.linspace(0, 1, rows * cols, dtype=np.float32).tobytes()
    ds.save_as(path)
    return path


def test_float_pixel_data_is_a_clear_error(tmp_path):
    """Float Pixel Data: preprocessing raises a DataError naming the file; curation excludes such a crop."""
    path = to_float_pixel_data(write_dicom(tmp_path / "float.dcm", texture(CROP_SHAPE, 2)))
    with pytest.raises(DataError) as err:
        read_dicom_image(path)
    assert str(path) in str(err.value)
    message = images.read_dicom_pixels(str(path))
    assert isinstance(message, str) and str(path) in message


def test_monochrome1_crop_inverted_and_all_zero_crop_refused(tmp_path):
    """MONOCHROME1 is inverted so bright = dense; an all-zero crop is a DataError naming the file."""
    px = texture(CROP_SHAPE, 3)
    mono1 = read_dicom_image(write_dicom(tmp_path / "m1.dcm", px, photometric="MONOCHROME1"))
    mono2 = read_dicom_image(write_dicom(tmp_path / "m2.dcm", px))
    np.testing.assert_allclose(mono1, mono2.max() + mono2.min() - mono2)
    zero = write_dicom(tmp_path / "zero.dcm", np.zeros(CROP_SHAPE, np.uint16))
    with pytest.raises(DataError, match="constant") as err:
        load_roi(zero)
    assert str(zero) in str(err.value)


# ------------------------------------------------------------------------------ JPEG


def test_read_jpeg_image_errors_name_the_file(tmp_path):
    """read_image on a .jpg reads it (float32 2-D); missing, not-a-JPEG, constant: DataError."""
    good = tmp_path / "good.jpg"
    write_jpeg(good, np.arange(64 * 48, dtype=np.uint16).reshape(64, 48))
    img = images.read_image(good)
    assert img.dtype == np.float32 and img.shape == (64, 48) and img.max() > 200
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    flat = tmp_path / "flat.jpg"
    write_jpeg(flat, np.full((8, 8), 7, np.uint8))
    for path in (tmp_path / "absent.jpg", bad, flat):
        with pytest.raises(DataError, match=path.name):
            images.read_image(path)
