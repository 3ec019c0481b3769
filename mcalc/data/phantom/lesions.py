"""Calcifications: particles (spheres, shells, capsules) by BI-RADS type and distribution, drawn in millimetres."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull
from skimage.draw import polygon as draw_polygon

from mcalc.data.phantom.breast import FAT, GLAND, parenchyma, power_law_noise
from mcalc.errors import DataError

__all__ = [
    "SUBTLETY_CONTRAST",
    "QUANTUM_NOISE",
    "MAX_LESION_MM",
    "MIN_LESION_MM",
    "CHORD_REF_MM",
    "Y_COLUMNS",
    "X_COLUMNS",
    "ELEMENT_COUNT",
    "DISTRIBUTION_COUNT",
    "lesion_particles",
    "extent",
    "lesion_margin",
    "other_view",
    "draw_particles",
    "subtlety_contrast",
    "mask_polygon",
    "rasterise",
    "compose_crop",
    "to_uint16",
    "mask_bbox",
    "render_roi",
]

SUBTLETY_CONTRAST = {1: 0.08, 2: 0.14, 3: 0.22, 4: 0.32, 5: 0.45}
QUANTUM_NOISE = 0.004
MAX_LESION_MM = 33.0  # largest crop side ~ 700 px at 0.05 mm, as on real crops
MIN_LESION_MM = 6.0  # smallest crop side ~ 120 px at 0.05 mm
CHORD_REF_MM = 0.8  # calcium chord length giving 63 % of a particle's weight (Beer-Lambert-like)
# Particle array columns: segment start (y, x) and end (y, x) in mm, radius mm, inner-radius ratio
# (shells), weight, soft (1 = Gaussian blob, 0 = solid/shell chord profile).
_Y0, _X0, _Y1, _X1, _R, _INNER, _W, _SOFT = range(8)
#: The y and the x columns of a particle array (segment start and end), to move particles.
Y_COLUMNS, X_COLUMNS = [_Y0, _Y1], [_X0, _X1]


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
    lo_pt, hi_pt = extent(parts)
    mid = (lo_pt + hi_pt) / 2
    parts[:, [_Y0, _Y1]] -= mid[0]
    parts[:, [_X0, _X1]] -= mid[1]
    size = float(np.max(hi_pt - lo_pt))
    limit = MAX_LESION_MM - 2 * lesion_margin(size)
    if size > limit:
        parts = _shrink(parts, limit / size)
    return parts


def extent(parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def lesion_margin(size_mm: float) -> float:
    """Mask margin (mm) around the particles: 1.5 mm, more for lesions smaller than MIN_LESION_MM."""
    return max(1.5, (MIN_LESION_MM - size_mm) / 2 + 0.5)


def other_view(parts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same lesion seen in the other view: rotated and compressed differently."""
    angle = rng.normal(0.0, 0.3)
    squeeze = rng.uniform(0.85, 1.15)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    mat = rot @ np.diag([squeeze, 1.0 / squeeze])
    out = parts.copy()
    out[:, [_Y0, _X0]] = parts[:, [_Y0, _X0]] @ mat.T
    out[:, [_Y1, _X1]] = parts[:, [_Y1, _X1]] @ mat.T
    return out


def draw_particles(
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


def subtlety_contrast(subtlety: object) -> float:
    """Calcification contrast for a subtlety rating (1 = faint ... 5 = obvious)."""
    try:
        return SUBTLETY_CONTRAST[int(subtlety)]
    except (KeyError, TypeError, ValueError):
        raise DataError(f"subtlety must be an integer 1-5, got {subtlety!r}") from None


def mask_polygon(parts: np.ndarray, centre_mm: np.ndarray) -> np.ndarray:
    """Convex outline (K x 2, mm, absolute) covering all particles plus a margin."""
    lo, hi = extent(parts)
    margin = lesion_margin(float(np.max(hi - lo)))
    ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    ring = np.c_[np.sin(ang), np.cos(ang)]
    pad = (parts[:, _R] * np.where(parts[:, _SOFT] > 0, 2.5, 1.0) + margin)[:, None, None]
    ends = np.stack([parts[:, [_Y0, _X0]], parts[:, [_Y1, _X1]]], axis=1)  # N x 2 x 2
    pts = (ends[:, :, None, :] + pad[:, :, :, None] * ring[None, None, :, :]).reshape(
        -1, 2
    ) + centre_mm
    hull = ConvexHull(pts)
    return pts[hull.vertices]


def rasterise(poly_mm: np.ndarray, shape: tuple[int, int], spacing: float) -> np.ndarray:
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
    noise = power_law_noise(shape, 3.0, rng, highpass=0.5 / factor)
    # variance of a 1/f^3 band [f1, f2] in 2-D ~ 1/f1 - 1/f2: band ratio fine / full image
    f0, f1, f2 = 1.0 / full_rows, 0.5, 0.5 * factor  # cycles per full pixel
    ratio = (1 / f1 - 1 / f2) / (1 / f0 - 1 / f1)
    return (noise * 0.5 * (GLAND - FAT) * math.sqrt(ratio)).astype(np.float32)


def compose_crop(
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
    lesion = draw_particles(shape, (r0 * full_spacing, c0 * full_spacing), spacing, parts)
    lesion = ndimage.gaussian_filter(lesion, 0.7) * contrast
    detail = _band_detail(shape, factor, background.shape[0], rng)
    crop = up + detail + lesion + rng.normal(0.0, QUANTUM_NOISE, shape).astype(np.float32)
    coarse = lesion.reshape(r1 - r0, factor, c1 - c0, factor).mean(axis=(1, 3))
    return crop.astype(np.float32), coarse.astype(np.float32)


def to_uint16(img: np.ndarray) -> np.ndarray:
    """Relative attenuation [0, 1] -> 16-bit pixel values."""
    return np.round(np.clip(img, 0.0, 1.0) * 65535.0).astype(np.uint16)


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
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
    contrast = subtlety_contrast(descriptor.get("subtlety"))
    parts = lesion_particles(descriptor, np.random.default_rng(int(rng.integers(0, 2**63))), view)
    lo, hi = extent(parts)
    size = float(np.max(hi - lo))
    side = int(math.ceil((size + 2 * lesion_margin(size)) / full_pixel_spacing_mm)) + 16
    centre = np.array([side, side]) * full_pixel_spacing_mm / 2
    background = parenchyma((side, side), descriptor.get("density"), rng)
    mask = rasterise(mask_polygon(parts, centre), (side, side), full_pixel_spacing_mm)
    shifted = parts.copy()
    shifted[:, [_Y0, _Y1]] += centre[0]
    shifted[:, [_X0, _X1]] += centre[1]
    crop, _ = compose_crop(
        background, mask_bbox(mask), factor, crop_pixel_spacing_mm, shifted, contrast, rng
    )
    return to_uint16(crop)
