"""The Kaggle JPEG re-release of CBIS-DDSM ("CBIS-DDSM: Breast Cancer Image Dataset"): layout and reading (the phantom writes it: :mod:`mcalc.data.phantom.writing`).

What the re-release holds (checked against public code that reads it, e.g. DeepMind's dm_nevis
``datasets_storage/handlers/ddsm.py`` and the many Kaggle notebooks built on ``dicom_info.csv``):

- ``csv/`` with the official case-description tables, unchanged (their paths still name the DICOMs:
  ``<series folder>/<StudyInstanceUID>/<SeriesInstanceUID>/00000N.dcm``), and ``dicom_info.csv``: one
  row per image with the DICOM header fields, among them ``image_path``
  (``CBIS-DDSM/jpeg/<SeriesInstanceUID>/1-N.jpg``), ``SeriesInstanceUID``, ``SeriesDescription``
  (``full mammogram images``, ``cropped images`` or ``ROI mask images``; empty on some rows) and
  ``PatientID`` (the series folder name, ``Calc-Training_P_00005_RIGHT_CC_1``);
- ``jpeg/<SeriesInstanceUID>/1-N.jpg``: every DICOM converted to an 8-bit lossy JPEG. A ROI's crop
  and mask share one series, so its folder holds two JPEGs, whose names say nothing of their role.

Each table row is mapped to its files through ``dicom_info.csv`` by the series UID of its paths (the
folder above the file name), as those notebooks do. Accepted variants: ``image_path`` prefixed by
``CBIS-DDSM/jpeg/``, ``jpeg/``, an absolute path ending in ``jpeg/<uid>/<file>``, or plain
``<uid>/<file>``, with either slash; header names compared without case, spaces or underscores; ``,`` or
``;`` as the separator. Every path is rebuilt as ``<jpeg folder>/<uid>/<file>`` from plain names, so
nothing outside the data root is ever read. Which ROI file is the crop and which the mask is decided
by content with the DICOM release's rule (:func:`mcalc.data.layouts.choose_mask`: size first, then a
near-binary test with a tolerance for JPEG ringing); ``SeriesDescription`` only says which one the
download claims.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mcalc.data.case_tables import find_case_tables
from mcalc.data.images import (
    JPEG_SUFFIXES,
    check_jpeg_image,
    is_near_binary,
    read_jpeg_header,
    read_jpeg_pixels,
)
from mcalc.data.layouts import Layout, Resolved, RowCheck, choose_mask
from mcalc.errors import DataError, UnusableImage
from mcalc.study import KAGGLE_JPEG

__all__ = [
    "LAYOUT",
    "DICOM_INFO",
    "CSV_FOLDER",
    "JPEG_FOLDER",
    "ROLES",
    "ROLE_NAMES",
    "LAYOUTS_TRIED",
    "JpegEntry",
    "KaggleTree",
    "find_jpeg_dir",
    "find_tree",
    "read_dicom_info",
    "layout_of",
    "Locator",
    "check_files",
    "kaggle_layout",
]

#: Name of the layout (``mcalc phantom --layout``, the manifest's ``CurationResult.layout``, provenance).
LAYOUT = KAGGLE_JPEG  # this layout's name in the manifest and the provenance
DICOM_INFO = "dicom_info.csv"
CSV_FOLDER = "csv"
JPEG_FOLDER = "jpeg"
#: SeriesDescription of dicom_info.csv → the file's role.
ROLES = {"full mammogram images": "full", "cropped images": "crop", "roi mask images": "mask"}
ROLE_NAMES = {"full": "full mammogram images", "crop": "cropped images", "mask": "ROI mask images"}
#: Where the locator looks (named in the message when no image is found at all).
LAYOUTS_TRIED = (
    "the Kaggle JPEG re-release: jpeg/<SeriesInstanceUID>/<file> as dicom_info.csv lists them",
)

_COLUMNS = {
    "image_path": ("imagepath", "jpegpath", "jpgpath"),
    "series_uid": ("seriesinstanceuid", "seriesuid"),
    "description": ("seriesdescription",),
    "patient_id": ("patientid",),
}


def _key(name: str) -> str:
    """A header cell compared loosely: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", str(name).replace("\ufeff", "").lower())


