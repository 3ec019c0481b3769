"""Curation of a CBIS-DDSM download: the official case-description tables + the DICOM tree → a manifest.

One manifest row per ROI of the tables, whatever happens to it: ``status`` is ``ok`` for a usable ROI,
``excluded`` (with a ``reason`` and a ``detail`` naming the file) otherwise, or ``unchecked`` when the
images were not opened (``check_images=False``: only the tables are parsed and the paths resolved by
name; a row whose files are not found keeps ``unchecked`` and says so in ``note``).

What the tables need (see the collection's quirks): quoted newlines inside paths, ``N/A``/``NA`` for
missing values, CRLF line ends, ``breast density`` vs ``breast_density``, ``LUCENT_CENTER`` vs
``LUCENT_CENTERED`` and repeated terms (``PLEOMORPHIC-PLEOMORPHIC``) in the type columns, density 0.
Compound types are written canonically: terms normalised, de-duplicated and sorted, joined by ``-``
(``PUNCTATE-PLEOMORPHIC`` → ``PLEOMORPHIC-PUNCTATE``).

Where the files are: (1) the tables' UID paths below the root (or below ``CBIS-DDSM/`` there);
(2) otherwise the NBIA downloader's descriptive layout, found by the top series folder name
(``Calc-Training_P_00005_RIGHT_CC`` for the full image, ``..._1`` for the ROI's crop and mask);
(3) the Kaggle JPEG re-release (``csv/dicom_info.csv`` + ``jpeg/<SeriesInstanceUID>/1-N.jpg``), detected
by its ``jpeg/`` folder and read by :mod:`mcalc.data.kaggle` (8-bit lossy pixels, labelled as such).

Nothing outside the data root is used: a table path that is absolute or climbs out with ``..``, or a
file that resolves (after symlinks) outside ROOT and ROOT/CBIS-DDSM, excludes its row as
``outside_root`` without being opened. A symlink loop in the tree is skipped with a warning. A root
with tables but no image at all is a DataError naming the layouts tried.

Which ROI file is the crop and which the mask is decided by content, never by file name: the mask has
the full image's rows × columns (DICOM headers), and when the headers cannot tell, the mask is the one
with at most two distinct pixel values. A table whose crop is really the mask is corrected and the ROI
listed in the swaps table.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from pydicom.errors import InvalidDicomError

from mcalc.data import kaggle
from mcalc.errors import DataError, UnusableImage
from mcalc.learn.preprocessing import check_dicom_image
from mcalc.records.fsio import write_files
from mcalc.records.manifest import EXCLUSION_COLUMNS, MANIFEST_COLUMNS, SWAP_COLUMNS, manifest_frame
from mcalc.records.provenance import Provenance
from mcalc.study import CLASSES, SPLITS

log = logging.getLogger(__name__)

ABNORMALITIES = ("calc", "mass")
TABLE_FILES: dict[tuple[str, str], str] = {
    (abn, split): f"{abn}_case_description_{split}_set.csv"
    for abn in ABNORMALITIES
    for split in SPLITS
}
DICOM_FOLDER = "CBIS-DDSM"
SERIES_FOLDER = re.compile(r"^(Calc|Mass)-(Training|Test)_P_\d+_(LEFT|RIGHT)_(CC|MLO)(_\d+)?$")
MISSING_STRINGS = frozenset({"", "N/A", "NA", "n/a", "na", "NaN", "nan", "None", "NULL", "null"})
TERM_SYNONYMS = {"LUCENT_CENTERED": "LUCENT_CENTER"}
SPLIT_PREFIX = {"train": "Training", "test": "Test"}
ABNORMALITY_PREFIX = {"calc": "Calc", "mass": "Mass"}

# canonical column → accepted header spellings (compared after lower-casing and turning "_" into " ")
_HEADER_ALIASES = {
    "patient_id": ("patient id",),
    "density": ("breast density", "density"),
    "side": ("left or right breast",),
    "view": ("image view",),
    "abnormality_id": ("abnormality id",),
    "abnormality_type": ("abnormality type",),
    "calc_type": ("calc type",),
    "calc_distribution": ("calc distribution",),
    "mass_shape": ("mass shape",),
    "mass_margins": ("mass margins",),
    "assessment": ("assessment",),
    "pathology": ("pathology",),
    "subtlety": ("subtlety",),
    "image_path": ("image file path",),
    "crop_csv_path": ("cropped image file path",),
    "mask_csv_path": ("roi mask file path",),
}
_COMMON_REQUIRED = (
    "patient_id",
    "density",
    "side",
    "view",
    "abnormality_id",
    "abnormality_type",
    "assessment",
    "pathology",
    "subtlety",
    "image_path",
    "crop_csv_path",
    "mask_csv_path",
)
_REQUIRED = {
    "calc": _COMMON_REQUIRED + ("calc_type", "calc_distribution"),
    "mass": _COMMON_REQUIRED + ("mass_shape", "mass_margins"),
}
_RANGES = {"density": (1, 4), "assessment": (0, 6), "subtlety": (1, 5)}


# ------------------------------------------------------------------------------------------ tables


def abnormality_key(abnormality: str) -> str:
    """'calc' or 'mass' from the accepted spellings ('calcification', 'calc', 'mass')."""
    key = str(abnormality).strip().lower()
    key = {"calcification": "calc", "calcifications": "calc", "masses": "mass"}.get(key, key)
    if key not in ABNORMALITIES:
        raise ValueError(
            f"abnormality must be 'calcification' (or 'calc') or 'mass', not {abnormality!r}"
        )
    return key


def _header_key(name: str) -> str:
    """A header cell compared loosely: trimmed, lower case, underscores as spaces, single spaces."""
    return " ".join(str(name).replace("\ufeff", "").replace("_", " ").lower().split())


def _canonical_columns(header: list[str], path: Path) -> dict[str, int]:
    """Canonical column name → position in the header; DataError on a column given twice."""
    lookup = {alias: canon for canon, aliases in _HEADER_ALIASES.items() for alias in aliases}
    found: dict[str, int] = {}
    for pos, cell in enumerate(header):
        canon = lookup.get(_header_key(cell))
        if canon is None:
            continue
        if canon in found:
            raise DataError(
                f"{path}: column {canon!r} appears twice in the header "
                f"({header[found[canon]]!r} and {cell!r})"
            )
        found[canon] = pos
    return found


def _clean(value: str | None) -> str | None:
    """A cell trimmed, with embedded line breaks removed; None for the missing-value spellings."""
    if value is None:
        return None
    text = re.sub(r"[\r\n]+", "", value).strip()
    return None if text in MISSING_STRINGS else text


def normalise_terms(value: str | None) -> str | None:
    """A type value in canonical form: terms upper-cased, synonyms merged, de-duplicated, sorted, '-'-joined."""
    if value is None:
        return None
    terms = {
        TERM_SYNONYMS.get(t, t)
        for t in (p.strip().upper().replace(" ", "_") for p in value.split("-"))
        if t
    }
    return "-".join(sorted(terms)) if terms else None


def _parse_int(value: str | None) -> int | None:
    """An integer cell ('3', '3.0'); None when missing or not an integer."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def _read_records(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (start line, cells) of every non-empty record, with the csv module (quoted newlines, CRLF)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = Path(path).read_text(encoding="latin-1")
    except OSError as exc:
        raise DataError(f"cannot read case table {path}: {exc}") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(
            f"{path}: empty file, expected a CBIS-DDSM case-description table"
        ) from None
    except csv.Error as exc:
        raise DataError(f"{path}: cannot parse the header: {exc}") from exc
    records, line = [], reader.line_num + 1
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                records.append((line, cells))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{path}, line {line}: cannot parse the record: {exc}") from exc
    return header, records


