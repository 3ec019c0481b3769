"""The manifest: one row per ROI of the case tables, its columns and dtypes, written by curation and read back.

``manifest.csv`` (+ ``.exclusions.csv`` and ``.swaps.csv`` beside it) is the hand-off between curation
(:mod:`mcalc.data.curation`) and every later stage; this module is its one schema.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mcalc.errors import DataError

__all__ = [
    "MANIFEST_COLUMNS",
    "EXCLUSION_COLUMNS",
    "SWAP_COLUMNS",
    "INT_COLUMNS",
    "OPTIONAL_TEXT_COLUMNS",
    "manifest_frame",
    "read_manifest",
]

MANIFEST_COLUMNS: list[str] = [
    "roi_id",
    "split",
    "patient_id",
    "side",
    "view",
    "image_id",
    "abnormality_id",
    "abnormality_type",
    "pathology",
    "label",
    "calc_type",
    "calc_distribution",
    "mass_shape",
    "mass_margins",
    "assessment",
    "subtlety",
    "density",
    "full_path",
    "crop_path",
    "mask_path",
    "crop_mask_swapped",
    "status",
    "reason",
    "detail",
    "note",
    "source_file",
    "source_line",
]


EXCLUSION_COLUMNS: list[str] = [
    "roi_id",
    "split",
    "patient_id",
    "pathology",
    "reason",
    "detail",
    "source_file",
    "source_line",
]


SWAP_COLUMNS: list[str] = ["roi_id", "crop_path", "mask_path"]


INT_COLUMNS = ("abnormality_id", "label", "assessment", "subtlety", "density")


OPTIONAL_TEXT_COLUMNS = (
    "calc_type",
    "calc_distribution",
    "mass_shape",
    "mass_margins",
    "abnormality_type",
)


def manifest_frame(rows: list[dict]) -> pd.DataFrame:
    """Manifest rows → a frame with the manifest's columns and dtypes."""
    frame = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    return _set_dtypes(frame)


def _set_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """The manifest's dtypes: nullable integers, a bool swap flag, integer source lines, text elsewhere."""
    frame = frame.copy()
    for col in INT_COLUMNS:
        frame[col] = pd.array(pd.to_numeric(frame[col], errors="coerce"), dtype="Int64")
    frame["crop_mask_swapped"] = frame["crop_mask_swapped"].astype(bool)
    frame["source_line"] = pd.to_numeric(frame["source_line"]).astype("int64")
    for col in MANIFEST_COLUMNS:
        if col not in INT_COLUMNS and col not in ("crop_mask_swapped", "source_line"):
            frame[col] = frame[col].astype("str")
    for col in ("reason", "detail", "note"):
        frame[col] = frame[col].fillna("")
    return frame


def read_manifest(path: Path) -> pd.DataFrame:
    """Read a manifest written by :func:`write_curation` back with the manifest's dtypes."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
    except (OSError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read manifest {path}: {exc}") from exc
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: not a curated manifest, missing column(s) {', '.join(missing)}")
    for col in INT_COLUMNS:
        frame[col] = frame[col].replace("", None)
    for col in OPTIONAL_TEXT_COLUMNS + ("image_id",):
        frame[col] = frame[col].replace("", None)
    bad = ~frame["crop_mask_swapped"].isin(["True", "False"])
    if bad.any():
        raise DataError(
            f"{path}: crop_mask_swapped is {frame.loc[bad, 'crop_mask_swapped'].iloc[0]!r} "
            f"in row {int(bad.to_numpy().argmax()) + 2}, expected True or False"
        )
    frame["crop_mask_swapped"] = frame["crop_mask_swapped"] == "True"
    return _set_dtypes(frame)
