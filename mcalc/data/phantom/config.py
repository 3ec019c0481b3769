"""The phantom's settings, its fixed names and sizes, and the calibration it samples from."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mcalc.data import kaggle
from mcalc.data.calibration import derive_calibration

__all__ = [
    "PHANTOM_VERSION",
    "CSV_NAMES",
    "CSV_HEADER",
    "SPLIT_PREFIX",
    "DICOM_ROOT",
    "QUIRK_KINDS",
    "QUIRK_COLUMNS",
    "LAYOUTS",
    "OWNED_NAMES",
    "FULL_ASPECT",
    "MAX_SCALE",
    "PhantomConfig",
    "PhantomSummary",
    "load_calibration",
    "load_structure",
]

PHANTOM_VERSION = "1.1"
CSV_NAMES = {
    "train": "calc_case_description_train_set.csv",
    "test": "calc_case_description_test_set.csv",
}
CSV_HEADER = [
    "patient_id",
    "breast density",
    "left or right breast",
    "image view",
    "abnormality id",
    "abnormality type",
    "calc type",
    "calc distribution",
    "assessment",
    "pathology",
    "subtlety",
    "image file path",
    "cropped image file path",
    "ROI mask file path",
]
SPLIT_PREFIX = {"train": "Calc-Training", "test": "Calc-Test"}
DICOM_ROOT = "CBIS-DDSM"
QUIRK_KINDS = ("crop_mask_swapped", "truncated_dicom", "not_dicom", "missing_file")
QUIRK_COLUMNS = ["roi_id", "kind", "role", "file", "detail"]
LAYOUTS = ("uid", "nbia", kaggle.LAYOUT)
OWNED_NAMES = (
    DICOM_ROOT,
    *CSV_NAMES.values(),
    "phantom.json",
    "quirks.csv",
    kaggle.CSV_FOLDER,
    kaggle.JPEG_FOLDER,
)
FULL_ASPECT = 5.0 / 3.0  # height / width of a DDSM mammogram (~3000 x 5000 px)
MAX_SCALE = 10.0  # ten times the real CBIS-DDSM calc sizes (~13 GB at the default resolution)


@dataclass
class PhantomConfig:
    """Settings of the phantom.

    scale: fraction of the real CBIS-DDSM calc sizes (1 = 1546 train + 326 test ROIs); each split x
        pathology gets round(scale x real count) ROIs, at least one.
    seed: master seed; every patient gets its own child seed, so output is order-independent.
    layout: "uid" (the CSV's UID folders), "nbia" (the NBIA downloader's descriptive folders) or
        "kaggle-jpeg" (the Kaggle re-release: csv/ with dicom_info.csv, jpeg/<series UID>/1-N.jpg,
        8-bit lossy JPEGs written by Pillow).
    quirk_fraction: fraction of ROIs hit by an injected download fault (at least one of each kind
        when there are >= 20 ROIs and the fraction is > 0; 0 disables them).
    full_width_px: width of the full mammogram (height = 5/3 of it).
    full_pixel_spacing_mm: pixel spacing of the full mammogram (real: ~0.05 mm; coarser for speed).
    crop_pixel_spacing_mm: pixel spacing of the cropped ROI; must divide full_pixel_spacing_mm.
    workers: rendering processes (1 = in this process).
    spelling_variants: write LUCENT_CENTERED for part of LUCENT_CENTER lesions, as often as the real
        table of the split does.
    """

    scale: float = 1.0
    seed: int = 0
    layout: str = "uid"
    quirk_fraction: float = 0.01
    full_width_px: int = 360
    full_pixel_spacing_mm: float = 0.4
    crop_pixel_spacing_mm: float = 0.05
    workers: int = 2
    spelling_variants: bool = True

    def __post_init__(self) -> None:
        """Validate the settings."""
        if not (math.isfinite(self.scale) and 0 < self.scale <= MAX_SCALE):
            raise ValueError(
                f"scale must be a number > 0 and <= {MAX_SCALE:g} (1 = the real CBIS-DDSM calc sizes), "
                f"got {self.scale}"
            )
        if int(self.seed) != self.seed or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if not 0 <= self.quirk_fraction <= 0.25:
            raise ValueError(f"quirk_fraction must be in [0, 0.25], got {self.quirk_fraction}")
        if self.full_width_px < 64:
            raise ValueError(f"full_width_px must be >= 64, got {self.full_width_px}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        ratio = self.full_pixel_spacing_mm / self.crop_pixel_spacing_mm
        if self.crop_pixel_spacing_mm <= 0 or abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
            raise ValueError(
                "full_pixel_spacing_mm must be an integer multiple of crop_pixel_spacing_mm, "
                f"got {self.full_pixel_spacing_mm} / {self.crop_pixel_spacing_mm}"
            )

    @property
    def factor(self) -> int:
        """Crop pixels per full-image pixel along each axis."""
        return int(round(self.full_pixel_spacing_mm / self.crop_pixel_spacing_mm))

    @property
    def full_shape(self) -> tuple[int, int]:
        """(rows, columns) of a full mammogram."""
        return int(round(self.full_width_px * FULL_ASPECT)), self.full_width_px


@dataclass
class PhantomSummary:
    """What generate_phantom wrote."""

    out: Path
    counts: pd.DataFrame  # ROIs, index split, columns CLASSES
    n_patients: dict[str, int]
    n_images: int
    n_rois: int
    quirks: pd.DataFrame = field(repr=False)
    elapsed_s: float = 0.0

    def __str__(self) -> str:
        """A short human-readable account."""
        lines = [
            f"phantom in {self.out}: {self.n_rois} ROIs, {self.n_images} full images, "
            f"patients {self.n_patients}, {len(self.quirks)} quirk rows, {self.elapsed_s:.1f} s"
        ]
        lines.append(self.counts.to_string())
        return "\n".join(lines)


@functools.lru_cache(maxsize=1)
def _shipped_calibration() -> tuple[pd.DataFrame, str]:
    """The calibration of the shipped tables, derived once per process (package data never changes)."""
    counts, info = derive_calibration()
    return counts, json.dumps(info)


def load_calibration() -> pd.DataFrame:
    """The joint descriptor counts (split, pathology, calc_type, ..., density, count) of the shipped real tables."""
    return _shipped_calibration()[0].copy()


def load_structure() -> dict:
    """The structure statistics (patients, lesions per breast, both-view fraction, ...) of the shipped real tables."""
    return json.loads(_shipped_calibration()[1])