def _mark(row: dict, reason: str, detail: str) -> None:
    """Mark a row excluded unless it already is (the first reason wins)."""
    if row["status"] != "excluded":
        row.update(status="excluded", reason=reason, detail=detail)


def _note(row: dict, text: str) -> None:
    """Append a note to a row."""
    row["note"] = f"{row['note']}; {text}" if row["note"] else text


def _tidy_record(
    cells: list[str], cols: dict[str, int], width: int, split: str, abn: str, source: str, line: int
) -> dict:
    """One table record → a tidy manifest row (paths still as written in the table, below the root)."""
    raw = {canon: _clean(cells[pos]) if pos < len(cells) else None for canon, pos in cols.items()}
    row = {c: None for c in MANIFEST_COLUMNS}
    row.update(
        split=split,
        crop_mask_swapped=False,
        status="ok",
        reason="",
        detail="",
        note="",
        source_file=source,
        source_line=line,
    )
    for key in ("patient_id", "abnormality_type"):
        row[key] = raw.get(key)
    for key in ("side", "view", "pathology"):
        row[key] = raw[key].upper() if raw.get(key) else None
    for key in ("calc_type", "calc_distribution", "mass_shape", "mass_margins"):
        row[key] = normalise_terms(raw.get(key))
    row["full_path"], row["crop_path"], row["mask_path"] = (
        raw.get("image_path"),
        raw.get("crop_csv_path"),
        raw.get("mask_csv_path"),
    )
    row["abnormality_id"] = _parse_int(raw.get("abnormality_id"))
    for key, (lo, hi) in _RANGES.items():
        value = _parse_int(raw.get(key))
        if raw.get(key) is not None and value is None:
            _note(row, f"{key} {raw[key]!r} is not an integer: set to NA")
        elif value is not None and not lo <= value <= hi:
            _note(row, f"{key} {value} outside {lo}-{hi}: set to NA")
            value = None
        row[key] = value
    problems = []
    if len(cells) < width or any(c.strip() for c in cells[width:]):
        problems.append(f"{len(cells)} fields where the header has {width}")
    if not row["patient_id"] or not re.fullmatch(r"P_\d+", row["patient_id"]):
        problems.append(f"patient_id {raw.get('patient_id')!r}")
    if row["side"] not in ("LEFT", "RIGHT"):
        problems.append(f"left or right breast {raw.get('side')!r}")
    if row["view"] not in ("CC", "MLO"):
        problems.append(f"image view {raw.get('view')!r}")
    if row["abnormality_id"] is None or row["abnormality_id"] < 1:
        problems.append(f"abnormality id {raw.get('abnormality_id')!r}")
    for key, name in (
        ("full_path", "image file path"),
        ("crop_path", "cropped image file path"),
        ("mask_path", "ROI mask file path"),
    ):
        if not row[key]:
            problems.append(f"{name} missing")
    if problems:
        folder = (row["crop_path"] or "").split("/")[0]
        row["roi_id"] = folder if SERIES_FOLDER.match(folder) else f"{source}:{line}"
        _mark(row, "invalid_record", f"{source} line {line}: " + "; ".join(problems))
    else:
        image = f"{row['patient_id']}_{row['side']}_{row['view']}"
        row["image_id"] = image
        row["roi_id"] = (
            f"{ABNORMALITY_PREFIX[abn]}-{SPLIT_PREFIX[split]}_{image}_{row['abnormality_id']}"
        )
        folder = row["crop_path"].split("/")[0]
        if folder != row["roi_id"]:
            _note(row, f"crop path folder {folder!r} differs from the ROI id")
    if row["pathology"] in CLASSES:
        row["label"] = CLASSES.index(row["pathology"])
    else:
        _mark(
            row,
            "unknown_pathology",
            f"{source} line {line}: pathology {raw.get('pathology')!r} "
            f"is not one of {', '.join(CLASSES)}",
        )
    return row


