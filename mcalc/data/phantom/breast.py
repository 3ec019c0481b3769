"""The breast: power-law parenchyma whose glandular fraction follows density, air, pectoral muscle."""

from __future__ import annotations

import numpy as np
from scipy import fft, special

__all__ = [
    "AIR",
    "FAT",
    "GLAND",
    "PECTORAL",
    "GLANDULAR_FRACTION",
    "UNKNOWN_DENSITY_FRACTION",
    "power_law_noise",
    "parenchyma",
    "breast_image",
]

# Intensities in relative attenuation units (0 = air, 1 = the 16-bit maximum).
AIR, FAT, GLAND, PECTORAL = 0.04, 0.30, 0.62, 0.66
GLANDULAR_FRACTION = {1: 0.10, 2: 0.30, 3: 0.55, 4: 0.80}
UNKNOWN_DENSITY_FRACTION = 0.40  # density N/A or out of range (the real tables have a 0)


def power_law_noise(
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
    noise = power_law_noise(tuple(int(s) for s in shape), beta, rng)
    frac = _glandular_fraction(density)
    threshold = special.ndtri(1.0 - frac)
    gland = special.expit((noise - threshold) / 0.6)
    return (FAT + (GLAND - FAT) * gland).astype(np.float32)


def breast_image(
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
