"""Offline CBIS-DDSM-shaped phantom: the study's embedded default data set.

No CBIS-DDSM image can be downloaded offline, so mcalc generates a stand-in with the layout of a
real download: the official calcification case-description CSVs at the top of a folder, and below
``CBIS-DDSM/`` one DICOM file per full mammogram and one cropped ROI plus one ROI mask per
abnormality, together with ``phantom.json`` (generator version, configuration, seed; it marks the
folder as a phantom) and ``quirks.csv`` (the download faults injected on purpose).

Sizes and descriptors are sampled from figures derived from the real tables shipped with mcalc
(``mcalc/data/calc_case_description_{train,test}_set.csv``; see :mod:`mcalc.data.calibration`):
split x pathology x calc type x distribution x assessment x subtlety x density, and per split and
pathology the real patients' layouts (breasts, lesions seen in both CC and MLO or in one view), so that
ROIs cluster into patients per class as in the real tables. ``scale=1`` gives the real sizes (1546 +
326 ROIs) and the real numbers of patients and lesions per split and class.

Pixels depend on the rendering descriptors only (calc type, calc distribution, subtlety, breast
density, view): pathology and assessment never reach the renderer, so any class information in the
images comes through the descriptors, as in real data. The parenchyma is power-law (1/f^beta, beta=3)
noise whose glandular fraction grows with density; calcifications are drawn as spheres, shells and
capsules whose size, count and arrangement follow the BI-RADS calc type and distribution, with a
contrast set by subtlety. Every lesion is defined in millimetres and drawn twice: on the fine grid of
its crop and, block-averaged, on the coarse grid of the full image, so both agree. A lesion seen in
CC and MLO is the same particle set, rotated and compressed differently.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage
from scipy import fft, ndimage, special
from scipy.spatial import ConvexHull
from skimage.draw import polygon as draw_polygon
from tqdm.auto import tqdm

from mcalc import __version__
from mcalc.data import kaggle
from mcalc.data.calibration import derive_calibration, parse_layout
from mcalc.errors import DataError
from mcalc.records.fsio import LOCK_NAME, exclusive, write_text
from mcalc.study import CLASSES, SPLITS

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

# Intensities in relative attenuation units (0 = air, 1 = the 16-bit maximum).
AIR, FAT, GLAND, PECTORAL = 0.04, 0.30, 0.62, 0.66
GLANDULAR_FRACTION = {1: 0.10, 2: 0.30, 3: 0.55, 4: 0.80}
UNKNOWN_DENSITY_FRACTION = 0.40  # density N/A or out of range (the real tables have a 0)
SUBTLETY_CONTRAST = {1: 0.08, 2: 0.14, 3: 0.22, 4: 0.32, 5: 0.45}
QUANTUM_NOISE = 0.004
MAX_LESION_MM = 33.0  # largest crop side ~ 700 px at 0.05 mm, as on real crops
MIN_LESION_MM = 6.0  # smallest crop side ~ 120 px at 0.05 mm
CHORD_REF_MM = 0.8  # calcium chord length giving 63 % of a particle's weight (Beer-Lambert-like)
FULL_ASPECT = 5.0 / 3.0  # height / width of a DDSM mammogram (~3000 x 5000 px)
MAX_SCALE = 10.0  # ten times the real CBIS-DDSM calc sizes (~13 GB at the default resolution)
# Size estimate: full mammograms per ROI in the real calc tables ((1227 + 284) / 1872), mean bytes of
# a crop at 0.05 mm (measured on the phantom: ~117 kB), bytes of DICOM header per file.
IMAGES_PER_ROI = 0.81
CROP_BYTES_AT_005_MM = 120_000
HEADER_BYTES = 1_000

# Particle array columns: segment start (y, x) and end (y, x) in mm, radius mm, inner-radius ratio
# (shells), weight, soft (1 = Gaussian blob, 0 = solid/shell chord profile).
_Y0, _X0, _Y1, _X1, _R, _INNER, _W, _SOFT = range(8)


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


# --------------------------------------------------------------------------------------------------
# calibration


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


# --------------------------------------------------------------------------------------------------
# parenchyma and breast


def _power_law_noise(
    shape: tuple[int, int], beta: float, rng: np.random.Generator, highpass: float = 0.0
) -> np.ndarray:
    """Zero-mean, unit-variance noise with power spectrum 1/f^beta (f in cycles/pixel), optionally high-passed."""
    white = rng.standard_normal(shape)
    spec = fft.rfft2(white)
    fy = fft.fftfreq(shape[0])[:, None]
    fx = fft.rfftfreq(shape[1])[None, :]
    f = np.sqrt(fy * fy + fx * fx)
    f0 = 1.0 / max(shape)
    amp = (np.maximum(f, f0)) ** (-beta / 2.0)
    amp[f < highpass] = 0.0
    amp[0, 0] = 0.0
    out = fft.irfft2(spec * amp, s=shape)
    sd = out.std()
    return (out / sd if sd > 0 else out).astype(np.float32)


def _glandular_fraction(density: object) -> float:
    """Fibroglandular area fraction for a BI-RADS density (1-4); unknown or out of range -> middle value."""
    try:
        return GLANDULAR_FRACTION[int(density)]
    except (KeyError, TypeError, ValueError):
        return UNKNOWN_DENSITY_FRACTION


def parenchyma(
    shape: tuple[int, int], density: object, rng: np.random.Generator, beta: float = 3.0
) -> np.ndarray:
    """Breast tissue texture in [0, 1]: 1/f^beta noise thresholded to the density's glandular fraction."""
    noise = _power_law_noise(tuple(int(s) for s in shape), beta, rng)
    frac = _glandular_fraction(density)
    threshold = special.ndtri(1.0 - frac)
    gland = special.expit((noise - threshold) / 0.6)
    return (FAT + (GLAND - FAT) * gland).astype(np.float32)