# ------------------------------------------------------------------------------------- the tree


@dataclass(frozen=True)
class JpegEntry:
    """One image listed in dicom_info.csv: where it is below the jpeg folder and what it claims to be."""

    folder: str
    name: str
    series_uid: str
    role: str | None
    patient_id: str
    line: int


@dataclass
class KaggleTree:
    """A Kaggle JPEG download: its jpeg folder and the images dicom_info.csv lists, by series UID."""

    root: Path
    jpeg_dir: Path
    dicom_info: Path
    entries: list[JpegEntry]
    skipped: list[str] = field(default_factory=list)  # dicom_info rows whose image_path is unusable

    def by_series(self) -> dict[str, list[JpegEntry]]:
        """Series UID (and jpeg folder name) → its images, in dicom_info order."""
        index: dict[str, list[JpegEntry]] = {}
        for entry in self.entries:
            for key in dict.fromkeys((entry.folder, entry.series_uid)):
                if key:
                    index.setdefault(key, []).append(entry)
        return index

    def by_patient(self) -> dict[str, list[JpegEntry]]:
        """PatientID (the series folder name, Calc-Training_P_00005_RIGHT_CC[_1]) → its images."""
        index: dict[str, list[JpegEntry]] = {}
        for entry in self.entries:
            if entry.patient_id:
                index.setdefault(entry.patient_id, []).append(entry)
        return index

    def inside(self, path: Path) -> bool:
        """Whether a file lies (symbolic links followed) inside the data root or its jpeg folder.

        ROOT/jpeg itself may be a link to the disk holding the images, as ROOT/CBIS-DDSM may be for
        the DICOM release; a file that leaves both is never opened.
        """
        return _inside(self.root, path) or _inside(self.jpeg_dir, path)

    def path(self, entry: JpegEntry) -> str:
        """The file of an entry, below the jpeg folder."""
        return str(self.jpeg_dir / entry.folder / entry.name)


