"""Rendering one patient: its full mammograms, crops and masks, with the attributes of each file."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mcalc.data.phantom.breast import breast_image
from mcalc.data.phantom.config import PhantomConfig
from mcalc.data.phantom.lesions import (
    QUANTUM_NOISE,
    X_COLUMNS,
    Y_COLUMNS,
    compose_crop,
    draw_particles,
    extent,
    lesion_margin,
    lesion_particles,
    mask_bbox,
    mask_polygon,
    other_view,
    rasterise,
    subtlety_contrast,
    to_uint16,
)

__all__ = [
    "render_patient",
    "SERIES_DESCRIPTION",
]


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
        background, outline = breast_image(shape, patient["density"], image["view"], geom, img_rng)
        placed = []
        taken: list[tuple[np.ndarray, float]] = []
        for roi in image["rois"]:
            les = lesions[roi["lesion"]]
            desc = _render_descriptor(les)
            parts = lesion_particles(
                desc, np.random.default_rng(lesion_seed[roi["lesion"]]), image["view"]
            )
            if image["view"] == "MLO" and "CC" in les["views"]:
                parts = other_view(parts, np.random.default_rng([lesion_seed[roi["lesion"]], 1]))
            lo, hi = extent(parts)
            radius = float(np.linalg.norm(np.maximum(np.abs(lo), np.abs(hi)))) + lesion_margin(
                float(np.max(hi - lo))
            )
            centre = _place(radius, outline, spacing_full, taken, shape, img_rng)
            taken.append((centre, radius))
            absolute = parts.copy()
            absolute[:, Y_COLUMNS] += centre[0]
            absolute[:, X_COLUMNS] += centre[1]
            mask = rasterise(mask_polygon(parts, centre), shape, spacing_full)
            placed.append((roi, desc, absolute, mask))
        full = background.copy()
        for roi, desc, absolute, mask in placed:
            box = mask_bbox(mask)
            others = [p[2] for p in placed if p[0] is not roi and _overlaps(mask_bbox(p[3]), box)]
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
            crop, coarse = compose_crop(
                background,
                box,
                factor,
                spacing_crop,
                parts_in_crop,
                subtlety_contrast(desc["subtlety"]),
                crop_rng,
            )
            if (
                others
            ):  # the full image gets each lesion once: redo the coarse layer with own particles
                own = draw_particles(
                    crop.shape,
                    (box[0] * spacing_full, box[2] * spacing_full),
                    spacing_crop,
                    absolute,
                )
                own = ndimage.gaussian_filter(own, 0.7) * subtlety_contrast(desc["subtlety"])
                coarse = own.reshape(box[1] - box[0], factor, box[3] - box[2], factor).mean(
                    axis=(1, 3)
                )
            full[box[0] : box[1], box[2] : box[3]] += coarse
            flip = image["side"] == "RIGHT"
            attrs = _attributes(patient, image, roi, "crop")
            files[roi["disk_crop"]] = (
                to_uint16(crop[:, ::-1] if flip else crop),
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
            to_uint16(full),
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
