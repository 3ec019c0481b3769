"""Reading one image file (the ONE home): DICOM and JPEG headers and pixels, the size budget, and the
readability check of a ROI image that curation and preprocessing share.

:func:`check_image` dispatches by suffix: a ``.jpg`` / ``.jpeg`` (the Kaggle JPEG re-release) goes to
:func:`check_jpeg_image`, anything else to :func:`check_dicom_image`. Both return float32 2-D pixels
(bright = dense) and a note, or raise :class:`~mcalc.errors.UnusableImage` with the curation's
exclusion reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from mcalc.errors import UnusableImage

__all__ = [
    "MAX_IMAGE_PIXELS",
    "GREYSCALE",
    "check_dicom_image",
    "read_dicom_image",
    "DicomHeader",
    "read_dicom_header",
    "read_dicom_pixels",
    "is_binary",
    "MASK_TOLERANCE",
    "MASK_FRACTION",
    "is_near_binary",
    "JPEG_SUFFIXES",
    "FULL_AREA_SLACK",
    "JpegHeader",
    "read_jpeg_header",
    "GREY_MODES",
    "read_jpeg_pixels",
    "FILL_VALUE",
    "FILL_ROWS",
    "check_jpeg_image",
    "check_image",
    "read_image",
]

#: The size budget of one image: a file declaring more pixels than this is excluded before it is
#: decoded (the largest CBIS-DDSM mammograms have about 40 million; a few-KB file may declare billions).
MAX_IMAGE_PIXELS = 80_000_000
#: Photometric interpretations of a greyscale image (MONOCHROME1 is inverted to bright = dense).
GREYSCALE = ("MONOCHROME1", "MONOCHROME2")


def check_dicom_image(path: str | Path) -> tuple[np.ndarray, str]:
    """The readability check of a DICOM ROI image: float32 2-D pixels and a note (see :func:`check_image`).

    Reads with pydicom, applies the modality LUT (RescaleSlope / RescaleIntercept) and inverts
    MONOCHROME1 so that bright = dense. Raises :class:`~mcalc.errors.UnusableImage` (with the
    curation's exclusion reason) for a file that is missing, not DICOM, damaged, not one greyscale
    frame, not finite after rescaling or constant. The note is '' or says what was assumed (a colour
    photometric interpretation with one sample per pixel is read as grey). DICOM only: a ``.jpg``
    (the Kaggle JPEG re-release) is checked by :func:`check_jpeg_image`, and :func:`check_image`
    picks the one a file's suffix calls for.
    """
    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except FileNotFoundError:
        raise UnusableImage(f"{path}: file not found", "missing_file") from None
    except InvalidDicomError as exc:
        raise UnusableImage(f"{path}: not a DICOM file ({exc})", "not_dicom") from None
    except Exception as exc:  # pydicom raises assorted errors on damaged headers
        raise UnusableImage(
            f"{path}: unreadable DICOM ({type(exc).__name__}: {exc})", "corrupt_dicom"
        ) from None
    try:  # the size budget, before any pixel is decoded
        rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        declared = rows * columns * int(ds.get("NumberOfFrames", 1) or 1)
    except Exception as exc:  # a damaged Rows / Columns / NumberOfFrames element
        raise UnusableImage(
            f"{path}: unreadable image size ({type(exc).__name__}: {exc})", "corrupt_dicom"
        ) from None
    if declared > MAX_IMAGE_PIXELS:
        raise UnusableImage(
            f"{path}: declares {rows}x{columns} pixels, over the budget of "
            f"{MAX_IMAGE_PIXELS:,} per image; not decoded",
            "oversized_image",
        )
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise UnusableImage(
                f"{path}: floating-point pixel data is not supported (mammograms store integer pixels)",
                "unsupported_image",
            )
        raise UnusableImage(f"{path}: DICOM has no pixel data", "corrupt_dicom")
    try:
        raw = ds.pixel_array
    except Exception as exc:  # truncated pixel data, unsupported transfer syntax, bad header values
        raise UnusableImage(
            f"{path}: cannot decode pixel data ({type(exc).__name__}: {exc})", "corrupt_dicom"
        ) from None
    if raw.ndim != 2:
        raise UnusableImage(
            f"{path}: expected a single-frame greyscale image, got pixel array of shape {raw.shape} "
            f"(frames {ds.get('NumberOfFrames', 1)}, samples per pixel {ds.get('SamplesPerPixel', 1)}, "
            f"bits allocated {ds.get('BitsAllocated', '?')})",
            "unsupported_image",
        )
    if raw.size == 0:
        raise UnusableImage(f"{path}: empty image (shape {raw.shape})", "empty_crop")
    from pydicom.pixels import apply_modality_lut

    try:
        img = np.asarray(apply_modality_lut(raw, ds), dtype=np.float64)
    except Exception as exc:  # a damaged RescaleSlope / Intercept or LUT
        raise UnusableImage(
            f"{path}: cannot apply the modality rescale ({type(exc).__name__}: {exc})",
            "unsupported_image",
        ) from None
    if not np.all(np.isfinite(img)):
        raise UnusableImage(
            f"{path}: pixel values are not finite after rescaling (RescaleSlope "
            f"{ds.get('RescaleSlope', 1)!s}, RescaleIntercept {ds.get('RescaleIntercept', 0)!s})",
            "unsupported_image",
        )
    lo, hi = float(img.min()), float(img.max())
    if lo == hi:
        raise UnusableImage(
            f"{path}: constant image (every pixel = {lo:g}); nothing to classify", "empty_crop"
        )
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    note = ""
    if photometric == "MONOCHROME1":
        img = (hi + lo) - img
    elif photometric not in GREYSCALE:
        note = f"{path.name}: photometric interpretation {photometric} with one sample per pixel, read as grey"
    return img.astype(np.float32), note


def read_dicom_image(path: str | Path) -> np.ndarray:
    """Read a single-frame greyscale DICOM as float32 2-D, rescaled, with bright = dense (see check_dicom_image)."""
    return check_dicom_image(path)[0]


@dataclass(frozen=True)
class DicomHeader:
    """What the header of one file says, or why it cannot be used (reason '' when usable)."""

    path: str
    reason: str = ""
    detail: str = ""
    rows: int = 0
    columns: int = 0


def read_dicom_header(path: str) -> DicomHeader:
    """Read a DICOM header without pixels; check the pixel data is all there (uncompressed syntaxes)."""
    if not os.path.isfile(path):
        return DicomHeader(path, "missing_file", f"{path} not found")
    try:
        with open(path, "rb") as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True)
            offset = fh.tell()
    except InvalidDicomError as exc:
        return DicomHeader(path, "not_dicom", f"{path} is not a DICOM file ({exc})")
    except Exception as exc:  # noqa: BLE001 - any parse failure of a damaged file is reported, not raised
        return DicomHeader(
            path, "corrupt_dicom", f"{path}: unreadable DICOM header ({type(exc).__name__}: {exc})"
        )
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
    except AttributeError:
        return DicomHeader(path, "corrupt_dicom", f"{path}: no Rows/Columns in the DICOM header")
    except Exception as exc:  # noqa: BLE001 - a damaged value (wrong length, not a number) is reported
        return DicomHeader(
            path, "corrupt_dicom", f"{path}: unreadable Rows/Columns ({type(exc).__name__}: {exc})"
        )
    if rows < 1 or cols < 1:
        return DicomHeader(path, "corrupt_dicom", f"{path}: image of {rows} x {cols} pixels")
    size = os.path.getsize(path)
    if offset >= size:
        return DicomHeader(
            path, "corrupt_dicom", f"{path}: no pixel data (file ends after the header)"
        )
    try:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is not None and not syntax.is_compressed:
            bits = int(getattr(ds, "BitsAllocated", 16) or 16)
            samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
            frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
            expected = (rows * cols * samples * frames * bits + 7) // 8
            # the pixel element's tag and length: 8 bytes (implicit VR) or 12 (explicit VR, OB/OW)
            available = size - offset - (8 if syntax.is_implicit_VR else 12)
            if available < expected:
                return DicomHeader(
                    path,
                    "corrupt_dicom",
                    f"{path}: truncated pixel data ({max(available, 0)} of {expected} bytes)",
                )
    except Exception as exc:  # noqa: BLE001 - damaged header values are reported, not raised
        return DicomHeader(
            path, "corrupt_dicom", f"{path}: unreadable DICOM header ({type(exc).__name__}: {exc})"
        )
    return DicomHeader(path, rows=rows, columns=cols)


def read_dicom_pixels(path: str) -> np.ndarray | str:
    """The pixel array of a DICOM file, or a message saying why it cannot be read."""
    try:
        ds = pydicom.dcmread(path)
        if (
            "PixelData" not in ds
        ):  # Float / Double Float Pixel Data: not a mammogram the preprocessing reads
            return f"{path}: no integer pixel data (PixelData element absent)"
        return np.asarray(ds.pixel_array)
    except Exception as exc:  # noqa: BLE001 - a damaged file is reported as an exclusion
        return f"{path}: unreadable pixel data ({type(exc).__name__}: {exc})"


def is_binary(pixels: np.ndarray) -> bool:
    """True when an image holds at most two distinct values (a mask)."""
    flat = pixels.ravel()
    if flat.size == 0:
        return True
    rest = flat[flat != flat[0]]
    return rest.size == 0 or bool((rest == rest[0]).all())


#: A JPEG mask is near-binary: this share of its pixels lies within MASK_TOLERANCE × (max − min) of
#: its darkest or brightest value (JPEG ringing spreads a 0/255 mask over a few grey levels at edges).
MASK_TOLERANCE = 0.2
MASK_FRACTION = 0.98


def is_near_binary(
    pixels: np.ndarray, tolerance: float = MASK_TOLERANCE, fraction: float = MASK_FRACTION
) -> bool:
    """True when an image is a mask up to JPEG loss: nearly all pixels close to its darkest or brightest value."""
    flat = np.asarray(pixels, dtype=np.float64).ravel()
    if flat.size == 0:
        return True
    lo, hi = float(flat.min()), float(flat.max())
    band = tolerance * (hi - lo)
    near = (flat - lo <= band) | (hi - flat <= band)
    return bool(near.mean() >= fraction)


JPEG_SUFFIXES = (".jpg", ".jpeg")
#: A crop or mask is cut from (or drawn on) its full mammogram: one declaring more than this many
#: times the mammogram's pixels is excluded before decoding (crops may be stored finer than a
#: downsampled mammogram, as the phantom's are, and masks may differ from it by a few pixels).
FULL_AREA_SLACK = 4
_JPEG_END = b"\xff\xd9"  # the end-of-image marker: a cut file lacks it


@dataclass(frozen=True)
class JpegHeader:
    """What a JPEG file says about itself, or why it cannot be used (reason '' when usable)."""

    path: str
    reason: str = ""
    detail: str = ""
    rows: int = 0
    columns: int = 0
    format: str = "JPEG"  # what the file is (Pillow's name): a PNG or GIF may carry a .jpg name

    def note(self) -> str:
        """A note when the file is not the JPEG its name says ('' when it is)."""
        if self.format == "JPEG":
            return ""
        return f"{Path(self.path).name}: a {self.format} image under a .jpg name (read as it is)"

    def too_large(self, full: JpegHeader | None = None) -> str:
        """Why the declared size cannot be decoded or cannot be right ('' when it can): over the size
        budget, or larger than its own full mammogram (checked before any pixel is decoded)."""
        if self.rows * self.columns > MAX_IMAGE_PIXELS:
            return (
                f"{self.path} declares {self.rows}x{self.columns} pixels, over the budget of "
                f"{MAX_IMAGE_PIXELS:,} per image; not decoded"
            )
        if (
            full is not None
            and self.rows * self.columns > FULL_AREA_SLACK * full.rows * full.columns
        ):
            return (
                f"{self.path} declares {self.rows}x{self.columns} pixels, over {FULL_AREA_SLACK} "
                f"times its full mammogram {full.path} ({full.rows}x{full.columns}); not decoded"
            )
        return ""


def read_jpeg_header(path: str, check_end: bool = False) -> JpegHeader:
    """Size of an image file without decoding it; with check_end, also whether the file is complete."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        return JpegHeader(path, "missing_file", f"{path} not found")
    try:
        with Image.open(path) as im:
            columns, rows = im.size
            kind = str(im.format or "unknown")
    except Image.DecompressionBombError as exc:  # Pillow's own limit, met when opening
        return JpegHeader(
            path, "oversized_image", f"{path} declares too many pixels ({exc}); not decoded"
        )
    except UnidentifiedImageError:
        return JpegHeader(path, "not_jpeg", f"{path} is not an image file (not a JPEG)")
    except Exception as exc:  # noqa: BLE001 - any failure on a damaged file is reported, not raised
        return JpegHeader(path, "corrupt_jpeg", f"{path}: unreadable ({type(exc).__name__}: {exc})")
    if check_end and kind == "JPEG":
        with open(path, "rb") as fh:
            fh.seek(max(0, os.path.getsize(path) - 64))
            if _JPEG_END not in fh.read():
                return JpegHeader(
                    path, "corrupt_jpeg", f"{path}: truncated (no end-of-image marker)"
                )
    return JpegHeader(path, rows=rows, columns=columns, format=kind)


GREY_MODES = ("L", "I;16", "I", "F")  # Pillow modes read as they are; any other is converted to "L"


def read_jpeg_pixels(path: str) -> np.ndarray | str:
    """The grey pixels of an image file (decoded in full), or a message saying why they cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            pixels = np.asarray(im if im.mode in GREY_MODES else im.convert("L"))
            kind = im.format
    except Exception as exc:  # noqa: BLE001 - a damaged file is reported as an exclusion
        return f"{path}: unreadable pixel data ({type(exc).__name__}: {exc})"
    if kind == "JPEG" and _fill_rows(pixels) >= FILL_ROWS:
        return (
            f"{path}: cut short ({_fill_rows(pixels)} of its {pixels.shape[0]} rows are the "
            "decoder's grey fill, though the file ends with an end-of-image marker)"
        )
    return pixels


#: libjpeg fills the rows a cut-short file lacks with mid-grey; this many such rows (one block
#: height and more) at the bottom of a decoded JPEG mean its data ended early.
FILL_VALUE = 128
FILL_ROWS = 8


def _fill_rows(pixels: np.ndarray) -> int:
    """How many whole rows at the bottom of an 8-bit image are the decoder's grey fill."""
    if pixels.ndim != 2 or pixels.dtype != np.uint8 or pixels.size == 0:
        return 0
    fill = np.all(pixels == FILL_VALUE, axis=1)
    if fill.all():
        return int(fill.size)
    return int(fill.size - 1 - np.flatnonzero(~fill)[-1])


def check_jpeg_image(path: str | Path) -> tuple[np.ndarray, str]:
    """The readability check of a JPEG ROI (as :func:`check_dicom_image`): float32 2-D pixels and a note.

    Bright = dense, as the re-release stores it. Raises :class:`~mcalc.errors.UnusableImage` with the
    curation's exclusion reason for a file that is missing, not an image, cut short or damaged, not
    one 2-D image, or constant. The note says when a colour JPEG was read as grey.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UnusableImage(f"{path}: file not found", "missing_file")
    try:
        with Image.open(path) as im:
            mode = im.mode
            head = JpegHeader(str(path), rows=im.size[1], columns=im.size[0], format=im.format)
    except Image.DecompressionBombError as exc:  # Pillow's own limit, met when opening
        raise UnusableImage(
            f"{path} declares too many pixels ({exc}); not decoded", "oversized_image"
        ) from None
    except UnidentifiedImageError:
        raise UnusableImage(f"{path} is not an image file (not a JPEG)", "not_jpeg") from None
    except Exception as exc:  # noqa: BLE001 - any failure on a damaged file is an exclusion
        raise UnusableImage(
            f"{path}: unreadable ({type(exc).__name__}: {exc})", "corrupt_jpeg"
        ) from None
    if head.too_large():
        raise UnusableImage(head.too_large(), "oversized_image")
    data = read_jpeg_pixels(str(path))
    if isinstance(data, str):
        raise UnusableImage(data, "corrupt_jpeg")
    if data.ndim != 2 or data.size == 0:
        raise UnusableImage(
            f"{path}: expected one non-empty greyscale image, got shape {data.shape}",
            "unsupported_image",
        )
    img = data.astype(np.float32)
    if float(img.min()) == float(img.max()):
        raise UnusableImage(
            f"{path}: constant image (every pixel = {img.min():g}); nothing to classify",
            "empty_crop",
        )
    notes = [head.note(), "" if mode in GREY_MODES else f"{path.name}: {mode} image read as grey"]
    return img, "; ".join(n for n in notes if n)


def check_image(path: str | Path) -> tuple[np.ndarray, str]:
    """The ONE readability check of a ROI image (curation and preprocessing), by suffix: JPEG or DICOM."""
    if Path(path).suffix.lower() in JPEG_SUFFIXES:  # the Kaggle JPEG re-release
        return check_jpeg_image(path)
    return check_dicom_image(path)


def read_image(path: str | Path) -> np.ndarray:
    """Read a ROI image (DICOM or JPEG, by suffix) as float32 2-D with bright = dense (see check_image)."""
    return check_image(path)[0]