def _mark_duplicates(rows: list[dict]) -> None:
    """Keep the first row of each ROI id; mark the later ones excluded as duplicates."""
    first: dict[str, dict] = {}
    for row in rows:
        key = row["roi_id"]
        if key in first:
            kept = first[key]
            _mark(
                row,
                "duplicate",
                f"{row['source_file']} line {row['source_line']}: same ROI as "
                f"{kept['source_file']} line {kept['source_line']}",
            )
        else:
            first[key] = row


def read_case_table(path: Path, split: str, abnormality: str) -> pd.DataFrame:
    """Read one official case-description table into manifest columns (paths as written, status/reason set)."""
    rows = _table_rows(path, split, abnormality)
    _mark_duplicates(rows)
    return manifest_frame(rows)


def _table_rows(path: Path, split: str, abnormality: str) -> list[dict]:
    """One manifest row (a dict; missing cells None) per record of a case-description table."""
    path = Path(path)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    abn = abnormality_key(abnormality)
    header, records = _read_records(path)
    cols = _canonical_columns(header, path)
    missing = [c for c in _REQUIRED[abn] if c not in cols]
    if missing:
        official = {
            "patient_id": "patient_id",
            "mask_csv_path": "ROI mask file path",
            "density": "breast_density" if abn == "mass" else "breast density",
        }  # as the tables spell them
        names = [official.get(c, _HEADER_ALIASES[c][0]) for c in missing]
        raise DataError(
            f"{path}: missing required column(s) {', '.join(repr(n) for n in names)} "
            f"(header: {', '.join(header)})"
        )
    return [
        _tidy_record(cells, cols, len(header), split, abn, path.name, line)
        for line, cells in records
    ]


def find_case_tables(root: Path, abnormality: str = "calcification") -> dict[tuple[str, str], Path]:
    """The official tables of one abnormality found in root or one or two folder levels below it."""
    root = Path(root)
    abn = abnormality_key(abnormality)
    wanted = {name: key for key, name in TABLE_FILES.items() if key[0] == abn}
    if not root.is_dir():
        detail = ""
        try:
            root.stat()
        except OSError as exc:
            detail = f" ({exc.strerror or exc})"
        raise DataError(f"data root {root} is not a folder{detail}")
    found: dict[tuple[str, str], Path] = {}
    skipped: list[str] = []
    level = [root]
    for _depth in range(3):
        below = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                try:
                    is_file, is_dir = entry.is_file(), entry.is_dir()
                except OSError as exc:  # a symlink loop (ELOOP), a vanished or unreadable entry
                    skipped.append(f"{folder / entry.name} ({exc.strerror or exc})")
                    continue
                if entry.name in wanted and is_file and wanted[entry.name] not in found:
                    found[wanted[entry.name]] = folder / entry.name
                elif (
                    is_dir
                    and not entry.name.startswith(".")
                    and not SERIES_FOLDER.match(entry.name)
                ):
                    below.append(folder / entry.name)
        level = below
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable entr{'y' if len(skipped) == 1 else 'ies'} while "
            f"looking for the case tables: {'; '.join(skipped)}",
            CurationWarning,
            stacklevel=2,
        )
    if not found:
        raise DataError(
            f"no CBIS-DDSM case-description table for {abn} found in {root} or two levels below "
            f"(expected {' and/or '.join(sorted(wanted))})"
        )
    return dict(sorted(found.items()))