def _inside(root: Path, path: Path) -> bool:
    """Whether path (symbolic links followed) lies inside root."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))
    except OSError:
        return False


def find_jpeg_dir(root: Path, tables: dict) -> Path | None:
    """The ``jpeg/`` folder beside the case tables, beside their ``csv/`` folder or in root; None if absent.

    An empty ``jpeg/`` without a ``dicom_info.csv`` (e.g. beside a DICOM download) is no Kaggle copy.
    """
    root = Path(root)
    bases: list[Path] = []
    for table in tables.values():
        folder = Path(table).parent
        if folder.name.lower() == CSV_FOLDER:
            bases.append(folder.parent)
        bases.append(folder)
    bases.append(root)
    bases = [b for b in dict.fromkeys(bases) if _inside(root, b)]
    tables_at = [Path(t).parent for t in tables.values()]

    def kaggle_like(base: Path) -> bool:
        """base/jpeg holds images, or dicom_info.csv is there to say it should."""
        info = any((f / DICOM_INFO).is_file() for f in (base / CSV_FOLDER, base, *tables_at))
        return (base / JPEG_FOLDER).is_dir() and (info or _nonempty_dir(base / JPEG_FOLDER))

    return next((b / JPEG_FOLDER for b in bases if kaggle_like(b)), None)


def _nonempty_dir(folder: Path) -> bool:
    """A folder holding at least one entry."""
    try:
        return folder.is_dir() and any(os.scandir(folder))
    except OSError:
        return folder.is_dir()


def find_tree(root: Path, tables: dict) -> KaggleTree | None:
    """The Kaggle layout around the case tables (see :func:`find_jpeg_dir`), or None for the DICOM release.

    DataError when the layout is there but broken: a ``jpeg/`` folder without ``dicom_info.csv``.
    """
    root = Path(root)
    jpeg_dir = find_jpeg_dir(root, tables)
    if jpeg_dir is None:
        return None
    base = jpeg_dir.parent
    folders = [base / CSV_FOLDER, base] + [Path(t).parent for t in tables.values()]
    info = next(
        (f / DICOM_INFO for f in dict.fromkeys(folders) if (f / DICOM_INFO).is_file()), None
    )
    if info is None:
        raise DataError(
            f"{jpeg_dir}: a Kaggle JPEG re-release (jpeg/ folder) without its {DICOM_INFO} "
            f"(looked in {base / CSV_FOLDER} and beside the case tables); it maps each table row to "
            "its JPEGs: restore it from the download"
        )
    entries, skipped = read_dicom_info(info)
    return KaggleTree(
        root=root, jpeg_dir=jpeg_dir, dicom_info=info, entries=entries, skipped=skipped
    )


def _split_image_path(value: str) -> tuple[str, str] | None:
    """(series folder, file name) of an image_path variant, or None when it names no JPEG below jpeg/."""
    parts = [p for p in value.strip().replace("\\", "/").split("/") if p not in ("", ".")]
    lowered = [p.lower() for p in parts]
    if JPEG_FOLDER in lowered:
        parts = parts[len(lowered) - lowered[::-1].index(JPEG_FOLDER) :]
    if len(parts) < 2:
        return None
    folder, name = parts[-2], parts[-1]
    if ".." in (folder, name) or not name.lower().endswith(JPEG_SUFFIXES):
        return None
    return folder, name


def read_dicom_info(path: Path) -> tuple[list[JpegEntry], list[str]]:
    """The images dicom_info.csv lists, and a line per row whose image_path is unusable."""
    path = Path(path)
    text = _decode_table(path)
    first = text.split("\n", 1)[0]
    sep = ";" if first.count(";") > first.count(",") else ","
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, quoting=csv.QUOTE_MINIMAL
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot parse the table: {exc}") from exc
    if frame.empty:
        raise DataError(
            f"{path} lists no image (a header and no rows), so no table row can be mapped to its "
            "JPEG: restore it from the download"
        )
    lookup = {alias: canon for canon, aliases in _COLUMNS.items() for alias in aliases}
    cols: dict[str, str] = {}
    for name in frame.columns:
        canon = lookup.get(_key(name))
        if canon is not None and canon not in cols:
            cols[canon] = name
    if "image_path" not in cols:
        raise DataError(
            f"{path}: no 'image_path' column, so no table row can be mapped to its JPEG "
            f"(header: {', '.join(map(str, frame.columns))})"
        )
    entries, skipped, seen = [], [], {}
    for pos, row in enumerate(frame.to_dict("records")):
        line = pos + 2
        value = str(row[cols["image_path"]])
        where = _split_image_path(value)
        if where is None:
            skipped.append(
                f"{path.name} line {line}: image_path {value!r} names no jpeg/<uid>/<file>"
            )
            continue
        series = str(row.get(cols.get("series_uid", ""), "") or "").strip()
        description = str(row.get(cols.get("description", ""), "") or "").strip().lower()
        entry = JpegEntry(
            folder=where[0],
            name=where[1],
            series_uid=series or where[0],
            role=ROLES.get(description),
            patient_id=str(row.get(cols.get("patient_id", ""), "") or "").strip(),
            line=line,
        )
        first = seen.get((entry.folder.lower(), entry.name.lower()))
        if first is not None:  # the same file listed again: one image, not two
            if first.role is None and entry.role is not None:
                entries[entries.index(first)] = seen[(entry.folder.lower(), entry.name.lower())] = (
                    JpegEntry(**{**first.__dict__, "role": entry.role})
                )
            continue
        seen[(entry.folder.lower(), entry.name.lower())] = entry
        entries.append(entry)
    return entries, skipped


def _decode_table(path: Path) -> str:
    """The text of a table: UTF-8 (with or without a byte-order mark), UTF-16 with its mark, else
    Latin-1; DataError naming the table when it is UTF-16 / UTF-32 without a mark (NUL bytes)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: a UTF-16 table that does not decode ({exc})") from exc
    if b"\x00" in data[:4096]:
        raise DataError(
            f"{path} is not a text table in UTF-8 (it holds NUL bytes: UTF-16 or UTF-32 without a "
            "byte-order mark?): save it as UTF-8 CSV"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def layout_of(root: Path, abnormality: str = "calcification") -> str:
    """'kaggle-jpeg' when root holds the Kaggle re-release, 'dicom' otherwise (or when it holds no tables)."""
    try:
        tables = find_case_tables(Path(root), abnormality)
    except DataError:
        return "dicom"
    return "dicom" if find_jpeg_dir(Path(root), tables) is None else LAYOUT


# ------------------------------------------------------------------------------------- locating


def _series_of(table_path: str) -> str:
    """The series UID of a table path (the folder above the file name)."""
    parts = [p for p in str(table_path).replace("\\", "/").split("/") if p]
    return parts[-2] if len(parts) >= 2 else ""


class Locator:
    """Resolves a manifest row's table paths to the JPEGs dicom_info.csv lists for their series."""

    def __init__(self, tree: KaggleTree) -> None:
        """Index the tree's images by series."""
        self.tree = tree
        self.index = tree.by_series()
        self.patients = tree.by_patient()
        self.hits = 0  # files found: 0 after every row means no JPEG under the root at all

    def _listed(self, uid: str, what: str) -> str:
        """Why a series has no usable image (for the exclusion report)."""
        skipped = f" ({len(self.tree.skipped)} rows of it unusable)" if self.tree.skipped else ""
        return f"{what}: series {uid or '?'} not listed in {self.tree.dicom_info}{skipped}"

    def resolve(self, row: dict) -> Resolved:
        """Resolve one manifest row's full image, crop and mask to JPEG paths."""
        out = Resolved(full="", claimed_crop="", claimed_mask="", claims_known=False)
        full_uid = _series_of(row["full_path"])
        fulls = self.index.get(full_uid, [])
        if not fulls:  # the series UID unknown: the image's folder name, if it names one image
            folder = str(row["full_path"]).replace("\\", "/").split("/")[0]
            fulls = [e for e in self.patients.get(folder, []) if e.role in ("full", None)]
            fulls = fulls if len(fulls) == 1 else []
        if len(fulls) > 1:
            fulls = [e for e in fulls if e.role == "full"] or fulls
        if len(fulls) == 1:
            out.full = self.tree.path(fulls[0])
        elif fulls:
            out.ambiguous = f"full image series {full_uid} lists {len(fulls)} images: " + ", ".join(
                self.tree.path(e) for e in fulls
            )
        else:
            out.missing.append(self._listed(full_uid, "full image"))
            out.full = str(self.tree.jpeg_dir / (full_uid or "?"))
        uids = list(dict.fromkeys((_series_of(row["crop_path"]), _series_of(row["mask_path"]))))
        found = {
            self.tree.path(e): e
            for uid in uids
            for e in self.index.get(uid, [])
            if e.role != "full" and e.series_uid != full_uid
        }
        if len(found) < 2:  # a crop or mask in another series: the ROI's folder name (PatientID)
            folder = str(row["crop_path"]).replace("\\", "/").split("/")[0]
            more = {
                self.tree.path(e): e
                for e in self.patients.get(folder, [])
                if e.role != "full" and e.series_uid != full_uid
            }
            if len({**found, **more}) == 2:
                found = {**found, **more}
        entries = list(found.values())
        if len(entries) == 2:
            crops = [e for e in entries if e.role == "crop"]
            masks = [e for e in entries if e.role == "mask"]
            out.claims_known = len(crops) == 1 and len(masks) == 1
            crop, mask = (crops[0], masks[0]) if out.claims_known else entries
            out.claimed_crop, out.claimed_mask = self.tree.path(crop), self.tree.path(mask)
        elif len(entries) > 2:
            out.ambiguous = out.ambiguous or (
                f"ROI series {', '.join(uids)} list {len(entries)} images: " + ", ".join(found)
            )
        elif len(entries) == 1:
            only = entries[0]
            role = {"crop": "ROI mask", "mask": "cropped image"}.get(only.role, "crop or mask")
            out.missing.append(
                f"{role}: series {only.series_uid} lists only {self.tree.path(only)} "
                f"in {self.tree.dicom_info}"
            )
        else:
            out.missing.append(self._listed(", ".join(uids), "cropped image and ROI mask"))
        for role, path in (
            ("full image", out.full),
            ("cropped image", out.claimed_crop),
            ("ROI mask", out.claimed_mask),
        ):
            if not path or not path.lower().endswith(JPEG_SUFFIXES):
                continue
            if os.path.lexists(path) and not self.tree.inside(Path(path)):
                out.outside.append(
                    f"{role}: {path} resolves to {os.path.realpath(path)}, "
                    f"outside the data root {self.tree.root}"
                )
            elif os.path.isfile(path):
                self.hits += 1
            else:
                out.missing.append(f"{role} {path} (listed in {self.tree.dicom_info.name})")
        out.claimed_crop = out.claimed_crop or str(self.tree.jpeg_dir / (uids[0] or "?"))
        out.claimed_mask = out.claimed_mask or out.claimed_crop
        return out


# ------------------------------------------------------------------------------------- checking


def check_files(res: Resolved) -> RowCheck:
    """Check one ROI's JPEGs and decide by content which is the crop and which the mask."""
    out = RowCheck(crop=res.claimed_crop, mask=res.claimed_mask)
    if res.outside:
        out.reason, out.detail = "outside_root", "; ".join(res.outside)
        return out
    if res.ambiguous:
        out.reason, out.detail = "ambiguous_files", res.ambiguous
        return out
    if res.missing:
        out.reason, out.detail = "missing_file", "not found: " + "; ".join(res.missing)
        return out
    full = read_jpeg_header(res.full, check_end=True)
    if full.reason:
        out.reason, out.detail = full.reason, f"full image: {full.detail}"
        return out
    if full.too_large():
        out.reason, out.detail = "oversized_image", f"full image: {full.too_large()}"
        return out
    heads = read_jpeg_header(res.claimed_crop), read_jpeg_header(res.claimed_mask)
    pixels: dict[str, np.ndarray] = {}
    for head, role in zip(heads, ("cropped image (per dicom_info)", "ROI mask (per dicom_info)")):
        oversized = "" if head.reason else head.too_large(full)
        if oversized:  # before decoding: a few-KB file may declare gigabytes of pixels
            out.reason, out.detail = "oversized_image", f"{role}: {oversized}"
            return out
        data = read_jpeg_pixels(head.path) if not head.reason else head.detail
        if head.reason or isinstance(data, str):
            out.reason = head.reason or "corrupt_jpeg"
            out.detail = f"{role}: {data}"
            return out
        pixels[head.path] = data
    a, b = heads
    shape = (full.rows, full.columns)
    choice = choose_mask(
        ((a.rows, a.columns), (b.rows, b.columns)),
        shape,
        lambda i: is_near_binary(pixels[heads[i].path]),
        (a.path, b.path),
        "JPEGs are near-binary",
    )
    if choice.mask is None:
        out.reason, out.detail = choice.reason, choice.detail
        return out
    mask, crop = (a, b) if choice.mask == 0 else (b, a)
    out.crop, out.mask = crop.path, mask.path
    out.swapped = res.claims_known and choice.mask == 0
    size_note = (  # kept, as for the DICOM release: classification needs only the crop
        f"mask size mismatch: ROI mask {mask.path} is {mask.rows}x{mask.columns}, "
        f"full image {full.path} is {shape[0]}x{shape[1]} (kept: only the crop is used)"
        if (mask.rows, mask.columns) != shape
        else ""
    )
    try:  # the very check the preprocessing applies to the crop
        _, image_note = check_jpeg_image(crop.path)
    except UnusableImage as exc:
        out.reason, out.detail = exc.reason, f"cropped image: {exc}"
        return out
    notes = [n for n in (size_note, image_note, *(h.note() for h in (full, crop, mask))) if n]
    notes = list(dict.fromkeys(notes))
    if not res.claims_known:
        notes.append(
            "crop and mask told apart by content (dicom_info.csv does not name them apart)"
        )
    out.note = "; ".join(notes)
    return out


def kaggle_layout(tree: KaggleTree) -> Layout:
    """The Kaggle JPEG re-release as a layout: its locator, its check, where it looks."""
    return Layout(LAYOUT, Locator(tree), check_files, LAYOUTS_TRIED)
