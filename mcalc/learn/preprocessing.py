"""ROI preprocessing (paper §2.2, Figure 1): DICOM → square 299² bicubic → 3 channels → ``preprocess_input``.

The steps, for one cropped ROI:

1. :func:`mcalc.data.images.read_image` reads the DICOM with pydicom, applies the modality LUT
   (RescaleSlope / RescaleIntercept) and inverts MONOCHROME1 images so that bright = dense (a JPEG of
   the Kaggle re-release is read as it is stored, bright = dense).
2. The crop is min–max normalised to the float range [0, 255] (computed in float64, so 8-, 12- and
   16-bit inputs of the same content give the same result; no quantisation to 8 bits).
3. :func:`square_stretch` resizes the rectangular crop to ``size × size`` in one step, which is the
   paper's "stretch the smaller side to make the ROI square, then resize to 299 × 299".
4. Bicubic overshoot is clipped back to [0, 255], the grey channel is copied to three channels, and
   ``keras.applications.inception_resnet_v2.preprocess_input`` maps [0, 255] to [-1, 1].

Two steps the paper leaves open are assumptions here: the per-ROI min–max scaling of step 2, and the
resize filter of step 3. The paper's "inter-cubic interpolation" suggests OpenCV's ``INTER_CUBIC``,
which samples the cubic kernel at the output grid and does not low-pass when shrinking, so a speck a
pixel or two wide survives or vanishes depending on where it falls (aliasing). The default here is
antialiased bicubic, ``tf.image.resize(method="bicubic", antialias=True)``: the Keys cubic kernel
(a = -0.5) widened when downscaling, so every speck contributes in proportion to its area; it agrees
with Pillow's ``Image.resize(..., BICUBIC)`` to within about 0.005 grey levels on the 0–255 scale.
``PreprocessConfig(antialias=False)`` gives the point-sampled cubic instead (like ``INTER_CUBIC``, with
TensorFlow's a = -0.5 where OpenCV uses -0.75); :func:`speck_contrast` measures what each does to
sub-millimetre specks. Other ``tf.image.resize`` methods can be chosen through
:class:`PreprocessConfig.interpolation`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mcalc.data.images import read_image
from mcalc.errors import DataError
from mcalc.paper import IMAGE_SIZE

if TYPE_CHECKING:
    import pandas as pd

#: Interpolation methods accepted by :class:`PreprocessConfig` (names of ``tf.image.resize`` methods).
INTERPOLATIONS = (
    "bicubic",
    "bilinear",
    "nearest",
    "lanczos3",
    "lanczos5",
    "area",
    "mitchellcubic",
    "gaussian",
)
#: Smallest input size InceptionResNetV2 accepts (Keras' ``include_top=False`` minimum).
MIN_IMAGE_SIZE = 75
#: Version of the preprocessing recipe; bump it when the steps change so cached features are rebuilt.
PREPROCESS_VERSION = 1
#: Pixel size of the DDSM film digitisers (42–50 µm), used to express speck widths in millimetres.
DDSM_PIXEL_MM = 0.05


@dataclass
class PreprocessConfig:
    """How a ROI is turned into a network input: output side length, interpolation method, antialiasing."""

    image_size: int = IMAGE_SIZE
    interpolation: str = "bicubic"
    antialias: bool = (
        True  # False: point-sampled like OpenCV's INTER_CUBIC (aliases when shrinking)
    )

    def __post_init__(self) -> None:
        """Validate the size and interpolation name."""
        if int(self.image_size) != self.image_size or self.image_size < 1:
            raise ValueError(f"image_size must be a positive integer, got {self.image_size!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"unknown interpolation {self.interpolation!r}; valid: {', '.join(INTERPOLATIONS)}"
            )

    def key(self) -> str:
        """Stable string identifying this configuration (used in cache keys; the default antialias is implied)."""
        items = {k: v for k, v in asdict(self).items() if not (k == "antialias" and v)}
        fields = ";".join(f"{k}={v}" for k, v in sorted(items.items()))
        return f"preprocess-v{PREPROCESS_VERSION};{fields}"


def normalize_intensity(img: np.ndarray) -> np.ndarray:
    """Min–max normalise a 2-D image to float32 [0, 255] (float64 arithmetic; constant → DataError)."""
    arr = np.asarray(img, dtype=np.float64)
    if arr.ndim != 2 or arr.size == 0:
        raise DataError(f"ROI image must be a non-empty 2-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DataError("ROI image contains non-finite values")
    lo, hi = float(arr.min()), float(arr.max())
    if hi == lo:
        raise DataError(f"ROI image is constant (every pixel = {lo:g}); cannot normalise")
    return ((arr - lo) * (255.0 / (hi - lo))).astype(np.float32)


def square_stretch(
    img: np.ndarray, size: int, interpolation: str = "bicubic", antialias: bool = True
) -> np.ndarray:
    """Resize a rectangular 2-D crop to ``size × size`` (stretching the shorter side), float32."""
    import tensorflow as tf

    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim != 2 or arr.size == 0:
        raise DataError(f"ROI image must be a non-empty 2-D array, got shape {arr.shape}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"unknown interpolation {interpolation!r}; valid: {', '.join(INTERPOLATIONS)}"
        )
    with tf.device(
        "/CPU:0"
    ):  # preprocessing runs on CPU threads while an accelerator runs the backbone
        out = tf.image.resize(
            arr[..., None], (int(size), int(size)), method=interpolation, antialias=antialias
        )
    return out.numpy()[..., 0].astype(np.float32)


def preprocess_roi(img: np.ndarray, config: PreprocessConfig | None = None) -> np.ndarray:
    """Turn a 2-D ROI into the network input: float32 ``(size, size, 3)`` in [-1, 1]."""
    from keras.applications.inception_resnet_v2 import preprocess_input

    config = config or PreprocessConfig()
    grey = normalize_intensity(img)
    resized = np.clip(
        square_stretch(grey, config.image_size, config.interpolation, config.antialias), 0.0, 255.0
    )
    rgb = np.repeat(resized[..., None], 3, axis=-1)
    return np.asarray(preprocess_input(rgb), dtype=np.float32)


def load_roi(path: str | Path, config: PreprocessConfig | None = None) -> np.ndarray:
    """Read a ROI image (DICOM or JPEG) and preprocess it for the network (float32 ``(size, size, 3)``)."""
    img = read_image(path)
    try:
        return preprocess_roi(img, config)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


def resize_for_display(
    img: np.ndarray, size: int = IMAGE_SIZE, interpolation: str = "bicubic", antialias: bool = True
) -> np.ndarray:
    """One-channel ``size × size`` version of a ROI for display (Figure 1c, 1d), float32 in [0, 1]."""
    grey = normalize_intensity(img)
    resized = square_stretch(grey, size, interpolation, antialias)
    return (np.clip(resized, 0.0, 255.0) / 255.0).astype(np.float32)


def speck_contrast(
    widths_px: tuple[int, ...] = (1, 2, 4, 8),
    roi_side: int = 1000,
    size: int = IMAGE_SIZE,
    offsets: int = 8,
    pixel_mm: float = DDSM_PIXEL_MM,
) -> pd.DataFrame:
    """Peak of a unit square speck after resizing a ``roi_side`` ROI to ``size``, per filter, over sub-pixel positions.

    A speck ``w`` pixels wide on a zero background is placed at ``offsets`` positions spread over one
    output pixel; the table gives the smallest and largest peak each filter leaves (1 = the speck's
    full brightness) and their ratio. An antialiased filter keeps the peak near the speck's area share
    wherever it falls; a point-sampled one keeps or drops it depending on the position (aliasing).
    """
    import pandas as pd

    step = roi_side / size
    rows = []
    for w in widths_px:
        for antialias, name in (
            (True, "antialiased bicubic (default)"),
            (False, "point-sampled cubic (INTER_CUBIC-like)"),
        ):
            peaks = []
            for k in range(offsets):
                img = np.zeros((roi_side, roi_side), np.float32)
                start = int(roi_side // 2 + round(k * step / offsets))
                img[start : start + w, start : start + w] = 1.0
                peaks.append(float(square_stretch(img, size, "bicubic", antialias).max()))
            rows.append(
                {
                    "speck width (px)": w,
                    "speck width (mm)": round(w * pixel_mm, 3),
                    "filter": name,
                    "smallest peak": min(peaks),
                    "largest peak": max(peaks),
                    "largest / smallest": max(peaks) / min(peaks)
                    if min(peaks) > 0
                    else float("inf"),
                }
            )
    return pd.DataFrame(rows)