# --------------------------------------------------------------------------------------- the files


def index_dicom_tree(root: Path) -> dict[str, list[Path]]:
    """Map each top series folder name (Calc-Training_P_00005_RIGHT_CC[_1]) to the .dcm files beneath it."""
    root = Path(root)
    index: dict[str, list[Path]] = {}
    owner: dict[str, str | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        name = os.path.basename(dirpath)
        parent = owner.get(os.path.dirname(dirpath))
        series = name if parent is None and SERIES_FOLDER.match(name) else parent
        owner[dirpath] = series
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if series is not None:
            files = [Path(dirpath, f) for f in filenames if f.lower().endswith(".dcm")]
            if files or series not in index:
                index.setdefault(series, []).extend(files)
    return {k: sorted(v) for k, v in index.items()}


def _nbia_name(csv_name: str) -> str | None:
    """The NBIA downloader's file name for a table file name ('000001.dcm' → '1-2.dcm')."""
    match = re.fullmatch(r"0*(\d+)\.dcm", csv_name)
    return f"1-{int(match.group(1)) + 1}.dcm" if match else None


@dataclass
class _Resolved:
    """Where one ROI's files are: the full image and the two ROI files as the table names them."""

    full: str
    claimed_crop: str
    claimed_mask: str
    claims_known: bool
    missing: list[str] = field(default_factory=list)
    ambiguous: str = ""
    outside: list[str] = field(default_factory=list)


#: The layouts the locator tries, in order (named in the message when no image is found at all).
LAYOUTS_TRIED = (
    "the tables' UID paths below ROOT or ROOT/CBIS-DDSM",
    "the NBIA downloader's series folders (Calc-Training_P_00005_RIGHT_CC[_1]/...) anywhere below ROOT",
)


def _escapes(rel: str) -> bool:
    """True when a table path is absolute or climbs out with '..' (it names no file below the root)."""
    text = rel.replace("\\", "/")
    return (
        os.path.isabs(rel)
        or text.startswith(("/", "~"))
        or re.match(r"^[A-Za-z]:", text) is not None
        or ".." in text.split("/")
    )


class _Locator:
    """Resolves table paths below a root: the UID layout first, then the NBIA layout by series folder.

    Nothing outside the data root is ever used: a table path that is absolute or climbs out with
    '..', and a file that resolves (after symlinks) outside ROOT and ROOT/CBIS-DDSM (which may be a
    link to the disk holding the images), are reported as ``outside_root`` and never opened.
    """

    def __init__(self, root: Path) -> None:
        """Prepare the lookup for root (the folder index is built on first need)."""
        self.root = Path(root)
        self.bases = [self.root, self.root / DICOM_FOLDER]
        self.allowed = sorted({os.path.realpath(b) for b in self.bases})
        self.hits = 0  # files found by name: 0 after every row means no image under the root at all
        self._index: dict[str, list[Path]] | None = None

    def inside(self, path: str | Path) -> bool:
        """True when path, after symlinks, lies within the data root."""
        real = os.path.realpath(path)
        return any(real == a or real.startswith(a.rstrip(os.sep) + os.sep) for a in self.allowed)

    def index(self) -> dict[str, list[Path]]:
        """The series folder index of the root, and of ROOT/CBIS-DDSM when it is a link (built once)."""
        if self._index is None:
            self._index = index_dicom_tree(self.root)
            if self.bases[1].is_symlink() and self.bases[1].is_dir():  # os.walk does not follow it
                for series, files in index_dicom_tree(self.bases[1]).items():
                    self._index.setdefault(series, []).extend(files)
        return self._index

    def table_path(self, rel: str) -> str | None:
        """The file a table path names below the root (or below CBIS-DDSM/), or None."""
        if _escapes(rel):
            return None
        for base in self.bases:
            path = base / rel
            if path.is_file():
                self.hits += 1
                return str(path)
        return None

    def expected(self, rel: str) -> str:
        """Where a table path would be (for reports when it is absent)."""
        base = self.bases[1] if self.bases[1].is_dir() else self.bases[0]
        return str(base / rel)

    def folder_files(self, *names: str) -> list[str]:
        """The .dcm files under the first of the series folders that the index holds."""
        index = self.index()
        for name in dict.fromkeys(names):
            if name in index:
                self.hits += bool(index[name])
                return [str(p) for p in index[name]]
        return []

    def resolve(self, row: dict) -> _Resolved:
        """Resolve one manifest row's full image, crop and mask paths by name, all within the root."""
        out = self._by_name(row)
        for role, rel, path in (
            ("image file path", row["full_path"], out.full),
            ("cropped image file path", row["crop_path"], out.claimed_crop),
            ("ROI mask file path", row["mask_path"], out.claimed_mask),
        ):
            if _escapes(rel):
                out.outside.append(f"{role} {rel!r} leaves the data root {self.root}")
            elif os.path.lexists(path) and not self.inside(path):
                out.outside.append(
                    f"{role}: {path} resolves to {os.path.realpath(path)}, "
                    f"outside the data root {self.root}"
                )
        return out

    def _by_name(self, row: dict) -> _Resolved:
        """Where one row's files are by name (UID paths, then series folders); nothing is opened."""
        full_rel, crop_rel, mask_rel = row["full_path"], row["crop_path"], row["mask_path"]
        full_folder = (
            f"{row['roi_id'].rsplit('_', 1)[0]}" if row["image_id"] else full_rel.split("/")[0]
        )
        roi_folders = (row["roi_id"], crop_rel.split("/")[0], mask_rel.split("/")[0])
        out = _Resolved(
            full="", claimed_crop="", claimed_mask="", claims_known=crop_rel != mask_rel
        )
        full = self.table_path(full_rel)
        if full is None:
            files = self.folder_files(full_folder, full_rel.split("/")[0])
            if len(files) == 1:
                full = files[0]
            elif len(files) > 1:
                out.ambiguous = (
                    f"full image folder {full_folder} holds {len(files)} files: {', '.join(files)}"
                )
        if full is None:
            out.missing.append(f"full image {self.expected(full_rel)}")
            full = self.expected(full_rel)
        out.full = full
        crop, mask = self.table_path(crop_rel), self.table_path(mask_rel)
        if crop is not None and mask is not None and crop != mask:
            out.claimed_crop, out.claimed_mask = crop, mask
            return out
        folder = self.folder_files(*roi_folders)
        known = [p for p in (crop, mask) if p is not None]
        extra = [f for f in folder if f not in known]
        if known:  # one file found by its table path (or both paths name the same file): the other from the folder
            other = extra[0] if len(extra) == 1 else None
            if len(extra) > 1:
                out.ambiguous = (
                    f"ROI folder {row['roi_id']} holds {len(folder)} files: {', '.join(folder)}"
                )
            if crop is not None and mask is not None:  # the same file twice in the table
                out.claims_known = False
                mask = other
            elif crop is not None:
                mask = other
            else:
                crop = other
            if other is None and not out.ambiguous:
                role = "ROI mask" if crop is not None else "cropped image"
                rel = mask_rel if crop is not None else crop_rel
                out.missing.append(f"{role} {self.expected(rel)}")
            out.claimed_crop = crop or self.expected(crop_rel)
            out.claimed_mask = mask or self.expected(mask_rel)
            return out
        if len(folder) == 2:
            by_name = {Path(f).name: f for f in folder}
            crop_name, mask_name = crop_rel.rsplit("/", 1)[-1], mask_rel.rsplit("/", 1)[-1]
            for claim_crop, claim_mask in (
                (crop_name, mask_name),
                (_nbia_name(crop_name), _nbia_name(mask_name)),
            ):
                if (
                    out.claims_known
                    and claim_crop != claim_mask
                    and {claim_crop, claim_mask} <= set(by_name)
                ):
                    out.claimed_crop, out.claimed_mask = by_name[claim_crop], by_name[claim_mask]
                    break
            else:
                out.claims_known = False
                out.claimed_crop, out.claimed_mask = folder
            return out
        if len(folder) > 2:
            out.ambiguous = (
                f"ROI folder {row['roi_id']} holds {len(folder)} files: {', '.join(folder)}"
            )
        elif len(folder) == 1:
            present = Path(folder[0]).name
            role = (
                "ROI mask"
                if present == _nbia_name(crop_rel.rsplit("/", 1)[-1])
                else "cropped image"
                if present == _nbia_name(mask_rel.rsplit("/", 1)[-1])
                else "cropped image or ROI mask"
            )
            out.missing.append(f"{role} (only {folder[0]} in ROI folder {row['roi_id']})")
        else:
            out.missing.append(
                f"cropped image {self.expected(crop_rel)} and ROI mask {self.expected(mask_rel)}"
            )
        out.claimed_crop = folder[0] if folder else self.expected(crop_rel)
        out.claimed_mask = folder[1] if len(folder) > 1 else self.expected(mask_rel)
        return out


@dataclass(frozen=True)
class DicomHeader:
    """What the header of one file says, or why it cannot be used (reason '' when usable)."""

    path: str
    reason: str = ""
    detail: str = ""
    rows: int = 0
    columns: int = 0


def read_dicom_header(path: str) -> DicomHeader:
    """Read a DICOM header without pixels; check the pixel data is all there (uncompressed syntaxes)."""
    if not os.path.isfile(path):
        return DicomHeader(path, "missing_file", f"{path} not found")
    try:
        with open(path, "rb") as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True)
            offset = fh.tell()
    except InvalidDicomError as exc:
        return DicomHeader(path, "not_dicom", f"{path} is not a DICOM file ({exc})")
    except Exception as exc:  # noqa: BLE001 - any parse failure of a damaged file is reported, not raised
        return DicomHeader(
            path, "corrupt_dicom", f"{path}: unreadable DICOM header ({type(exc).__name__}: {exc})"
        )
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
    except AttributeError:
        return DicomHeader(path, "corrupt_dicom", f"{path}: no Rows/Columns in the DICOM header")
    except Exception as exc:  # noqa: BLE001 - a damaged value (wrong length, not a number) is reported
        return DicomHeader(
            path, "corrupt_dicom", f"{path}: unreadable Rows/Columns ({type(exc).__name__}: {exc})"
        )
    if rows < 1 or cols < 1:
        return DicomHeader(path, "corrupt_dicom", f"{path}: image of {rows} x {cols} pixels")
    size = os.path.getsize(path)
    if offset >= size:
        return DicomHeader(
            path, "corrupt_dicom", f"{path}: no pixel data (file ends after the header)"
        )
    try:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is not None and not syntax.is_compressed:
            bits = int(getattr(ds, "BitsAllocated", 16) or 16)
            samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
            frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
            expected = (rows * cols * samples * frames * bits + 7) // 8
            # the pixel element's tag and length: 8 bytes (implicit VR) or 12 (explicit VR, OB/OW)
            available = size - offset - (8 if syntax.is_implicit_VR else 12)
            if available < expected:
                return DicomHeader(
                    path,
                    "corrupt_dicom",
                    f"{path}: truncated pixel data ({max(available, 0)} of {expected} bytes)",
                )
    except Exception as exc:  # noqa: BLE001 - damaged header values are reported, not raised
        return DicomHeader(
            path, "corrupt_dicom", f"{path}: unreadable DICOM header ({type(exc).__name__}: {exc})"
        )
    return DicomHeader(path, rows=rows, columns=cols)


