"""Curation of a CBIS-DDSM download: the official case-description tables and the DICOM tree → one manifest.

Every CSV record becomes one manifest row, usable (``status == "ok"``) or not; every unusable row is
also in the exclusion report with its reason, and every crop/mask pair found swapped on disk is
corrected and listed. Nothing is dropped silently.

Paths are resolved in two layouts: the CSV's own UID layout (``Calc-Training_P_00005_RIGHT_CC/<uid>/
<uid>/000000.dcm``, optionally below a ``CBIS-DDSM`` folder) and the NBIA downloader's descriptive
layout (``Calc-Training_P_00005_RIGHT_CC_1/<date>-DDSM-NA-<n>/1.000000-ROI mask images-<n>/1-1.dcm``),
matched by the series' top folder name. (The Kaggle JPEG re-release is not supported: it drops the
DICOM headers that the crop/mask decision and the pixel spacing rely on.)

Crop versus ROI mask is decided by content, never by the ``000000``/``000001`` file names: the mask
has the full mammogram's size (from the DICOM headers); when the sizes cannot decide, the mask is the
binary image.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import tempfile
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mcalc.errors import DataError

log = logging.getLogger(__name__)

CLASSES = ("BENIGN", "BENIGN_WITHOUT_CALLBACK", "MALIGNANT")
TABLE_FILES = {
    ("calc", "train"): "calc_case_description_train_set.csv",
    ("calc", "test"): "calc_case_description_test_set.csv",
    ("mass", "train"): "mass_case_description_train_set.csv",
    ("mass", "test"): "mass_case_description_test_set.csv",
}
ABNORMALITY_KEY = {"calcification": "calc", "mass": "mass"}
SERIES_RE = re.compile(r"^(Calc|Mass)-(Training|Test)_(P_\d+)_(LEFT|RIGHT)_(CC|MLO)(?:_(\d+))?$")
MANIFEST_COLUMNS = [
    "roi_id", "split", "patient_id", "side", "view", "image_id", "abnormality_id", "abnormality_type",
    "pathology", "label", "calc_type", "calc_distribution", "mass_shape", "mass_margins", "assessment",
    "subtlety", "density", "full_path", "crop_path", "mask_path", "crop_mask_swapped", "status", "reason",
    "note", "source_file", "source_line",
]
EXCLUSION_COLUMNS = ["roi_id", "split", "patient_id", "pathology", "reason", "detail", "source_file", "source_line"]
SWAP_COLUMNS = ["roi_id", "crop_path", "mask_path"]
#: Official column name (lower case, spaces) → tidy name.
COLUMN_MAP = {
    "patient_id": "patient_id", "breast density": "density", "left or right breast": "side", "image view": "view",
    "abnormality id": "abnormality_id", "abnormality type": "abnormality_type", "calc type": "calc_type",
    "calc distribution": "calc_distribution", "mass shape": "mass_shape", "mass margins": "mass_margins",
    "assessment": "assessment", "pathology": "pathology", "subtlety": "subtlety", "image file path": "image_file",
    "cropped image file path": "crop_file", "roi mask file path": "mask_file",
}
REQUIRED = ["patient_id", "breast density", "left or right breast", "image view", "abnormality id", "pathology",
            "assessment", "subtlety", "image file path", "cropped image file path", "roi mask file path"]
MISSING = {"", "N/A", "NA", "NAN", "NONE", "NULL"}
SPELLING = {"LUCENT_CENTERED": "LUCENT_CENTER"}


# ----------------------------------------------------------------------------------------- tables


def _column_key(name: str) -> str:
    """Normalise an official column name ('breast_density', ' Breast Density ' → 'breast density')."""
    return re.sub(r"\s+", " ", name.replace("_", " ").strip().lower()).replace("patient id", "patient_id")


def normalise_term(value: str | None) -> str | None:
    """Canonical BI-RADS calc type/distribution: upper case, one spelling, duplicates in a compound removed."""
    if value is None or pd.isna(value):
        return None
    parts = []
    for part in str(value).upper().replace(" ", "_").split("-"):
        part = SPELLING.get(part.strip("_"), part.strip("_"))
        if part and part not in parts:
            parts.append(part)
    return "-".join(parts) or None


def _clean(value: str) -> str | None:
    """Strip whitespace and embedded newlines; the missing-value spellings become None."""
    value = re.sub(r"[\r\n]+", "", value).strip()
    return None if value.upper() in MISSING else value


def _int_or_none(value: str | None) -> int | None:
    """An integer field, or None when missing or not an integer."""
    try:
        return None if value is None else int(float(value))
    except ValueError:
        return None


def read_case_table(path: Path, split: str, abnormality: str) -> pd.DataFrame:
    """Read one official case-description table into tidy columns (quirks handled, nothing dropped)."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: the file is empty") from None
        keys = [_column_key(h) for h in header]
        missing = [c for c in REQUIRED if c not in keys]
        if missing:
            raise DataError(f"{path}: missing required column(s) {missing}; found {header}")
        records, line = [], reader.line_num + 1
        for row in reader:
            if not any(cell.strip() for cell in row):
                line = reader.line_num + 1
                continue
            if len(row) != len(keys):
                raise DataError(f"{path}, line {line}: {len(row)} fields where the header has {len(keys)}")
            rec = {COLUMN_MAP[k]: _clean(v) for k, v in zip(keys, row) if k in COLUMN_MAP}
            rec["source_line"] = line
            records.append(rec)
            line = reader.line_num + 1
    df = pd.DataFrame.from_records(records)
    for col in COLUMN_MAP.values():
        if col not in df:
            df[col] = None
    prefix = {"calc": "Calc", "mass": "Mass"}[ABNORMALITY_KEY.get(abnormality, abnormality)]
    phase = {"train": "Training", "test": "Test"}[split]
    df["split"] = split
    df["source_file"] = path.name
    df["abnormality_id"] = df["abnormality_id"].map(_int_or_none).astype("Int64")
    for col in ("assessment", "subtlety", "density"):
        df[col] = df[col].map(_int_or_none).astype("Int64")
    df["note"] = ""
    bad_density = df["density"].notna() & ~df["density"].isin([1, 2, 3, 4])
    df.loc[bad_density, "note"] = "density " + df.loc[bad_density, "density"].astype(str) + " out of range 1-4, set to NA"
    df.loc[bad_density, "density"] = pd.NA
    for col in ("calc_type", "calc_distribution", "mass_shape", "mass_margins"):
        df[col] = df[col].map(normalise_term)
    df["side"] = df["side"].str.upper()
    df["view"] = df["view"].str.upper()
    df["pathology"] = df["pathology"].str.upper()
    df["image_id"] = df["patient_id"] + "_" + df["side"] + "_" + df["view"]
    df["roi_id"] = f"{prefix}-{phase}_" + df["image_id"] + "_" + df["abnormality_id"].astype(str)
    return df