def _breast_image(
    shape: tuple[int, int], density: object, view: str, geom: dict, rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    """Noise-free full mammogram (chest wall at column 0) and the breast outline used for placement."""
    h, w = shape
    tissue = parenchyma(shape, density, rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, ay, ax = geom["cy"] * h, geom["ay"] * h, geom["ax"] * w
    rho = np.sqrt(((yy - cy) / ay) ** 2 + (xx / ax) ** 2)
    thickness = np.sqrt(np.clip(1.0 - rho**2, 0.0, 1.0))
    profile = np.clip(thickness / 0.3, 0.0, 1.0) ** 0.5
    img = AIR + profile * (tissue - AIR)
    outline = {"cy": cy, "ay": ay, "ax": ax, "py": 0.0, "px": 0.0}
    if view == "MLO":
        py, px = geom["py"] * h, geom["px"] * w
        edge = 1.0 - (xx / px + yy / py)
        muscle = special.expit(edge * 25.0) * (rho < 1.0)
        img = img * (1.0 - muscle) + (PECTORAL + 0.02 * (tissue - FAT)) * muscle
        outline.update(py=py, px=px)
    return img.astype(np.float32), outline


# --------------------------------------------------------------------------------------------------
# calcifications


def _split_terms(value: object) -> list[str]:
    """Components of a (compound) calc type or distribution; [] for N/A."""
    text = (
        ""
        if value is None or (isinstance(value, float) and math.isnan(value))
        else str(value).strip()
    )
    if text in ("", "N/A", "NA"):
        return []
    parts = []
    for part in text.split("-"):
        part = "LUCENT_CENTER" if part == "LUCENT_CENTERED" else part
        if part and part not in parts:
            parts.append(part)
    return parts


def _capsule(
    y0: float,
    x0: float,
    y1: float,
    x1: float,
    r: float,
    w: float,
    inner: float = 0.0,
    soft: bool = False,
) -> list[float]:
    """One particle row."""
    return [y0, x0, y1, x1, r, inner, w, 1.0 if soft else 0.0]


def _sphere(
    c: np.ndarray, r: float, w: float, inner: float = 0.0, soft: bool = False
) -> list[float]:
    """A sphere (inner > 0: a shell) centred at c."""
    return _capsule(c[0], c[1], c[0], c[1], r, w, inner, soft)


def _polyline(
    start: np.ndarray,
    angle: float,
    n: int,
    seg: tuple[float, float],
    turn: float,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Vertices of a random polyline starting at start along angle."""
    pts = [np.asarray(start, dtype=float)]
    for _ in range(n):
        angle += rng.normal(0.0, turn)
        length = rng.uniform(*seg)
        pts.append(pts[-1] + length * np.array([math.sin(angle), math.cos(angle)]))
    return pts


def _element(
    kind: str, c: np.ndarray, theta: float, view: str, rng: np.random.Generator
) -> list[list[float]]:
    """Particles of one calcification of a BI-RADS type centred at c (mm); theta = lesion orientation."""
    u = rng.uniform(size=8)  # fixed draw count for view-dependent shapes (both views stay aligned)
    if kind == "PUNCTATE":
        return [_sphere(c, 0.10 + 0.15 * u[0], 1.0)]
    if kind == "ROUND_AND_REGULAR":
        return [_sphere(c, 0.25 + 0.35 * u[0], 1.0)]
    if kind == "AMORPHOUS":
        return [_sphere(c, 0.08 + 0.08 * u[0], 0.45, soft=True)]
    if kind == "PLEOMORPHIC":
        out = []
        for i in range(1 + int(u[0] * 3)):
            a = rng.uniform(0, 2 * math.pi)
            length = rng.uniform(0.0, 0.45)
            off = rng.normal(0.0, 0.12, size=2)
            p0 = c + off
            p1 = p0 + length * np.array([math.sin(a), math.cos(a)])
            out.append(
                _capsule(p0[0], p0[1], p1[0], p1[1], rng.uniform(0.07, 0.25), 0.7 + 0.4 * u[1 + i])
            )
        return out
    if kind == "FINE_LINEAR_BRANCHING":
        r = 0.05 + 0.05 * u[0]
        pts = _polyline(c, theta + rng.normal(0, 0.4), 3 + int(u[1] * 4), (0.4, 1.0), 0.35, rng)
        out = [_capsule(a[0], a[1], b[0], b[1], r, 1.4) for a, b in zip(pts[:-1], pts[1:])]
        if u[2] < 0.6:
            side = _polyline(
                pts[len(pts) // 2], theta + rng.choice([-0.7, 0.7]), 2, (0.4, 0.8), 0.3, rng
            )
            out += [_capsule(a[0], a[1], b[0], b[1], r, 1.4) for a, b in zip(side[:-1], side[1:])]
        return out
    if kind == "VASCULAR":
        sep, r = 0.8 + 0.8 * u[0], 0.08 + 0.07 * u[1]
        n = 8 + int(u[2] * 6)
        pts = _polyline(
            c - 0.5 * n * 1.5 * np.array([math.sin(theta), math.cos(theta)]),
            theta,
            n,
            (1.0, 2.0),
            0.1,
            rng,
        )
        out = []
        for a, b in zip(pts[:-1], pts[1:]):
            d = (b - a) / max(1e-9, float(np.hypot(*(b - a))))
            normal = np.array([-d[1], d[0]]) * sep / 2
            for s in (-1, 1):
                out.append(
                    _capsule(
                        a[0] + s * normal[0],
                        a[1] + s * normal[1],
                        b[0] + s * normal[0],
                        b[1] + s * normal[1],
                        r,
                        0.8,
                    )
                )
        return out
    if kind == "LUCENT_CENTER":
        return [_sphere(c, 0.4 + 0.8 * u[0], 1.0, inner=0.7)]
    if kind == "EGGSHELL":
        return [_sphere(c, 1.5 + 2.5 * u[0], 1.0, inner=0.88)]
    if kind == "COARSE":
        return [
            _sphere(c + rng.normal(0, 0.6, size=2), rng.uniform(0.4, 0.9), 1.1)
            for _ in range(4 + int(u[0] * 4))
        ]
    if kind == "DYSTROPHIC":
        out = [_sphere(c, 1.0 + u[0], 1.0, inner=0.7)]
        for _ in range(2 + int(u[1] * 3)):
            a = rng.uniform(0, 2 * math.pi)
            p0 = c + rng.normal(0, 0.8, size=2)
            p1 = p0 + rng.uniform(0.5, 2.0) * np.array([math.sin(a), math.cos(a)])
            out.append(_capsule(p0[0], p0[1], p1[0], p1[1], rng.uniform(0.3, 0.7), 1.1))
        return out
    if kind == "LARGE_RODLIKE":
        a = theta + 0.25 * (u[0] - 0.5) * 2
        half = 0.5 * (3.0 + 5.0 * u[1]) * np.array([math.sin(a), math.cos(a)])
        return [
            _capsule(
                c[0] - half[0],
                c[1] - half[1],
                c[0] + half[0],
                c[1] + half[1],
                0.3 + 0.3 * u[2],
                1.2,
            )
        ]
    if kind == "MILK_OF_CALCIUM":
        if view == "MLO":  # tea-cup: a horizontal sediment line
            half = 0.4 + 0.4 * u[0]
            return [_capsule(c[0], c[1] - half, c[0], c[1] + half, 0.15 + 0.15 * u[1], 1.0)]
        return [_sphere(c, 0.4 + 0.5 * u[0], 0.5, soft=True)]  # CC: round smudge
    if kind == "SKIN":
        return [_sphere(c, 0.3 + 0.5 * u[0], 0.9, inner=0.65)]
    return [_sphere(c, 0.1 + 0.35 * u[0], 0.9)]  # unspecified type


ELEMENT_COUNT = {
    "PUNCTATE": (6, 16),
    "ROUND_AND_REGULAR": (3, 10),
    "AMORPHOUS": (10, 25),
    "PLEOMORPHIC": (6, 18),
    "FINE_LINEAR_BRANCHING": (2, 5),
    "VASCULAR": (1, 2),
    "LUCENT_CENTER": (2, 7),
    "EGGSHELL": (1, 3),
    "COARSE": (1, 3),
    "DYSTROPHIC": (1, 3),
    "LARGE_RODLIKE": (2, 6),
    "MILK_OF_CALCIUM": (3, 8),
    "SKIN": (3, 8),
    "": (3, 10),
}
DISTRIBUTION_COUNT = {
    "CLUSTERED": 1.0,
    "LINEAR": 1.0,
    "SEGMENTAL": 1.5,
    "REGIONAL": 2.0,
    "DIFFUSELY_SCATTERED": 1.5,
    "": 0.8,
}


def _arrangement(kind: str, n: int, theta: float, rng: np.random.Generator) -> np.ndarray:
    """Centres (n x 2, mm) of n calcifications arranged per a BI-RADS distribution, orientation theta."""
    if kind == "CLUSTERED":
        rad = rng.uniform(2.5, 7.0)
        r, a = rad * np.sqrt(rng.uniform(size=n)), rng.uniform(0, 2 * np.pi, n)
        local = np.c_[r * np.sin(a), r * np.cos(a)]
    elif kind == "LINEAR":
        length = rng.uniform(8.0, 18.0)
        local = np.c_[rng.normal(0.0, 0.4, n), rng.uniform(-length / 2, length / 2, n)]
    elif kind == "SEGMENTAL":
        length, half = rng.uniform(14.0, 26.0), rng.uniform(0.25, 0.45)
        t, a = length * np.sqrt(rng.uniform(size=n)), rng.uniform(-half, half, n)
        local = np.c_[t * np.sin(a), t * np.cos(a) - length / 2]
    elif kind in ("REGIONAL", "DIFFUSELY_SCATTERED"):
        big, small = (
            ((9.0, 14.0), (6.0, 10.0)) if kind == "REGIONAL" else ((12.0, 15.0), (10.0, 14.0))
        )
        a_ax, b_ax = rng.uniform(*big), rng.uniform(*small)
        r, a = np.sqrt(rng.uniform(size=n)), rng.uniform(0, 2 * np.pi, n)
        local = np.c_[b_ax * r * np.sin(a), a_ax * r * np.cos(a)]
    else:  # unspecified: a small group
        rad = rng.uniform(1.5, 5.0)
        r, a = rad * np.sqrt(rng.uniform(size=n)), rng.uniform(0, 2 * np.pi, n)
        local = np.c_[r * np.sin(a), r * np.cos(a)]
    rot = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
    return local @ rot


def lesion_particles(descriptor: dict, rng: np.random.Generator, view: str = "CC") -> np.ndarray:
    """Particles (N x 8, mm, centred on the lesion) for the descriptor's calc type and distribution."""
    types = _split_terms(descriptor.get("calc_type")) or [""]
    dists = _split_terms(descriptor.get("calc_distribution")) or [""]
    theta = rng.uniform(0, 2 * np.pi)
    share = 1.0 if len(types) == 1 else 0.65
    dist_mult = float(np.mean([DISTRIBUTION_COUNT.get(d, 1.0) for d in dists]))
    kinds: list[str] = []
    for kind in types:
        lo, hi = ELEMENT_COUNT.get(kind, ELEMENT_COUNT[""])
        kinds += [kind] * max(1, int(round(rng.integers(lo, hi + 1) * share * dist_mult)))
    which = rng.integers(0, len(dists), len(kinds))
    centres = np.zeros((len(kinds), 2))
    for di, dist in enumerate(dists):  # one arrangement per distribution, shared by all types
        idx = np.flatnonzero(which == di)
        if len(idx):
            centres[idx] = _arrangement(dist, len(idx), theta, rng)
    rows: list[list[float]] = []
    for kind, centre in zip(kinds, centres):
        rows += _element(kind, centre, theta, view, rng)
    parts = np.asarray(rows, dtype=float)
    # centre the lesion on its bounding box and keep it within the crop-size range of real ROIs
    lo_pt, hi_pt = _extent(parts)
    mid = (lo_pt + hi_pt) / 2
    parts[:, [_Y0, _Y1]] -= mid[0]
    parts[:, [_X0, _X1]] -= mid[1]
    size = float(np.max(hi_pt - lo_pt))
    limit = MAX_LESION_MM - 2 * _margin(size)
    if size > limit:
        parts = _shrink(parts, limit / size)
    return parts


def _extent(parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box (min (y, x), max (y, x)) in mm of all particles including their radius."""
    pad = parts[:, _R] * np.where(parts[:, _SOFT] > 0, 2.5, 1.0)
    ys = np.r_[parts[:, _Y0] - pad, parts[:, _Y1] - pad, parts[:, _Y0] + pad, parts[:, _Y1] + pad]
    xs = np.r_[parts[:, _X0] - pad, parts[:, _X1] - pad, parts[:, _X0] + pad, parts[:, _X1] + pad]
    return np.array([ys.min(), xs.min()]), np.array([ys.max(), xs.max()])


def _shrink(parts: np.ndarray, factor: float) -> np.ndarray:
    """Move the particles towards the lesion centre by factor, keeping each particle's own shape."""
    out = parts.copy()
    mid = (parts[:, [_Y0, _X0]] + parts[:, [_Y1, _X1]]) / 2
    new_mid = mid * factor
    out[:, [_Y0, _X0]] += new_mid - mid
    out[:, [_Y1, _X1]] += new_mid - mid
    return out


def _margin(size_mm: float) -> float:
    """Mask margin (mm) around the particles: 1.5 mm, more for lesions smaller than MIN_LESION_MM."""
    return max(1.5, (MIN_LESION_MM - size_mm) / 2 + 0.5)


def _other_view(parts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same lesion seen in the other view: rotated and compressed differently."""
    angle = rng.normal(0.0, 0.3)
    squeeze = rng.uniform(0.85, 1.15)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    mat = rot @ np.diag([squeeze, 1.0 / squeeze])
    out = parts.copy()
    out[:, [_Y0, _X0]] = parts[:, [_Y0, _X0]] @ mat.T
    out[:, [_Y1, _X1]] = parts[:, [_Y1, _X1]] @ mat.T
    return out


def _draw_particles(
    shape: tuple[int, int], origin_mm: tuple[float, float], spacing: float, parts: np.ndarray
) -> np.ndarray:
    """Attenuation layer of the particles on a grid whose pixel (0, 0) starts at origin_mm (y, x)."""
    layer = np.zeros(shape, dtype=np.float32)
    oy, ox = origin_mm
    for p in parts:
        r = p[_R]
        reach = r * (3.0 if p[_SOFT] else 1.0) + spacing
        i0 = max(0, int(math.floor((min(p[_Y0], p[_Y1]) - reach - oy) / spacing)))
        i1 = min(shape[0], int(math.ceil((max(p[_Y0], p[_Y1]) + reach - oy) / spacing)))
        j0 = max(0, int(math.floor((min(p[_X0], p[_X1]) - reach - ox) / spacing)))
        j1 = min(shape[1], int(math.ceil((max(p[_X0], p[_X1]) + reach - ox) / spacing)))
        if i0 >= i1 or j0 >= j1:
            continue
        yy = (oy + (np.arange(i0, i1) + 0.5) * spacing)[:, None]
        xx = (ox + (np.arange(j0, j1) + 0.5) * spacing)[None, :]
        dy, dx = p[_Y1] - p[_Y0], p[_X1] - p[_X0]
        seg2 = dy * dy + dx * dx
        if seg2 > 0:
            t = np.clip(((yy - p[_Y0]) * dy + (xx - p[_X0]) * dx) / seg2, 0.0, 1.0)
        else:
            t = 0.0
        d2 = (yy - (p[_Y0] + t * dy)) ** 2 + (xx - (p[_X0] + t * dx)) ** 2
        if p[_SOFT]:
            val = p[_W] * np.exp(-d2 / (2 * r * r))
        else:
            chord = 2 * np.sqrt(np.maximum(r * r - d2, 0.0))
            if p[_INNER] > 0:
                ri = r * p[_INNER]
                chord = chord - 2 * np.sqrt(np.maximum(ri * ri - d2, 0.0))
            val = p[_W] * (1.0 - np.exp(-chord / CHORD_REF_MM))
        layer[i0:i1, j0:j1] += val.astype(np.float32)
    return layer


def _contrast(subtlety: object) -> float:
    """Calcification contrast for a subtlety rating (1 = faint ... 5 = obvious)."""
    try:
        return SUBTLETY_CONTRAST[int(subtlety)]
    except (KeyError, TypeError, ValueError):
        raise DataError(f"subtlety must be an integer 1-5, got {subtlety!r}") from None


def _mask_polygon(parts: np.ndarray, centre_mm: np.ndarray) -> np.ndarray:
    """Convex outline (K x 2, mm, absolute) covering all particles plus a margin."""
    lo, hi = _extent(parts)
    margin = _margin(float(np.max(hi - lo)))
    ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    ring = np.c_[np.sin(ang), np.cos(ang)]
    pad = (parts[:, _R] * np.where(parts[:, _SOFT] > 0, 2.5, 1.0) + margin)[:, None, None]
    ends = np.stack([parts[:, [_Y0, _X0]], parts[:, [_Y1, _X1]]], axis=1)  # N x 2 x 2
    pts = (ends[:, :, None, :] + pad[:, :, :, None] * ring[None, None, :, :]).reshape(
        -1, 2
    ) + centre_mm
    hull = ConvexHull(pts)
    return pts[hull.vertices]


def _rasterise(poly_mm: np.ndarray, shape: tuple[int, int], spacing: float) -> np.ndarray:
    """Binary mask of a polygon (mm) on a grid whose pixel (i, j) spans [i, i+1) x spacing."""
    rows, cols = draw_polygon(poly_mm[:, 0] / spacing - 0.5, poly_mm[:, 1] / spacing - 0.5, shape)
    mask = np.zeros(shape, dtype=bool)
    mask[rows, cols] = True
    return mask


def _band_detail(
    shape: tuple[int, int], factor: int, full_rows: int, rng: np.random.Generator
) -> np.ndarray:
    """Fine-scale parenchyma detail: the 1/f^3 band between the full image's and the crop's Nyquist."""
    if factor <= 1:
        return np.zeros(shape, dtype=np.float32)
    noise = _power_law_noise(shape, 3.0, rng, highpass=0.5 / factor)
    # variance of a 1/f^3 band [f1, f2] in 2-D ~ 1/f1 - 1/f2: band ratio fine / full image
    f0, f1, f2 = 1.0 / full_rows, 0.5, 0.5 * factor  # cycles per full pixel
    ratio = (1 / f1 - 1 / f2) / (1 / f0 - 1 / f1)
    return (noise * 0.5 * (GLAND - FAT) * math.sqrt(ratio)).astype(np.float32)


def _compose_crop(
    background: np.ndarray,
    bbox: tuple[int, int, int, int],
    factor: int,
    spacing: float,
    parts: np.ndarray,
    contrast: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(crop in [0, 1] on the fine grid, lesion layer block-averaged to the full grid) for bbox r0, r1, c0, c1."""
    r0, r1, c0, c1 = bbox
    pad = 2
    region = np.pad(background, pad, mode="edge")[r0 : r1 + 2 * pad, c0 : c1 + 2 * pad]
    up = ndimage.zoom(region, factor, order=3, grid_mode=True, mode="nearest")
    up = up[pad * factor : (pad + r1 - r0) * factor, pad * factor : (pad + c1 - c0) * factor]
    shape = up.shape
    full_spacing = spacing * factor
    lesion = _draw_particles(shape, (r0 * full_spacing, c0 * full_spacing), spacing, parts)
    lesion = ndimage.gaussian_filter(lesion, 0.7) * contrast
    detail = _band_detail(shape, factor, background.shape[0], rng)
    crop = up + detail + lesion + rng.normal(0.0, QUANTUM_NOISE, shape).astype(np.float32)
    coarse = lesion.reshape(r1 - r0, factor, c1 - c0, factor).mean(axis=(1, 3))
    return crop.astype(np.float32), coarse.astype(np.float32)


def _to_uint16(img: np.ndarray) -> np.ndarray:
    """Relative attenuation [0, 1] -> 16-bit pixel values."""
    return np.round(np.clip(img, 0.0, 1.0) * 65535.0).astype(np.uint16)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(r0, r1, c0, c1), end-exclusive, of the True pixels."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def render_roi(
    descriptor: dict,
    rng: np.random.Generator,
    crop_pixel_spacing_mm: float = 0.05,
    full_pixel_spacing_mm: float = 0.4,
) -> np.ndarray:
    """Cropped ROI (uint16) of one abnormality from its descriptors alone (calc type, distribution, subtlety, density, view).

    Pathology, assessment and any other key of the descriptor are ignored.
    """
    factor = int(round(full_pixel_spacing_mm / crop_pixel_spacing_mm))
    view = str(descriptor.get("view", "CC"))
    contrast = _contrast(descriptor.get("subtlety"))
    parts = lesion_particles(descriptor, np.random.default_rng(int(rng.integers(0, 2**63))), view)
    lo, hi = _extent(parts)
    size = float(np.max(hi - lo))
    side = int(math.ceil((size + 2 * _margin(size)) / full_pixel_spacing_mm)) + 16
    centre = np.array([side, side]) * full_pixel_spacing_mm / 2
    background = parenchyma((side, side), descriptor.get("density"), rng)
    mask = _rasterise(_mask_polygon(parts, centre), (side, side), full_pixel_spacing_mm)
    shifted = parts.copy()
    shifted[:, [_Y0, _Y1]] += centre[0]
    shifted[:, [_X0, _X1]] += centre[1]
    crop, _ = _compose_crop(
        background, _bbox(mask), factor, crop_pixel_spacing_mm, shifted, contrast, rng
    )
    return _to_uint16(crop)


# --------------------------------------------------------------------------------------------------
# planning: patients, breasts, lesions, ROIs, file names


def _sample_distribution(dist: dict[str, int], rng: np.random.Generator) -> int:
    """One draw from a {value: count} histogram."""
    values = np.array([int(k) for k in dist])
    weights = np.array(list(dist.values()), dtype=float)
    return int(rng.choice(values, p=weights / weights.sum()))


def _target_counts(calibration: pd.DataFrame, scale: float) -> dict[tuple[str, str], int]:
    """ROIs per (split, pathology): round(scale x real), at least 1."""
    real = calibration.groupby(["split", "pathology"])["count"].sum()
    return {
        (s, p): max(1, int(round(scale * int(real.get((s, p), 0)))))
        for s in SPLITS
        for p in CLASSES
    }


#: Descriptors that tell two lesions of one breast apart (as :mod:`mcalc.data.calibration` matches views).
_LESION_KEY = ("calc_type", "calc_distribution", "assessment", "subtlety")


def _draw_layouts(
    layouts: dict[str, int], target: int, rng: np.random.Generator
) -> list[list[list[int]]]:
    """Real patient layouts of one split x class, in random order (reshuffled when used up), until
    they hold ``target`` ROIs; the last one trimmed to the exact count (breasts as [pairs, CC, MLO])."""
    pool = [key for key, n in layouts.items() for _ in range(int(n))]
    chosen: list[list[list[int]]] = []
    total, order = 0, []
    while total < target:
        if not order:
            order = [int(i) for i in rng.permutation(len(pool))]
        breasts = [list(b) for b in parse_layout(pool[order.pop()])]
        chosen.append(breasts)
        total += sum(2 * p + c + m for p, c, m in breasts)
    excess = total - target
    for breast in chosen[-1]:
        for slot in (1, 2, 0):  # CC-only, MLO-only, then a pair becomes an MLO-only lesion
            while excess > 0 and breast[slot] > 0:
                breast[slot] -= 1
                if slot == 0:
                    breast[2] += 1
                excess -= 1
    chosen[-1] = [b for b in chosen[-1] if sum(b)]
    return chosen


def _plan_split(
    split: str,
    calibration: pd.DataFrame,
    stats: dict,
    scale: float,
    rng: np.random.Generator,
    spelling: bool,
) -> list[dict]:
    """Patients (each with breasts, each with lesions) of one split, clustered per class as the real tables.

    Each class's patients are the real tables' patient layouts of that split and class (breasts; in
    each, lesions seen in both views, in CC only, in MLO only), drawn until they hold the class's
    ROIs: at scale 1 every real layout once, so patients, lesions and ROIs per split and class are the
    real ones. A patient's descriptors are drawn from the class's joint counts, the first lesion's
    breast density then holding for the patient's other lesions.
    """
    cal = calibration[calibration["split"] == split]
    targets = _target_counts(calibration, scale)
    patients = []
    for pathology in CLASSES:
        sub = cal[cal["pathology"] == pathology].reset_index(drop=True)
        weights = sub["count"].to_numpy(dtype=float)
        layouts = stats["by_pathology"][pathology]["patient_layouts"]
        for breasts in _draw_layouts(layouts, targets[(split, pathology)], rng):
            density = None
            out_breasts = []
            for pairs, n_cc, n_mlo in breasts:
                views = [("CC", "MLO")] * pairs + [("CC",)] * n_cc + [("MLO",)] * n_mlo
                lesions = []
                for v in views:
                    w = weights if density is None else weights * (sub["density"] == density)
                    w = weights if w.sum() == 0 else w
                    # a single-view lesion never repeats the descriptors of one seen only in the
                    # other view of the breast (the two would read as one lesion in both views)
                    other = {
                        tuple(les[k] for k in _LESION_KEY)
                        for les in lesions
                        if len(v) == 1 and les["views"] not in (v, ("CC", "MLO"))
                    }
                    for _ in range(20):
                        row = sub.iloc[int(rng.choice(len(sub), p=w / w.sum()))]
                        if tuple(row[k] for k in _LESION_KEY) not in other:
                            break
                    density = int(row["density"]) if density is None else density
                    written = row["calc_type"]
                    if (
                        spelling
                        and "LUCENT_CENTER" in written
                        and rng.uniform() < stats["lucent_centered_spelling_fraction"]
                    ):
                        written = written.replace("LUCENT_CENTER", "LUCENT_CENTERED")
                    lesions.append(
                        {
                            "pathology": pathology,
                            "calc_type": row["calc_type"],
                            "calc_type_written": written,
                            "calc_distribution": row["calc_distribution"],
                            "assessment": int(row["assessment"]),
                            "subtlety": int(row["subtlety"]),
                            "density": density,
                            "views": v,
                        }
                    )
                out_breasts.append({"density": density, "lesions": lesions})
            if len(out_breasts) == 2:
                out_breasts[0]["side"], out_breasts[1]["side"] = "LEFT", "RIGHT"
            else:
                for br in out_breasts:
                    br["side"] = "LEFT" if rng.uniform() < 0.5 else "RIGHT"
            patients.append({"split": split, "density": density, "breasts": out_breasts})
    return patients


def _uid(seed: int, *parts: object) -> str:
    """Deterministic DICOM UID (2.25 + a 128-bit hash, like a UUID-derived UID) from the seed and names."""
    text = "\x1f".join([f"mcalc-phantom-{seed}", *map(str, parts)])
    return UID(f"2.25.{int(hashlib.sha256(text.encode()).hexdigest()[:32], 16)}")


def _file_names(config: PhantomConfig, folder: str, kind: str, rng: np.random.Generator) -> dict:
    """CSV path (below CBIS-DDSM/) and on-disk paths of one full image (kind 'full') or ROI (kind 'roi')."""
    study, series = _uid(config.seed, folder, "study"), _uid(config.seed, folder, "series")
    csv_dir = f"{folder}/{study}/{series}"
    if config.layout == "uid":
        disk_dir = f"{DICOM_ROOT}/{csv_dir}"
        names = (
            {"full": "000000.dcm"}
            if kind == "full"
            else {"mask": "000000.dcm", "crop": "000001.dcm"}
        )
    elif config.layout == kaggle.LAYOUT:
        disk_dir, names = kaggle.phantom_names(series, kind)
    else:
        month, day = int(rng.integers(7, 10)), int(rng.integers(1, 29))
        series_name = "full mammogram images" if kind == "full" else "ROI mask images"
        disk_dir = (
            f"{DICOM_ROOT}/{folder}/{month:02d}-{day:02d}-2016-DDSM-NA-{int(rng.integers(10000, 99999))}/"
            f"1.000000-{series_name}-{int(rng.integers(10000, 99999))}"
        )
        names = {"full": "1-1.dcm"} if kind == "full" else {"mask": "1-1.dcm", "crop": "1-2.dcm"}
    out = {"study_uid": study, "series_uid": series}
    if kind == "full":
        out.update(csv_full=f"{csv_dir}/000000.dcm", disk_full=f"{disk_dir}/{names['full']}")
    else:
        out.update(
            csv_crop=f"{csv_dir}/000001.dcm",
            csv_mask=f"{csv_dir}/000000.dcm",
            disk_crop=f"{disk_dir}/{names['crop']}",
            disk_mask=f"{disk_dir}/{names['mask']}",
        )
    return out


def plan_phantom(
    config: PhantomConfig, calibration: pd.DataFrame | None = None, stats: dict | None = None
) -> list[dict]:
    """Every patient of the phantom with breasts, images, ROIs, descriptors, file names and seeds."""
    if calibration is None or stats is None:
        derived = derive_calibration()
        calibration = derived[0] if calibration is None else calibration
        stats = derived[1] if stats is None else stats
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0]))
    patients = []
    for split in SPLITS:
        patients += _plan_split(
            split, calibration, stats["splits"][split], config.scale, rng, config.spelling_variants
        )
    upper = max(
        max(s["patient_number_range"][1] for s in stats["splits"].values()), 2 * len(patients)
    )
    numbers = rng.choice(np.arange(1, upper + 1), size=len(patients), replace=False)
    names_rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
    for patient, number in zip(patients, numbers):
        pid = f"P_{int(number):05d}"
        prefix = SPLIT_PREFIX[patient["split"]]
        patient.update(patient_id=pid, number=int(number))
        images = []
        for bi, breast in enumerate(patient["breasts"]):
            for li, les in enumerate(breast["lesions"]):
                les["key"] = f"{bi}.{li}"
            for view in ("CC", "MLO"):
                visible = [les for les in breast["lesions"] if view in les["views"]]
                if not visible:
                    continue
                folder = f"{prefix}_{pid}_{breast['side']}_{view}"
                image = {
                    "folder": folder,
                    "side": breast["side"],
                    "view": view,
                    "breast": bi,
                    **_file_names(config, folder, "full", names_rng),
                    "rois": [],
                }
                for abn_id, les in enumerate(visible, start=1):
                    roi_id = f"{folder}_{abn_id}"
                    image["rois"].append(
                        {
                            "roi_id": roi_id,
                            "abnormality_id": abn_id,
                            "lesion": les["key"],
                            **_file_names(config, roi_id, "roi", names_rng),
                        }
                    )
                images.append(image)
        patient["images"] = images
    patients.sort(key=lambda p: (SPLITS.index(p["split"]), p["patient_id"]))
    return patients


# --------------------------------------------------------------------------------------------------
# rendering one patient


def _render_descriptor(les: dict) -> dict:
    """The descriptors a renderer may see: never pathology nor assessment."""
    return {
        "calc_type": les["calc_type"],
        "calc_distribution": les["calc_distribution"],
        "subtlety": les["subtlety"],
        "density": les["density"],
    }


def _place(
    radius: float,
    outline: dict,
    spacing: float,
    taken: list[tuple[np.ndarray, float]],
    shape: tuple[int, int],
    rng: np.random.Generator,
) -> np.ndarray:
    """Lesion centre (mm, chest wall at x=0) inside the breast, clear of the muscle and other lesions."""
    h_mm, w_mm = shape[0] * spacing, shape[1] * spacing
    cy, ay, ax = outline["cy"] * spacing, outline["ay"] * spacing, outline["ax"] * spacing
    py, px = outline["py"] * spacing, outline["px"] * spacing
    best = None
    for _attempt in range(400):
        y = rng.uniform(radius + 1, h_mm - radius - 1)
        x = rng.uniform(radius + 2, max(radius + 3, min(w_mm, ax) - radius - 1))
        inside = ((x + radius) / ax) ** 2 + ((abs(y - cy) + radius) / ay) ** 2 <= 0.92**2
        clear_muscle = px == 0 or (x - radius) / px + (y - radius) / py >= 1.05
        clear = all(np.hypot(*(np.array([y, x]) - c)) >= radius + r + 1.0 for c, r in taken)
        if inside and clear_muscle and clear:
            return np.array([y, x])
        if best is None and inside:
            best = np.array([y, x])
    return best if best is not None else np.array([cy, min(ax / 2, w_mm / 2)])


def render_patient(patient: dict, config: PhantomConfig) -> dict[str, tuple[np.ndarray, dict]]:
    """Pixels of every file of one patient: {disk path: (array, DICOM attributes)}; pathology is never read."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 2, patient["number"]]))
    spacing_full, spacing_crop, factor = (
        config.full_pixel_spacing_mm,
        config.crop_pixel_spacing_mm,
        config.factor,
    )
    shape = config.full_shape
    lesions = {les["key"]: les for br in patient["breasts"] for les in br["lesions"]}
    lesion_seed = {key: int(rng.integers(0, 2**63)) for key in sorted(lesions)}
    breast_geom = {}
    for bi in range(len(patient["breasts"])):
        breast_geom[bi] = {
            "cy": rng.uniform(0.45, 0.55),
            "ay": rng.uniform(0.36, 0.46),
            "ax": rng.uniform(0.70, 0.92),
            "py": rng.uniform(0.35, 0.5),
            "px": rng.uniform(0.25, 0.4),
        }
    files: dict[str, tuple[np.ndarray, dict]] = {}
    for image in patient["images"]:
        img_rng = np.random.default_rng(
            np.random.SeedSequence(
                [
                    config.seed,
                    3,
                    patient["number"],
                    image["breast"],
                    ("CC", "MLO").index(image["view"]),
                ]
            )
        )
        geom = dict(breast_geom[image["breast"]])
        geom.update({k: v * img_rng.uniform(0.95, 1.05) for k, v in geom.items()})
        background, outline = _breast_image(shape, patient["density"], image["view"], geom, img_rng)
        placed = []
        taken: list[tuple[np.ndarray, float]] = []
        for roi in image["rois"]:
            les = lesions[roi["lesion"]]
            desc = _render_descriptor(les)
            parts = lesion_particles(
                desc, np.random.default_rng(lesion_seed[roi["lesion"]]), image["view"]
            )
            if image["view"] == "MLO" and "CC" in les["views"]:
                parts = _other_view(parts, np.random.default_rng([lesion_seed[roi["lesion"]], 1]))
            lo, hi = _extent(parts)
            radius = float(np.linalg.norm(np.maximum(np.abs(lo), np.abs(hi)))) + _margin(
                float(np.max(hi - lo))
            )
            centre = _place(radius, outline, spacing_full, taken, shape, img_rng)
            taken.append((centre, radius))
            absolute = parts.copy()
            absolute[:, [_Y0, _Y1]] += centre[0]
            absolute[:, [_X0, _X1]] += centre[1]
            mask = _rasterise(_mask_polygon(parts, centre), shape, spacing_full)
            placed.append((roi, desc, absolute, mask))
        full = background.copy()
        for roi, desc, absolute, mask in placed:
            box = _bbox(mask)
            others = [p[2] for p in placed if p[0] is not roi and _overlaps(_bbox(p[3]), box)]
            parts_in_crop = np.concatenate([absolute, *others]) if others else absolute
            crop_rng = np.random.default_rng(
                np.random.SeedSequence(
                    [
                        config.seed,
                        4,
                        patient["number"],
                        image["breast"],
                        ("CC", "MLO").index(image["view"]),
                        roi["abnormality_id"],
                    ]
                )
            )
            crop, coarse = _compose_crop(
                background,
                box,
                factor,
                spacing_crop,
                parts_in_crop,
                _contrast(desc["subtlety"]),
                crop_rng,
            )
            if (
                others
            ):  # the full image gets each lesion once: redo the coarse layer with own particles
                own = _draw_particles(
                    crop.shape,
                    (box[0] * spacing_full, box[2] * spacing_full),
                    spacing_crop,
                    absolute,
                )
                own = ndimage.gaussian_filter(own, 0.7) * _contrast(desc["subtlety"])
                coarse = own.reshape(box[1] - box[0], factor, box[3] - box[2], factor).mean(
                    axis=(1, 3)
                )
            full[box[0] : box[1], box[2] : box[3]] += coarse
            flip = image["side"] == "RIGHT"
            attrs = _attributes(patient, image, roi, "crop")
            files[roi["disk_crop"]] = (
                _to_uint16(crop[:, ::-1] if flip else crop),
                {**attrs, "spacing": spacing_crop},
            )
            mask_px = (mask[:, ::-1] if flip else mask).astype(np.uint8) * 255
            files[roi["disk_mask"]] = (
                mask_px,
                {**_attributes(patient, image, roi, "mask"), "spacing": spacing_full},
            )
        full = full + img_rng.normal(0.0, QUANTUM_NOISE, shape).astype(np.float32)
        if image["side"] == "RIGHT":
            full = full[:, ::-1]
        files[image["disk_full"]] = (
            _to_uint16(full),
            {**_attributes(patient, image, None, "full"), "spacing": spacing_full},
        )
    return files


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether two end-exclusive boxes (r0, r1, c0, c1) intersect."""
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


SERIES_DESCRIPTION = {
    "full": "full mammogram images",
    "crop": "cropped images",
    "mask": "ROI mask images",
}


def _attributes(patient: dict, image: dict, roi: dict | None, role: str) -> dict:
    """DICOM attributes of one file."""
    owner = image if roi is None else roi
    folder = image["folder"] if roi is None else roi["roi_id"]
    return {
        "patient_id": folder,
        "study_uid": owner["study_uid"],
        "series_uid": owner["series_uid"],
        "description": SERIES_DESCRIPTION[role],
        "laterality": image["side"][0],
        "view": image["view"],
        "instance": 2 if role == "crop" else 1,
    }


def _write_dicom(path: Path, pixels: np.ndarray, attrs: dict, seed: int, name: str) -> None:
    """Write one uncompressed MONOCHROME2 MG image (8-bit for masks, 16-bit otherwise); name seeds its UID."""
    bits = 8 if pixels.dtype == np.uint8 else 16
    sop = _uid(seed, name, "sop")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = attrs["study_uid"]
    ds.SeriesInstanceUID = attrs["series_uid"]
    ds.PatientID = attrs["patient_id"]
    ds.PatientName = attrs["patient_id"]
    ds.Modality = "MG"
    ds.BodyPartExamined = "BREAST"
    ds.SeriesDescription = attrs["description"]
    ds.ImageLaterality = attrs["laterality"]
    ds.ViewPosition = attrs["view"]
    ds.SeriesNumber = 1
    ds.InstanceNumber = attrs["instance"]
    ds.Manufacturer = "mcalc phantom"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [f"{attrs['spacing']:.4f}", f"{attrs['spacing']:.4f}"]
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _generate_patient(args: tuple[dict, PhantomConfig, str]) -> int:
    """Render and write one patient's files (worker entry point); returns the number of files."""
    patient, config, out = args
    files = render_patient(patient, config)
    for rel, (pixels, attrs) in files.items():
        if config.layout == kaggle.LAYOUT:
            kaggle.write_jpeg(Path(out) / rel, pixels)
        else:
            _write_dicom(Path(out) / rel, pixels, attrs, config.seed, rel)
    return len(files)


# --------------------------------------------------------------------------------------------------
# CSVs, quirks, the whole phantom


def _csv_rows(patients: list[dict], split: str) -> list[list[str]]:
    """Rows of one official calc case-description table, sorted like the real one."""
    rows = []
    for patient in patients:
        if patient["split"] != split:
            continue
        lesions = {les["key"]: les for br in patient["breasts"] for les in br["lesions"]}
        for image in patient["images"]:
            for roi in image["rois"]:
                les = lesions[roi["lesion"]]
                rows.append(
                    [
                        patient["patient_id"],
                        str(les["density"]),
                        image["side"],
                        image["view"],
                        str(roi["abnormality_id"]),
                        "calcification",
                        les["calc_type_written"],
                        les["calc_distribution"],
                        str(les["assessment"]),
                        les["pathology"],
                        str(les["subtlety"]),
                        image["csv_full"],
                        roi["csv_crop"] + "\n",
                        roi["csv_mask"],
                    ]
                )
    rows.sort(key=lambda r: (r[0], r[2], r[3], int(r[4])))
    return rows


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    """Write a table with the official header, minimal quoting and LF line ends."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(rows)


def _quirk_kinds(n_rois: int, fraction: float) -> list[str]:
    """The kinds of quirk to inject, one entry per quirk."""
    if fraction <= 0:
        return []
    n = int(round(fraction * n_rois))
    if n_rois >= 20:
        n = max(n, len(QUIRK_KINDS))
    return [QUIRK_KINDS[i % len(QUIRK_KINDS)] for i in range(n)]


def _inject_quirks(out: Path, patients: list[dict], config: PhantomConfig) -> pd.DataFrame:
    """Damage a few files as real downloads do; one row per affected ROI."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 5]))
    images, groups = [], {}
    for p in patients:
        lesions = {les["key"]: les for br in p["breasts"] for les in br["lesions"]}
        for img in p["images"]:
            keys = [(p["split"], lesions[r["lesion"]]["pathology"]) for r in img["rois"]]
            images.append((img, keys))
            for key in keys:
                groups[key] = groups.get(key, 0) + 1
    n_rois = sum(groups.values())
    kinds = _quirk_kinds(n_rois, config.quirk_fraction)
    order = [int(i) for i in rng.permutation(len(images))]
    rows = []
    for kind in kinds:
        # a damaging quirk must leave at least two usable ROIs in every split x pathology group
        for pos, idx in enumerate(order):  # noqa: B007 - pos is used after the loop
            keys = images[idx][1]
            if kind == "crop_mask_swapped" or all(
                groups[k] - keys.count(k) >= min(2, groups[k]) for k in keys
            ):
                break
        else:
            continue
        order.pop(pos)
        image = images[idx][0]
        if kind != "crop_mask_swapped":
            for k in keys:
                groups[k] -= 1
        roi = image["rois"][int(rng.integers(len(image["rois"])))]
        if kind == "crop_mask_swapped":
            crop, mask = out / roi["disk_crop"], out / roi["disk_mask"]
            tmp = crop.with_name(crop.name + ".swap")
            crop.rename(tmp)
            mask.rename(crop)
            tmp.rename(mask)
            rows.append(
                [
                    roi["roi_id"],
                    kind,
                    "crop+mask",
                    roi["disk_crop"],
                    f"crop stored as {mask.name}, mask as {crop.name}",
                ]
            )
            continue
        role = str(rng.choice(["crop", "mask", "full"], p=[0.4, 0.4, 0.2]))
        rel = image["disk_full"] if role == "full" else roi[f"disk_{role}"]
        path = out / rel
        if kind == "truncated_dicom":
            data = path.read_bytes()
            keep = int(len(data) * rng.uniform(0.3, 0.7))
            path.write_bytes(data[:keep])
            detail = f"truncated to {keep} of {len(data)} bytes"
        elif kind == "not_dicom":
            path.write_text(
                "<html><head><title>503 Service Unavailable</title></head>"
                "<body>The server is temporarily unable to service your request.</body></html>\n"
            )
            detail = f"an HTML error page saved under a {path.suffix} name"
        else:
            path.unlink()
            detail = "file absent from the download"
        affected = image["rois"] if role == "full" else [roi]
        rows += [[r["roi_id"], kind, role, rel, detail] for r in affected]
    return (
        pd.DataFrame(rows, columns=QUIRK_COLUMNS)
        .sort_values(["roi_id", "kind"], kind="mergesort")
        .reset_index(drop=True)
    )


def estimate_bytes(config: PhantomConfig) -> int:
    """About how many bytes the phantom of this configuration writes (computed without planning it)."""
    n_rois = sum(_target_counts(load_calibration(), config.scale).values())
    rows, cols = config.full_shape
    crop = CROP_BYTES_AT_005_MM * (0.05 / config.crop_pixel_spacing_mm) ** 2
    per_roi = (
        IMAGES_PER_ROI * (2 * rows * cols + HEADER_BYTES) + rows * cols + crop + 2 * HEADER_BYTES
    )
    return int(n_rois * per_roi)


def _size_text(n: float) -> str:
    """A byte count for people ('1.2 GB')."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _tree_bytes(folder: Path) -> int:
    """Bytes of the files below folder (0 when absent)."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def check_room(out: Path, config: PhantomConfig) -> int:
    """DataError unless the disk under out can hold the phantom (a previous phantom there counts as free)."""
    out = Path(out)
    need = estimate_bytes(config)
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe if probe.is_dir() else probe.parent).free
    if (out / "phantom.json").is_file():
        free += _tree_bytes(out / DICOM_ROOT)
    if need > free:
        raise DataError(
            f"the phantom at scale {config.scale:g} needs about {_size_text(need)} but only "
            f"{_size_text(free)} is free under {probe}: choose a smaller --scale or another folder"
        )
    return need


