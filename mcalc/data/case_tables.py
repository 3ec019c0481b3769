"""The official CBIS-DDSM case-description tables: finding them, parsing them, one tidy manifest row per record.

What the tables need (see the collection's quirks): quoted newlines inside paths, ``N/A``/``NA`` for
missing values, CRLF line ends, ``breast density`` vs ``breast_density``, ``LUCENT_CENTER`` vs
``LUCENT_CENTERED`` and repeated terms (``PLEOMORPHIC-PLEOMORPHIC``) in the type columns, density 0.
Compound types are written canonically: terms normalised, de-duplicated and sorted, joined by ``-``
(``PUNCTATE-PLEOMORPHIC`` → ``PLEOMORPHIC-PUNCTATE``).
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
from pathlib import Path

import pandas as pd

from mcalc.errors import DataError
from mcalc.records.manifest import MANIFEST_COLUMNS, manifest_frame
from mcalc.study import CLASSES, SPLITS

__all__ = [
    "ABNORMALITIES",
    "TABLE_FILES",
    "SERIES_FOLDER",
    "MISSING_STRINGS",
    "TERM_SYNONYMS",
    "SPLIT_PREFIX",
    "ABNORMALITY_PREFIX",
    "CurationWarning",
    "abnormality_key",
    "normalise_terms",
    "mark_excluded",
    "add_note",
    "read_case_table",
    "find_case_tables",
    "read_tables",
]

ABNORMALITIES = ("calc", "mass")
TABLE_FILES: dict[tuple[str, str], str] = {
    (abn, split): f"{abn}_case_description_{split}_set.csv"
    for abn in ABNORMALITIES
    for split in SPLITS
}
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


class CurationWarning(UserWarning):
    """Rows of a download that curation excluded (one warning per kind of exclusion, with its count)."""


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


def mark_excluded(row: dict, reason: str, detail: str) -> None:
    """Mark a row excluded unless it already is (the first reason wins)."""
    if row["status"] != "excluded":
        row.update(status="excluded", reason=reason, detail=detail)


def add_note(row: dict, text: str) -> None:
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
            add_note(row, f"{key} {raw[key]!r} is not an integer: set to NA")
        elif value is not None and not lo <= value <= hi:
            add_note(row, f"{key} {value} outside {lo}-{hi}: set to NA")
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
        mark_excluded(row, "invalid_record", f"{source} line {line}: " + "; ".join(problems))
    else:
        image = f"{row['patient_id']}_{row['side']}_{row['view']}"
        row["image_id"] = image
        row["roi_id"] = (
            f"{ABNORMALITY_PREFIX[abn]}-{SPLIT_PREFIX[split]}_{image}_{row['abnormality_id']}"
        )
        folder = row["crop_path"].split("/")[0]
        if folder != row["roi_id"]:
            add_note(row, f"crop path folder {folder!r} differs from the ROI id")
    if row["pathology"] in CLASSES:
        row["label"] = CLASSES.index(row["pathology"])
    else:
        mark_excluded(
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
            mark_excluded(
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


def read_tables(tables: dict[tuple[str, str], Path]) -> list[dict]:
    """Read and stack the tables' rows (train before test), duplicates marked across them."""
    rows = [
        row
        for (abn, split), path in sorted(tables.items(), key=lambda kv: SPLITS.index(kv[0][1]))
        for row in _table_rows(path, split, abn)
    ]
    _mark_duplicates(rows)
    return rows
