"""Writing the phantom's files: DICOM and JPEG images, the case-description CSVs, the injected quirks."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from mcalc.data import kaggle
from mcalc.data.kaggle import JPEG_FOLDER, ROLE_NAMES
from mcalc.data.phantom.config import CSV_HEADER, QUIRK_COLUMNS, QUIRK_KINDS, PhantomConfig
from mcalc.data.phantom.plan import make_uid
from mcalc.data.phantom.render import render_patient

__all__ = [
    "generate_patient",
    "csv_rows",
    "write_csv",
    "inject_quirks",
    "JPEG_QUALITY",
    "write_jpeg",
    "phantom_dicom_info",
]


def _write_dicom(path: Path, pixels: np.ndarray, attrs: dict, seed: int, name: str) -> None:
    """Write one uncompressed MONOCHROME2 MG image (8-bit for masks, 16-bit otherwise); name seeds its UID."""
    bits = 8 if pixels.dtype == np.uint8 else 16
    sop = make_uid(seed, name, "sop")
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


def generate_patient(args: tuple[dict, PhantomConfig, str]) -> int:
    """Render and write one patient's files (worker entry point); returns the number of files."""
    patient, config, out = args
    files = render_patient(patient, config)
    for rel, (pixels, attrs) in files.items():
        if config.layout == kaggle.LAYOUT:
            write_jpeg(Path(out) / rel, pixels)
        else:
            _write_dicom(Path(out) / rel, pixels, attrs, config.seed, rel)
    return len(files)


def csv_rows(patients: list[dict], split: str) -> list[list[str]]:
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


def write_csv(path: Path, rows: list[list[str]]) -> None:
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


def inject_quirks(out: Path, patients: list[dict], config: PhantomConfig) -> pd.DataFrame:
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


#: Quality of the phantom's JPEGs (Pillow's default).
JPEG_QUALITY = 75


def _to_8bit(pixels: np.ndarray) -> np.ndarray:
    """An image as 8-bit grey: 8-bit kept, wider integers min–max scaled to 0–255 (a constant image → 0)."""
    arr = np.asarray(pixels)
    if arr.dtype == np.uint8:
        return arr
    arr = arr.astype(np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    if hi == lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.round((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def write_jpeg(path: Path, pixels: np.ndarray, quality: int = JPEG_QUALITY) -> None:
    """Write an image as an 8-bit greyscale JPEG through Pillow (lossy, like the re-release)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_to_8bit(pixels), mode="L").save(path, format="JPEG", quality=quality)


def phantom_dicom_info(patients: list[dict]) -> pd.DataFrame:
    """dicom_info.csv of a phantom planned by :func:`mcalc.data.phantom.plan_phantom` (its disk paths, UIDs, folders)."""
    rows = []
    for patient in patients:
        for image in patient["images"]:
            files = [(image["folder"], image, "full", image["disk_full"])]
            for roi in image["rois"]:
                files += [
                    (roi["roi_id"], roi, "crop", roi["disk_crop"]),
                    (roi["roi_id"], roi, "mask", roi["disk_mask"]),
                ]
            for folder, owner, role, disk in files:
                rel = disk.split(f"{JPEG_FOLDER}/", 1)[1]
                rows.append(
                    {
                        "file_path": f"CBIS-DDSM/dicom/{rel.rsplit('.', 1)[0]}.dcm",
                        "image_path": f"CBIS-DDSM/{JPEG_FOLDER}/{rel}",
                        "Laterality": image["side"][0],
                        "PatientID": folder,
                        "SeriesDescription": ROLE_NAMES[role],
                        "SeriesInstanceUID": owner["series_uid"],
                        "StudyInstanceUID": owner["study_uid"],
                    }
                )
    return pd.DataFrame(rows)