def _check_out(out: Path) -> None:
    """DataError unless out is absent, an empty folder or a previous phantom (nothing is changed)."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    others = sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME) if out.is_dir() else []
    if others and not (out / "phantom.json").is_file():
        shown = ", ".join(others[:3]) + (" ..." if len(others) > 3 else "")
        raise DataError(
            f"{out}: folder is not empty ({shown}) and holds no phantom.json; "
            "refusing to write a phantom into it"
        )


def _prepare_out(out: Path) -> None:
    """Create out, or clear a previous phantom in it; refuse any other non-empty folder."""
    _check_out(out)
    if out.is_dir():
        for name in OWNED_NAMES:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _marker(config: PhantomConfig, complete: bool, extra: dict | None = None) -> str:
    """Text of phantom.json."""
    meta = {
        "generator": "mcalc.data.phantom",
        "version": PHANTOM_VERSION,
        "mcalc_version": __version__,
        "seed": config.seed,
        "config": asdict(config),
        "complete": complete,
        **(extra or {}),
    }
    return json.dumps(meta, indent=2, sort_keys=True) + "\n"


def phantom_files(out: Path) -> dict[str, str]:
    """Every file of a phantom folder (its marker and lock aside) with the sha256 of its bytes."""
    from mcalc.records.cache import file_digest

    out = Path(out)
    skip = {"phantom.json", LOCK_NAME}
    return {
        p.relative_to(out).as_posix(): file_digest(p)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.relative_to(out).as_posix() not in skip
    }


def _content_config(config: object) -> dict:
    """The configuration fields that shape a phantom's files (how many processes wrote it does not)."""
    if not isinstance(config, dict):
        return {}
    return {k: v for k, v in json.loads(json.dumps(config)).items() if k != "workers"}


