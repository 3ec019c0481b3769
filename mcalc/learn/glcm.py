"""GLCM (Haralick) texture features of a ROI: the classical baselines' features (paper Table 4).

The paper extracts "14 second-order GLCM features". :func:`glcm_features` gives the 14 Haralick
features of ``mahotas.features.haralick`` (the 14th, the maximal correlation coefficient, included),
averaged over the four directions, on the ROI quantised to ``levels`` grey levels (:func:`quantise`);
:func:`glcm_feature_matrix` reads DICOM ROIs and computes them in a process pool;
:func:`glcm_settings` states the settings as the book prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from mcalc.errors import DataError

__all__ = [
    "HARALICK_NAMES",
    "GLCM_LEVELS",
    "GLCM_DISTANCE",
    "GLCM_ANGLES",
    "glcm_settings",
    "quantise",
    "glcm_features",
    "glcm_feature_matrix",
]

#: Names of the 14 Haralick features, in the order ``mahotas.features.haralick`` returns them.
HARALICK_NAMES: tuple[str, ...] = (
    "angular_second_moment",
    "contrast",
    "correlation",
    "sum_of_squares_variance",
    "inverse_difference_moment",
    "sum_average",
    "sum_variance",
    "sum_entropy",
    "entropy",
    "difference_variance",
    "difference_entropy",
    "info_measure_correlation_1",
    "info_measure_correlation_2",
    "max_correlation_coefficient",
)


#: Grey levels of the quantised ROI before the co-occurrence matrix.
GLCM_LEVELS = 64


#: Pixel distance of the co-occurrences (mahotas' default).
GLCM_DISTANCE = 1


#: Directions of the co-occurrences, in degrees; the features are their mean.
GLCM_ANGLES = (0, 45, 90, 135)


def glcm_settings(levels: int = GLCM_LEVELS) -> dict[str, str | int]:
    """The GLCM settings as the book states them."""
    return {
        "grey levels": int(levels),
        "quantisation": "each ROI's own min-max mapped linearly to 0..levels-1, rounded",
        "distance (pixels)": GLCM_DISTANCE,
        "angles": ", ".join(f"{a}°" for a in GLCM_ANGLES) + " (symmetric; features averaged)",
        "level 0 counted": "yes (ignore_zeros=False)",
        "features": f"{len(HARALICK_NAMES)} Haralick (mahotas.features.haralick, 14th included)",
    }


def quantise(image: np.ndarray, levels: int = GLCM_LEVELS) -> np.ndarray:
    """Min–max quantise a 2-D image to integers 0..levels-1 (uint8), rounding to the nearest level."""
    if not 2 <= int(levels) <= 256:
        raise ValueError(f"levels must be between 2 and 256, got {levels}")
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise DataError(f"expected a 2-D greyscale image, got shape {img.shape}")
    if img.size == 0 or min(img.shape) < 2:
        raise DataError(f"image of shape {img.shape} is too small for a co-occurrence matrix")
    if not np.all(np.isfinite(img)):
        raise DataError("image contains non-finite values")
    lo, hi = float(img.min()), float(img.max())
    if hi <= lo:
        raise DataError(
            f"constant image (all pixels = {lo:g}): GLCM texture features are undefined"
        )
    q = np.rint((img - lo) / (hi - lo) * (levels - 1))
    return q.astype(np.uint8)


def glcm_features(image: np.ndarray, levels: int = GLCM_LEVELS) -> np.ndarray:
    """The 14 Haralick GLCM features (mahotas), mean over the 4 directions, of the quantised ROI.

    Quantisation: the ROI's own minimum and maximum are mapped linearly to 0 and ``levels - 1`` and
    values rounded to the nearest integer (uint8), so the features are invariant to a global gain
    and offset of the intensities. Co-occurrences are counted at distance 1 in the four directions
    0°, 45°, 90°, 135° (symmetric), *including* level 0 (``ignore_zeros=False``: after min–max
    quantisation 0 is the darkest tissue, not background). A constant ROI has no texture and raises
    :class:`~mcalc.errors.DataError` (mahotas would return meaningless numbers), as does a ROI whose
    features are not finite.
    """
    import mahotas

    q = quantise(image, levels)
    feats = mahotas.features.haralick(
        q, ignore_zeros=False, compute_14th_feature=True, return_mean=True
    )
    feats = np.asarray(feats, dtype=np.float64)
    if feats.shape != (14,):
        raise DataError(f"unexpected Haralick feature shape {feats.shape}")
    if not np.all(np.isfinite(feats)):
        bad = [HARALICK_NAMES[i] for i in np.flatnonzero(~np.isfinite(feats))]
        raise DataError(f"non-finite Haralick feature(s): {', '.join(bad)}")
    return feats


def _glcm_from_path(path: str, levels: int) -> np.ndarray:
    """GLCM features of the image (DICOM or JPEG) at ``path`` (errors name the file)."""
    from mcalc.data.images import read_image

    image = read_image(path)
    try:
        return glcm_features(image, levels)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


def glcm_feature_matrix(
    paths: Sequence[str | Path], levels: int = GLCM_LEVELS, workers: int = 2, progress: bool = True
) -> np.ndarray:
    """(N, 14) Haralick features of the DICOM ROIs at ``paths``, in order (process pool when workers > 1)."""
    from tqdm.auto import tqdm

    paths = [str(p) for p in paths]
    if not paths:
        return np.zeros((0, len(HARALICK_NAMES)), dtype=np.float64)
    fn = partial(_glcm_from_path, levels=int(levels))
    bar = partial(tqdm, total=len(paths), desc="GLCM features", disable=not progress)
    if workers <= 1 or len(paths) == 1:
        rows = [fn(p) for p in bar(paths)]
    else:
        # "spawn" keeps the workers free of any TensorFlow state of the parent process
        with ProcessPoolExecutor(max_workers=int(workers), mp_context=get_context("spawn")) as pool:
            chunk = max(1, len(paths) // (int(workers) * 8))
            rows = list(bar(pool.map(fn, paths, chunksize=chunk)))
    return np.vstack(rows)
