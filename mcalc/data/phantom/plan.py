"""Planning a phantom: patients, breasts, lesions, ROIs and file names, sampled from the calibration."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from pydicom.uid import UID

from mcalc.data import kaggle
from mcalc.data.calibration import parse_layout
from mcalc.data.kaggle import JPEG_FOLDER
from mcalc.data.phantom.config import (
    DICOM_ROOT,
    SPLIT_PREFIX,
    PhantomConfig,
    load_calibration,
    load_structure,
)
from mcalc.study import CLASSES, SPLITS

__all__ = [
    "target_counts",
    "make_uid",
    "plan_phantom",
]


def _sample_distribution(dist: dict[str, int], rng: np.random.Generator) -> int:
    """One draw from a {value: count} histogram."""
    values = np.array([int(k) for k in dist])
    weights = np.array(list(dist.values()), dtype=float)
    return int(rng.choice(values, p=weights / weights.sum()))


def target_counts(calibration: pd.DataFrame, scale: float) -> dict[tuple[str, str], int]:
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
    targets = target_counts(calibration, scale)
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


def make_uid(seed: int, *parts: object) -> str:
    """Deterministic DICOM UID (2.25 + a 128-bit hash, like a UUID-derived UID) from the seed and names."""
    text = "\x1f".join([f"mcalc-phantom-{seed}", *map(str, parts)])
    return UID(f"2.25.{int(hashlib.sha256(text.encode()).hexdigest()[:32], 16)}")


def _file_names(config: PhantomConfig, folder: str, kind: str, rng: np.random.Generator) -> dict:
    """CSV path (below CBIS-DDSM/) and on-disk paths of one full image (kind 'full') or ROI (kind 'roi')."""
    study, series = make_uid(config.seed, folder, "study"), make_uid(config.seed, folder, "series")
    csv_dir = f"{folder}/{study}/{series}"
    if config.layout == "uid":
        disk_dir = f"{DICOM_ROOT}/{csv_dir}"
        names = (
            {"full": "000000.dcm"}
            if kind == "full"
            else {"mask": "000000.dcm", "crop": "000001.dcm"}
        )
    elif config.layout == kaggle.LAYOUT:
        disk_dir, names = _phantom_names(series, kind)
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
    calibration = load_calibration() if calibration is None else calibration
    stats = load_structure() if stats is None else stats
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


def _phantom_names(series_uid: str, kind: str) -> tuple[str, dict[str, str]]:
    """Folder (below the root) and file names of one phantom series: 'full' → 1-1.jpg; 'roi' → mask 1-1, crop 1-2."""
    names = {"full": "1-1.jpg"} if kind == "full" else {"mask": "1-1.jpg", "crop": "1-2.jpg"}
    return f"{JPEG_FOLDER}/{series_uid}", names