def verify_phantom(out: Path, config: PhantomConfig | None = None) -> str | None:
    """Why out is not a finished phantom (of config, when given) matching its own manifest; None when it is.

    The manifest is phantom.json's ``files``: the digest of every file as generation left it; a file
    missing, added, cut short or rewritten since (a damaged copy, two writers interleaved) is named.
    """
    marker = Path(out) / "phantom.json"
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError):
        return f"{marker} is missing or unreadable"
    if not isinstance(meta, dict) or not meta.get("complete"):
        return f"{marker} marks an unfinished phantom (its generation was interrupted)"
    if config is not None and _content_config(meta.get("config")) != _content_config(
        asdict(config)
    ):
        return f"{marker} records another configuration"
    recorded = meta.get("files")
    if not isinstance(recorded, dict) or not recorded:
        return f"{marker} records no file digests (made by an older mcalc)"
    now = phantom_files(out)
    changed = sorted(k for k in recorded.keys() | now.keys() if recorded.get(k) != now.get(k))
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        return f"{len(changed)} file(s) differ from its manifest: {', '.join(changed[:3])}{more}"
    return None


def _wait_note(message: str) -> None:
    """Tell the user (stderr) that this run waits for another one."""
    import sys

    print(f"mcalc: {message}", file=sys.stderr)