def read_dicom_pixels(path: str) -> np.ndarray | str:
    """The pixel array of a DICOM file, or a message saying why it cannot be read."""
    try:
        ds = pydicom.dcmread(path)
        if (
            "PixelData" not in ds
        ):  # Float / Double Float Pixel Data: not a mammogram the preprocessing reads
            return f"{path}: no integer pixel data (PixelData element absent)"
        return np.asarray(ds.pixel_array)
    except Exception as exc:  # noqa: BLE001 - a damaged file is reported as an exclusion
        return f"{path}: unreadable pixel data ({type(exc).__name__}: {exc})"


def is_binary(pixels: np.ndarray) -> bool:
    """True when an image holds at most two distinct values (a mask)."""
    flat = pixels.ravel()
    if flat.size == 0:
        return True
    rest = flat[flat != flat[0]]
    return rest.size == 0 or bool((rest == rest[0]).all())


@dataclass(frozen=True)
class MaskChoice:
    """Which of an ROI's two files is the mask (0 or 1), or why content cannot tell (``mask`` None)."""

    mask: int | None
    reason: str = ""
    detail: str = ""


def choose_mask(
    sizes: tuple[tuple[int, int], tuple[int, int]],
    full_shape: tuple[int, int],
    near_binary: Callable[[int], bool],
    names: tuple[str, str],
    binary_words: str = "files are binary",
) -> MaskChoice:
    """Pick the mask of two ROI files: the one of the full image's size, else the only near-binary one."""
    full_size = [i for i in (0, 1) if tuple(sizes[i]) == tuple(full_shape)]
    if len(full_size) == 1:
        return MaskChoice(full_size[0])
    binary = [i for i in (0, 1) if near_binary(i)]  # pixels read only when sizes cannot tell
    if len(binary) == 1:
        return MaskChoice(binary[0])
    listed = ", ".join(f"{name} {rows}x{cols}" for name, (rows, cols) in zip(names, sizes))
    return MaskChoice(
        None,
        "crop_mask_undecided",
        f"cannot tell crop from mask: {len(binary)} of the two {binary_words} and "
        f"{len(full_size)} have the full image's size {full_shape[0]}x{full_shape[1]} ({listed})",
    )