def find_case_tables(root: Path, abnormality: str = "calcification") -> dict[tuple[str, str], Path]:
    """The official tables present at ``root`` or up to two folders below it (the shallowest copy of each)."""
    root = Path(root)
    key = ABNORMALITY_KEY[abnormality]
    found: dict[tuple[str, str], Path] = {}
    for depth_glob in ("", "*/", "*/*/"):
        for (kind, split), name in TABLE_FILES.items():
            if kind != key or (kind, split) in found:
                continue
            hits = sorted(root.glob(depth_glob + name))
            if hits:
                found[(kind, split)] = hits[0]
    if not found:
        names = [n for (k, _), n in TABLE_FILES.items() if k == key]
        raise DataError(f"no CBIS-DDSM {abnormality} case-description table ({' or '.join(names)}) in {root} "
                        "or two folders below it")
    return found


def index_dicom_tree(root: Path) -> dict[str, list[Path]]:
    """Map each series top folder ('Calc-Training_P_00005_RIGHT_CC[_1]') to the .dcm files below it."""
    root = Path(root)
    index: dict[str, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        dcm = sorted(f for f in filenames if f.lower().endswith(".dcm"))
        if not dcm:
            continue
        top = next((p for p in Path(dirpath).relative_to(root).parts if SERIES_RE.match(p)), None)
        if top is not None:
            index.setdefault(top, []).extend(Path(dirpath) / f for f in dcm)
    return index


# ------------------------------------------------------------------------------------- DICOM checks


@dataclass(frozen=True)
class _Header:
    """What the crop/mask decision needs from one DICOM file."""

    path: Path
    ok: bool
    error: str = ""
    rows: int = 0
    cols: int = 0


def _read_header(path: Path) -> _Header:
    """Read a DICOM header; a missing, non-DICOM, truncated or pixel-less file gives ok=False with the reason."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if not path.is_file():
        return _Header(path, False, "missing_file")
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        return _Header(path, False, "not_dicom")
    except Exception as exc:  # truncated or otherwise unreadable header
        return _Header(path, False, f"unreadable_dicom ({type(exc).__name__})")
    rows, cols = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
    if not rows or not cols:
        return _Header(path, False, "no_pixel_data")
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or not syntax.is_compressed:
        expected = rows * cols * int(getattr(ds, "BitsAllocated", 16)) // 8 * int(getattr(ds, "SamplesPerPixel", 1))
        if path.stat().st_size < expected:
            return _Header(path, False, f"truncated_dicom ({path.stat().st_size} bytes, pixel data alone needs {expected})")
    return _Header(path, True, rows=rows, cols=cols)


def _pixels(path: Path) -> np.ndarray | None:
    """The pixel array of a DICOM file, or None when it cannot be decoded."""
    import pydicom

    try:
        return pydicom.dcmread(path).pixel_array
    except Exception:
        return None


def _is_binary(arr: np.ndarray) -> bool:
    """At most two distinct values (a mask)."""
    return np.unique(arr).size <= 2


@dataclass
class _Resolved:
    """The outcome of resolving and checking one row's three images."""

    full: str = ""
    crop: str = ""
    mask: str = ""
    swapped: bool = False
    reason: str = ""
    detail: str = ""


# ------------------------------------------------------------------------------------------ curate


@dataclass
class CurationResult:
    """The manifest (every row), the exclusion report, the corrected swaps, which tables were read."""

    manifest: pd.DataFrame
    exclusions: pd.DataFrame
    swaps: pd.DataFrame
    tables: dict[str, str] = field(default_factory=dict)
    is_phantom: bool = False

    def usable(self) -> pd.DataFrame:
        """The rows with status 'ok'."""
        return self.manifest[self.manifest["status"] == "ok"].reset_index(drop=True)

    def summary(self) -> pd.DataFrame:
        """Usable ROIs per split (rows) and pathology (columns)."""
        u = self.usable()
        return pd.crosstab(u["split"], u["pathology"]).reindex(columns=list(CLASSES), fill_value=0)


def _candidates(root: Path, csv_path: str | None) -> list[Path]:
    """Where the CSV's own path may lie: below ROOT, or below ROOT/CBIS-DDSM."""
    if not csv_path:
        return []
    rel = Path(csv_path.replace("\\", "/"))
    return [p for p in (root / rel, root / "CBIS-DDSM" / rel) if p.is_file()]


def _top(csv_path: str | None) -> str | None:
    """The series top folder of a CSV path ('Calc-Training_P_00005_RIGHT_CC_1')."""
    if not csv_path:
        return None
    first = csv_path.replace("\\", "/").split("/")[0]
    return first if SERIES_RE.match(first) else None


def _resolve_row(row: dict, root: Path, index: dict[str, list[Path]], headers: dict[Path, _Header]) -> _Resolved:
    """Find the full image, crop and mask of one row and decide crop vs mask by content."""
    out = _Resolved()
    full = _candidates(root, row["image_file"]) or index.get(_top(row["image_file"]) or "", [])
    if not full:
        return _Resolved(reason="missing_file", detail=f"full mammogram {row['image_file']!r} not found under {root}")
    if len(full) > 1:
        return _Resolved(reason="ambiguous_files", detail=f"{len(full)} files for the full mammogram: {[str(p) for p in full[:3]]}")
    out.full = str(full[0])
    crop_csv, mask_csv = _candidates(root, row["crop_file"]), _candidates(root, row["mask_file"])
    if crop_csv and mask_csv and crop_csv[0] != mask_csv[0]:
        pair, named = [crop_csv[0], mask_csv[0]], True
    else:
        files = index.get(_top(row["crop_file"]) or _top(row["mask_file"]) or "", [])
        pair, named = list(dict.fromkeys(files)), False
    if len(pair) != 2:
        absent = [name for name, hit in (("cropped image", crop_csv), ("ROI mask", mask_csv)) if not hit]
        return _Resolved(full=out.full, reason="missing_file",
                         detail=f"{' and '.join(absent) or 'crop/mask'} not found by its CSV path, and the ROI series folder "
                                f"{_top(row['crop_file'])!r} holds {len(pair)} file(s) instead of a crop and a mask")
    hf = headers[full[0]]
    if not hf.ok:
        return _Resolved(full=out.full, reason=hf.error.split(" ")[0], detail=f"full mammogram {full[0]}: {hf.error}")
    ha, hb = headers[pair[0]], headers[pair[1]]
    for h in (ha, hb):
        if not h.ok:
            return _Resolved(full=out.full, reason=h.error.split(" ")[0], detail=f"{h.path}: {h.error}")
    size = (hf.rows, hf.cols)
    a_full, b_full = (ha.rows, ha.cols) == size, (hb.rows, hb.cols) == size
    if a_full != b_full:
        crop, mask = (pair[1], pair[0]) if a_full else (pair[0], pair[1])
    else:
        pa, pb = _pixels(pair[0]), _pixels(pair[1])
        if pa is None or pb is None:
            bad = pair[0] if pa is None else pair[1]
            return _Resolved(full=out.full, reason="unreadable_dicom", detail=f"{bad}: pixel data cannot be decoded")
        a_bin, b_bin = _is_binary(pa), _is_binary(pb)
        if a_bin == b_bin:
            return _Resolved(full=out.full, reason="mask_not_identified",
                             detail=f"cannot tell crop from mask: {pair[0].name} {pa.shape}, {pair[1].name} {pb.shape}, "
                                    f"full image {size}")
        crop, mask = (pair[1], pair[0]) if a_bin else (pair[0], pair[1])
        hm = headers[mask]
        if (hm.rows, hm.cols) != size:
            return _Resolved(full=out.full, reason="mask_size_mismatch",
                             detail=f"ROI mask {mask} is {hm.rows}x{hm.cols}, the mammogram {size[0]}x{size[1]}")
    arr = _pixels(crop)
    if arr is None:
        return _Resolved(full=out.full, reason="unreadable_dicom", detail=f"{crop}: pixel data cannot be decoded")
    if arr.size == 0 or arr.min() == arr.max():
        return _Resolved(full=out.full, reason="empty_crop", detail=f"{crop}: the cropped ROI is empty or constant")
    swapped = named and crop == pair[1]
    return _Resolved(full=out.full, crop=str(crop), mask=str(mask), swapped=swapped)


def curate(root: Path, abnormality: str = "calcification", check_images: bool = True,
           progress: bool = True, workers: int = 4) -> CurationResult:
    """Read the official tables under ``root``, resolve and check every image, and report every exclusion.

    With ``check_images=False`` no DICOM file is opened or looked for: rows that are otherwise valid get
    the status ``"unchecked"`` (for parsing the tables alone, e.g. without the images).
    """
    from tqdm.auto import tqdm

    root = Path(root)
    tables = find_case_tables(root, abnormality)
    frames = [read_case_table(path, split, abnormality) for (_, split), path in sorted(tables.items(), key=lambda kv: kv[0][1] != "train")]
    df = pd.concat(frames, ignore_index=True)
    df["status"], df["reason"], detail = "ok", "", [""] * len(df)
    df["label"] = df["pathology"].map({c: i for i, c in enumerate(CLASSES)}).astype("Int64")
    for col in ("full_path", "crop_path", "mask_path"):
        df[col] = ""
    df["crop_mask_swapped"] = False

    def exclude(i: int, reason: str, text: str) -> None:
        """Mark row i excluded (the first reason wins)."""
        if df.at[i, "status"] != "excluded":
            df.at[i, "status"], df.at[i, "reason"], detail[i] = "excluded", reason, text

    for i in df.index[df["label"].isna()]:
        exclude(i, "unknown_pathology", f"pathology {df.at[i, 'pathology']!r} is none of {list(CLASSES)}")
    invalid = df[["patient_id", "side", "view", "abnormality_id", "image_file"]].isna().any(axis=1)
    invalid |= ~df["side"].isin(["LEFT", "RIGHT"]) | ~df["view"].isin(["CC", "MLO"])
    for i in df.index[invalid]:
        exclude(i, "invalid_row", "missing or invalid patient id, side, view, abnormality id or image path")
    for i in df.index[df.duplicated("roi_id", keep="first") & ~invalid]:
        first = df.index[(df["roi_id"] == df.at[i, "roi_id"])][0]
        exclude(i, "duplicate", f"same ROI as {df.at[first, 'source_file']} line {df.at[first, 'source_line']}")

    todo = list(df.index[df["status"] == "ok"])
    if not check_images:
        for col, src in (("full_path", "image_file"), ("crop_path", "crop_file"), ("mask_path", "mask_file")):
            df[col] = [str(root / p) if isinstance(p, str) else "" for p in df[src]]
        df.loc[todo, "status"] = "unchecked"
        todo = []
    index = index_dicom_tree(root) if todo else {}
    headers: dict[Path, _Header] = {}
    if todo:
        paths: set[Path] = set()
        for i in todo:
            row = df.loc[i]
            for p in _candidates(root, row["image_file"]) or index.get(_top(row["image_file"]) or "", []):
                paths.add(p)
            for col in ("crop_file", "mask_file"):
                paths.update(_candidates(root, row[col]))
            paths.update(index.get(_top(row["crop_file"]) or "", []))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            ordered = sorted(paths)
            for p, h in zip(ordered, tqdm(pool.map(_read_header, ordered), total=len(ordered), desc="DICOM headers",
                                          unit="file", disable=not progress)):
                headers[p] = h

    rows = df.loc[todo].to_dict(orient="index")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {i: pool.submit(_resolve_row, rows[i], root, index, headers) for i in todo}
        for i in tqdm(todo, desc="ROIs", unit="roi", disable=not progress):
            res = futures[i].result()
            df.at[i, "full_path"], df.at[i, "crop_path"], df.at[i, "mask_path"] = res.full, res.crop, res.mask
            df.at[i, "crop_mask_swapped"] = res.swapped
            if res.reason:
                exclude(i, res.reason, res.detail)
    df["detail"] = detail
    exclusions = df[df["status"] == "excluded"].assign(detail=lambda d: d["detail"])[EXCLUSION_COLUMNS].reset_index(drop=True)
    swaps = df[df["crop_mask_swapped"]][SWAP_COLUMNS].reset_index(drop=True)
    for reason, n in Counter(exclusions["reason"]).items():
        warnings.warn(f"curation: {n} ROI(s) excluded as {reason} (see the exclusion report)", stacklevel=2)
    manifest = df[MANIFEST_COLUMNS].reset_index(drop=True)
    return CurationResult(manifest=manifest, exclusions=exclusions, swaps=swaps,
                          tables={f"{k}_{s}": str(p) for (k, s), p in tables.items()},
                          is_phantom=(root / "phantom.json").is_file())


# -------------------------------------------------------------------------------------------- I/O


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a CSV atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def write_curation(result: CurationResult, manifest_path: Path) -> dict[str, Path]:
    """Write the manifest, ``<stem>.exclusions.csv`` and ``<stem>.swaps.csv`` beside it; return their paths."""
    manifest_path = Path(manifest_path)
    stem = manifest_path.with_suffix("")
    return {
        "manifest": _write_csv(result.manifest, manifest_path),
        "exclusions": _write_csv(result.exclusions, Path(f"{stem}.exclusions.csv")),
        "swaps": _write_csv(result.swaps, Path(f"{stem}.swaps.csv")),
    }


def read_manifest(path: Path) -> pd.DataFrame:
    """Read a manifest written by :func:`write_curation` with its dtypes."""
    dtypes = {c: "string" for c in MANIFEST_COLUMNS}
    dtypes.update({"abnormality_id": "Int64", "label": "Int64", "assessment": "Int64", "subtlety": "Int64",
                   "density": "Int64", "source_line": "int64", "crop_mask_swapped": "bool"})
    df = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values={c: [""] for c in dtypes if dtypes[c] == "Int64"})
    missing = [c for c in MANIFEST_COLUMNS if c not in df]
    if missing:
        raise DataError(f"{path}: not an mcalc manifest (missing columns {missing})")
    for col in ("reason", "note", "full_path", "crop_path", "mask_path"):
        df[col] = df[col].fillna("")
    return df