def ensure_phantom(
    out: Path, config: PhantomConfig, progress: bool = True
) -> PhantomSummary | None:
    """Generate the phantom at out unless a finished phantom of config matching its manifest is there
    (a damaged or partial one is generated again); waits for another process generating it. None when kept."""
    out = Path(out)
    _check_before_lock(out)  # the room is checked if it is generated
    with exclusive(out, f"the phantom folder {out}", say=_wait_note):
        _check_out(out)
        problem = verify_phantom(out, config)
        if problem is None:
            return None
        if (out / "phantom.json").is_file():
            _wait_note(f"the phantom at {out} is generated again: {problem}")
        return _generate(out, config, progress)


def generate_phantom(out: Path, config: PhantomConfig, progress: bool = True) -> PhantomSummary:
    """Write a CBIS-DDSM-shaped phantom (CSVs, DICOM tree, phantom.json, quirks.csv) into out.

    Exclusive: the folder's lock is held while it is written (another process writing the same folder
    is waited for); the finished marker records every file's digest (:func:`verify_phantom`).
    """
    out = Path(out)
    _check_before_lock(out, config)
    with exclusive(out, f"the phantom folder {out}", say=_wait_note):
        return _generate(out, config, progress)


def _check_before_lock(out: Path, config: PhantomConfig | None = None) -> None:
    """Refuse a foreign folder, or a disk too small, before leaving a lock file (and the folder); a
    folder with mcalc's lock may be half-way through another run's write, so it is checked once that
    run is done (under the lock)."""
    if not (out / LOCK_NAME).is_file():
        _check_out(out)
    if config is not None:
        check_room(out, config)