@dataclass
class _RowCheck:
    """The outcome of checking one ROI's files."""

    crop: str
    mask: str
    swapped: bool = False
    reason: str = ""
    detail: str = ""
    note: str = ""


def _check_files(res: _Resolved) -> _RowCheck:
    """Check one ROI's files by content and decide which ROI file is the crop and which the mask."""
    out = _RowCheck(crop=res.claimed_crop, mask=res.claimed_mask)
    if res.outside:
        out.reason, out.detail = "outside_root", "; ".join(res.outside)
        return out
    if res.ambiguous:
        out.reason, out.detail = "ambiguous_files", res.ambiguous
        return out
    if res.missing:
        out.reason, out.detail = "missing_file", "not found: " + "; ".join(res.missing)
        return out
    full = read_dicom_header(res.full)
    if full.reason:
        out.reason, out.detail = full.reason, f"full image: {full.detail}"
        return out
    a, b = read_dicom_header(res.claimed_crop), read_dicom_header(res.claimed_mask)
    for head, role in ((a, "cropped image (per table)"), (b, "ROI mask (per table)")):
        if head.reason:
            out.reason, out.detail = head.reason, f"{role}: {head.detail}"
            return out
    shape = (full.rows, full.columns)

    def binary(i: int) -> bool:
        """Whether ROI file i (0: claimed crop, 1: claimed mask) is binary; unreadable pixels raise."""
        data = read_dicom_pixels((a, b)[i].path)
        if isinstance(data, str):
            raise UnusableImage(data, "corrupt_dicom")
        return is_binary(data)

    try:
        choice = choose_mask(
            ((a.rows, a.columns), (b.rows, b.columns)), shape, binary, (a.path, b.path)
        )
    except UnusableImage as exc:
        out.reason, out.detail = exc.reason, str(exc)
        return out
    if choice.mask is None:
        out.reason, out.detail = choice.reason, choice.detail
        return out
    mask, crop = (a, b) if choice.mask == 0 else (b, a)
    out.crop, out.mask = crop.path, mask.path
    out.swapped = res.claims_known and choice.mask == 0
    if (mask.rows, mask.columns) != shape:  # kept: classification needs only the crop
        size_note = (
            f"mask size mismatch: ROI mask {mask.path} is {mask.rows}x{mask.columns}, "
            f"full image {full.path} is {shape[0]}x{shape[1]} (kept: only the crop is used)"
        )
    else:
        size_note = ""
    try:  # the very check the preprocessing applies to the crop
        _, image_note = check_dicom_image(crop.path)
    except UnusableImage as exc:
        out.reason, out.detail = exc.reason, f"cropped image: {exc}"
        return out
    notes = [n for n in (size_note, image_note) if n]
    if not res.claims_known:
        notes.append("crop and mask told apart by content (the table does not name them apart)")
    out.note = "; ".join(notes)
    return out


# ------------------------------------------------------------------------------------ curation


@dataclass
class CurationResult:
    """A curated download: the manifest (every table row), the exclusion report, the corrected swaps."""

    manifest: pd.DataFrame
    exclusions: pd.DataFrame
    swaps: pd.DataFrame
    tables: dict[tuple[str, str], Path]
    is_phantom: bool
    layout: str = "dicom"  # "dicom" (the official release, either folder layout) or "kaggle-jpeg"

    def summary(self, status: str = "ok") -> pd.DataFrame:
        """Counts of the rows with this status per split (rows) × pathology (columns), with totals."""
        rows = self.manifest[self.manifest["status"] == status]
        table = pd.crosstab(rows["split"], rows["pathology"])
        table = (
            table.reindex(index=[s for s in SPLITS], columns=list(CLASSES), fill_value=0)
            .fillna(0)
            .astype(int)
        )
        table.loc["total"] = table.sum()
        table["total"] = table.sum(axis=1)
        return table

    def usable(self) -> pd.DataFrame:
        """The usable (status ok) rows, renumbered from 0."""
        return self.manifest[self.manifest["status"] == "ok"].reset_index(drop=True)


class CurationWarning(UserWarning):
    """Rows of a download that curation excluded (one warning per kind of exclusion, with its count)."""


def _exclusions(manifest: pd.DataFrame) -> pd.DataFrame:
    """The exclusion report: one line per excluded row."""
    ex = manifest[manifest["status"] == "excluded"]
    return ex[EXCLUSION_COLUMNS].reset_index(drop=True)


def _swaps(manifest: pd.DataFrame) -> pd.DataFrame:
    """The corrected crop/mask swaps: one line per ROI."""
    return manifest.loc[manifest["crop_mask_swapped"], SWAP_COLUMNS].reset_index(drop=True)


def _announce(manifest: pd.DataFrame) -> None:
    """One warning per exclusion reason with its count; a log line for the rows with notes."""
    counts = Counter(manifest.loc[manifest["status"] == "excluded", "reason"])
    for reason, n in sorted(counts.items()):
        warnings.warn(
            f"{n} ROI(s) excluded: {reason} (listed with the file at fault in the exclusion report)",
            CurationWarning,
            stacklevel=3,
        )
    noted = int((manifest["note"] != "").sum())
    if noted:
        log.info("%d ROI(s) kept with a note (for example density out of range set to NA)", noted)


def _map(func: Callable, items: list, workers: int, progress: bool, desc: str) -> list:
    """Apply func to items in order with a small thread pool, with a progress bar when asked."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(items), desc=desc, unit="ROI", disable=not progress)
    try:
        if workers <= 1:
            out = []
            for item in items:
                out.append(func(item))
                bar.update()
            return out
        with ThreadPoolExecutor(max_workers=workers) as pool:
            out = []
            for result in pool.map(func, items):
                out.append(result)
                bar.update()
            return out
    finally:
        bar.close()


def _read_tables(tables: dict[tuple[str, str], Path]) -> list[dict]:
    """Read and stack the tables' rows (train before test), duplicates marked across them."""
    rows = [
        row
        for (abn, split), path in sorted(tables.items(), key=lambda kv: SPLITS.index(kv[0][1]))
        for row in _table_rows(path, split, abn)
    ]
    _mark_duplicates(rows)
    return rows