def _generate(out: Path, config: PhantomConfig, progress: bool) -> PhantomSummary:
    """:func:`generate_phantom` with the folder's lock held."""
    start = time.perf_counter()
    _check_out(out)
    check_room(out, config)
    _prepare_out(out)
    write_text(out / "phantom.json", _marker(config, complete=False))
    patients = plan_phantom(config)
    tasks = [(p, config, str(out)) for p in patients]
    bar = tqdm(total=len(tasks), desc="phantom patients", unit="patient", disable=not progress)
    if config.workers == 1 or len(tasks) < 4 * config.workers:
        for task in tasks:
            _generate_patient(task)
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=config.workers, mp_context=ctx) as pool:
            for _ in pool.map(_generate_patient, tasks, chunksize=4):
                bar.update()
    bar.close()
    tables = out / kaggle.CSV_FOLDER if config.layout == kaggle.LAYOUT else out
    tables.mkdir(exist_ok=True)
    for split in SPLITS:
        _write_csv(tables / CSV_NAMES[split], _csv_rows(patients, split))
    if config.layout == kaggle.LAYOUT:
        info = kaggle.phantom_dicom_info(patients)
        info.to_csv(tables / kaggle.DICOM_INFO, index=False, lineterminator="\n")
    quirks = _inject_quirks(out, patients, config)
    quirks.to_csv(out / "quirks.csv", index=False, lineterminator="\n")
    counts = pd.DataFrame(0, index=list(SPLITS), columns=list(CLASSES))
    n_patients = {s: 0 for s in SPLITS}
    n_images = 0
    lesions_by_key = {}
    for p in patients:
        n_patients[p["split"]] += 1
        n_images += len(p["images"])
        lesions_by_key = {les["key"]: les for br in p["breasts"] for les in br["lesions"]}
        for image in p["images"]:
            for roi in image["rois"]:
                counts.loc[p["split"], lesions_by_key[roi["lesion"]]["pathology"]] += 1
    counts.index.name = "split"
    n_rois = int(counts.to_numpy().sum())
    summary = {
        "n_rois": n_rois,
        "n_images": n_images,
        "n_patients": n_patients,
        "rois": {s: {c: int(counts.loc[s, c]) for c in CLASSES} for s in SPLITS},
        "n_quirk_rows": len(quirks),
    }
    extra = {"summary": summary, "files": phantom_files(out)}
    write_text(out / "phantom.json", _marker(config, complete=True, extra=extra))
    return PhantomSummary(
        out=out,
        counts=counts,
        n_patients=n_patients,
        n_images=n_images,
        n_rois=n_rois,
        quirks=quirks,
        elapsed_s=time.perf_counter() - start,
    )