def curate(
    root: Path,
    abnormality: str = "calcification",
    check_images: bool = True,
    progress: bool = True,
    workers: int = 4,
) -> CurationResult:
    """Curate a download (tables + DICOM tree, or a phantom); check_images=False opens no file: rows 'unchecked'."""
    root = Path(root)
    tables = find_case_tables(root, abnormality)
    rows = _read_tables(tables)
    tree = kaggle.find_tree(root, tables)  # None for the DICOM release
    locator = _Locator(root) if tree is None else kaggle.Locator(tree)
    check = _check_files if tree is None else kaggle.check_files
    todo = [i for i, r in enumerate(rows) if r["status"] == "ok"]
    resolved = {}
    for i, r in enumerate(rows):
        if r["full_path"] and r["crop_path"] and r["mask_path"]:
            resolved[i] = locator.resolve(r)
            rows[i]["full_path"] = resolved[i].full
            rows[i]["crop_path"], rows[i]["mask_path"] = (
                resolved[i].claimed_crop,
                resolved[i].claimed_mask,
            )
            if resolved[i].outside:  # known without opening anything, so also without images
                _mark(rows[i], "outside_root", "; ".join(resolved[i].outside))
    todo = [i for i in todo if rows[i]["status"] == "ok"]
    if check_images and todo and locator.hits == 0:
        raise DataError(
            f"no image found under {root} for any of the {len(todo)} ROIs of "
            f"{', '.join(p.name for p in tables.values())}; layouts tried: "
            f"{'; '.join(LAYOUTS_TRIED if tree is None else kaggle.LAYOUTS_TRIED)} "
            "(are the images downloaded into this folder?)"
        )
    if check_images:
        checks = _map(lambda i: check(resolved[i]), todo, workers, progress, "checking ROI files")
        for i, chk in zip(todo, checks):
            row = rows[i]
            row["crop_path"], row["mask_path"], row["crop_mask_swapped"] = (
                chk.crop,
                chk.mask,
                chk.swapped,
            )
            if chk.reason:
                _mark(row, chk.reason, chk.detail)
            if chk.note:
                _note(row, chk.note)
    else:
        for i in todo:
            res = resolved[i]
            rows[i]["status"] = "unchecked"
            if res.missing or res.ambiguous:
                _note(
                    rows[i],
                    "files not found: " + "; ".join(res.missing) if res.missing else res.ambiguous,
                )
    manifest = manifest_frame(rows)
    _announce(manifest)
    return CurationResult(
        manifest=manifest,
        exclusions=_exclusions(manifest),
        swaps=_swaps(manifest),
        tables=tables,
        is_phantom=(root / "phantom.json").is_file(),
        layout="dicom" if tree is None else kaggle.LAYOUT,
    )


# ------------------------------------------------------------------------------------------ files


def _csv_writer(frame: pd.DataFrame) -> Callable:
    """A function writing frame as CSV (LF line ends) to an open text file."""
    return lambda fh: frame.to_csv(fh, index=False, lineterminator="\n")


def curation_paths(manifest_path: Path) -> dict[str, Path]:
    """The manifest and, beside it, ``<stem>.exclusions.csv`` and ``<stem>.swaps.csv``."""
    manifest_path = Path(manifest_path)
    stem = manifest_path.with_suffix("")
    return {
        "manifest": manifest_path,
        "exclusions": stem.with_name(f"{stem.name}.exclusions.csv"),
        "swaps": stem.with_name(f"{stem.name}.swaps.csv"),
    }


def write_curation(result: CurationResult, manifest_path: Path) -> dict[str, Path]:
    """Write the manifest, exclusions and swaps as one set (all three replaced, or none); returns the paths."""
    paths = curation_paths(manifest_path)
    frames = {
        "manifest": result.manifest[MANIFEST_COLUMNS],
        "exclusions": result.exclusions,
        "swaps": result.swaps,
    }
    try:
        write_files({paths[k]: _csv_writer(frames[k]) for k in paths})
    except OSError as exc:
        raise DataError(
            f"cannot write the curation to {paths['manifest']} "
            f"({exc.strerror or exc}{': ' + exc.filename if exc.filename else ''}); "
            "nothing was changed there"
        ) from exc
    return paths


def data_provenance(root: Path) -> Provenance:
    """Provenance of a data root: a phantom when it carries mcalc's ``phantom.json``, real CBIS-DDSM otherwise."""
    from mcalc.data.kaggle import LAYOUT, layout_of

    marker = Path(root) / "phantom.json"
    if marker.is_file():
        meta = json.loads(marker.read_text())
        cfg = meta.get("config", {})
        detail = f"mcalc phantom {meta.get('version', '?')}, scale {cfg.get('scale', '?')}, seed {cfg.get('seed', '?')}"
        release = LAYOUT if cfg.get("layout") == LAYOUT else ""
        return Provenance(data="phantom", data_detail=detail, release=release)
    release = LAYOUT if layout_of(root) == LAYOUT else ""
    return Provenance(data="cbis-ddsm", data_detail=Path(root).name, release=release)
