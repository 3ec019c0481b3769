"""The official CBIS-DDSM calcification tables shipped with mcalc, and the phantom's calibration derived from them.

``mcalc/data/calc_case_description_{train,test}_set.csv`` are the two official tables, unmodified
(source, licence and citation in ``mcalc/data/README.md``). :func:`shipped_tables` says where they
are; :func:`derive_calibration` turns them (or any folder holding the two tables) into the figures
the phantom samples from:

* the joint counts of split x pathology x calc type (spelling normalised, component order kept) x
  calc distribution x assessment x subtlety x breast density;
* per split: patients, images per patient, abnormalities per image, lesions per breast, the fraction
  of lesions seen in both CC and MLO (views matched by their descriptors within a breast), bilateral
  patients, how single-view lesions sit in breasts;
* per split and pathology: ROIs, lesions and patients, and the histogram of patient layouts (how
  many breasts, and in each how many lesions are seen in both views, in CC only, in MLO only) that
  the phantom draws its patients from, so that it clusters ROIs into patients per class as the real
  tables do (BENIGN_WITHOUT_CALLBACK: few patients with many ROIs each).

Only aggregate figures leave this module, never rows of the tables.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from mcalc.errors import DataError

__all__ = [
    "SPLIT_FILES",
    "CALIBRATION_COLUMNS",
    "RENAME",
    "SPELLING",
    "LESION_KEY",
    "SOURCE",
    "shipped_tables",
    "normalise_term",
    "read_split",
    "parse_layout",
    "breast_lesions",
    "structure",
    "derive_calibration",
]

SPLIT_FILES = {
    "train": "calc_case_description_train_set.csv",
    "test": "calc_case_description_test_set.csv",
}
CALIBRATION_COLUMNS = [
    "split",
    "pathology",
    "calc_type",
    "calc_distribution",
    "assessment",
    "subtlety",
    "density",
    "count",
]
RENAME = {
    "patient_id": "patient_id",
    "breast density": "density",
    "left or right breast": "side",
    "image view": "view",
    "abnormality id": "abnormality_id",
    "calc type": "calc_type",
    "calc distribution": "calc_distribution",
    "assessment": "assessment",
    "pathology": "pathology",
    "subtlety": "subtlety",
}
SPELLING = {"LUCENT_CENTERED": "LUCENT_CENTER"}
LESION_KEY = ["calc_type", "calc_distribution", "pathology", "assessment", "subtlety"]
SOURCE = "CBIS-DDSM calc_case_description_{train,test}_set.csv (TCIA 2017)"


def shipped_tables() -> dict[str, Path]:
    """Paths of the two official calcification tables shipped in ``mcalc/data``, by split."""
    folder = resources.files("mcalc") / "data"
    paths = {split: Path(str(folder / name)) for split, name in SPLIT_FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DataError(f"mcalc's shipped CBIS-DDSM tables are missing: {', '.join(missing)}")
    return paths


def normalise_term(value: str) -> str:
    """Canonical spelling of a (compound) calc type/distribution: fixed synonyms, no repeated parts, order kept."""
    if value in ("", "N/A", "NA"):
        return "N/A"
    parts: list[str] = []
    for part in value.strip().split("-"):
        part = SPELLING.get(part.strip(), part.strip())
        if part not in parts:
            parts.append(part)
    return "-".join(parts)


def read_split(path: Path, split: str) -> pd.DataFrame:
    """One official calc table with short column names, normalised terms and a ``split`` column."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in RENAME if c not in raw.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}")
    df = raw[list(RENAME)].rename(columns=RENAME)
    df["raw_calc_type"] = df["calc_type"]
    df["calc_type"] = df["calc_type"].map(normalise_term)
    df["calc_distribution"] = df["calc_distribution"].map(normalise_term)
    for col in ("assessment", "subtlety", "density", "abnormality_id"):
        df[col] = df[col].astype(int)
    df["split"] = split
    return df


def _joint_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Counts per combination of split, pathology and the five descriptors."""
    keys = CALIBRATION_COLUMNS[:-1]
    out = df.groupby(keys).size().rename("count").reset_index()
    return out.sort_values(keys, kind="mergesort").reset_index(drop=True)[CALIBRATION_COLUMNS]


def breast_lesions(df: pd.DataFrame) -> pd.DataFrame:
    """Per breast (patient_id, side): its ROIs, lesions and lesions seen in both views, with its CC and MLO rows.

    A CC row and an MLO row of one breast with the same descriptors (``LESION_KEY``) are one lesion seen
    twice; rows are matched one to one, so a breast's pairs are, per descriptor set, the smaller of its
    CC and MLO counts.
    """
    breast = ["patient_id", "side"]
    views = (
        df.groupby([*breast, *LESION_KEY, "view"]).size().unstack("view", fill_value=0)
    ).reindex(columns=["CC", "MLO"], fill_value=0)
    pairs = np.minimum(views["CC"], views["MLO"]).groupby(level=breast).sum()
    rows = views.groupby(level=breast).sum()
    out = pd.DataFrame({"rois": rows["CC"] + rows["MLO"], "cc": rows["CC"], "mlo": rows["MLO"]})
    out["pairs"] = pairs.reindex(out.index, fill_value=0)
    out["lesions"] = out["rois"] - out["pairs"]
    return out


def _breast_layout(breasts: pd.DataFrame) -> dict:
    """How lesions sit in breasts: single-view breasts, pairs per two-view breast, singles in those."""
    single = (breasts["cc"] == 0) | (breasts["mlo"] == 0)
    sv, bv = breasts[single], breasts[~single]
    sv_views = {"CC": int((sv["cc"] > 0).sum()), "MLO": int((sv["mlo"] > 0).sum())}
    return {
        "single_view_breasts": sv_views,
        "lesions_per_single_view_breast": _distribution(sv["lesions"].astype(int)),
        "pairs_per_two_view_breast": _distribution(bv["pairs"].astype(int)),
        "single_view_lesions_in_two_view_breasts": int((bv["lesions"] - bv["pairs"]).sum()),
        "single_view_lesions_in_single_view_breasts": int(sv["lesions"].sum()),
    }


def _distribution(values: pd.Series) -> dict[str, int]:
    """Histogram of integer values as a JSON-friendly {value: count} dict."""
    counts = values.value_counts().sort_index()
    return {str(int(k)): int(v) for k, v in counts.items()}


def _patient_layouts(breasts: pd.DataFrame) -> pd.Series:
    """Each patient's layout: per breast 'pairs.CC-only.MLO-only' lesions, breasts sorted, joined by '|'."""
    parts = (
        breasts["pairs"].astype(str)
        + "."
        + (breasts["cc"] - breasts["pairs"]).astype(str)
        + "."
        + (breasts["mlo"] - breasts["pairs"]).astype(str)
    )
    return parts.groupby(level="patient_id").agg(lambda p: "|".join(sorted(p)))


def parse_layout(key: str) -> list[tuple[int, int, int]]:
    """The breasts of a :func:`_patient_layouts` key as (pairs, CC-only, MLO-only) lesion counts."""
    return [tuple(int(v) for v in part.split(".")) for part in key.split("|")]  # type: ignore[misc]


def _class_structure(df: pd.DataFrame) -> dict:
    """Per pathology of one split: ROIs, lesions, patients and the histogram of patient layouts."""
    out = {}
    for pathology, sub in df.groupby("pathology"):
        layouts = _patient_layouts(breast_lesions(sub))
        lesions = sum(
            n_cc + n_mlo + pairs for key in layouts for pairs, n_cc, n_mlo in parse_layout(key)
        )
        out[str(pathology)] = {
            "rois": int(len(sub)),
            "lesions": int(lesions),
            "patients": int(sub["patient_id"].nunique()),
            "patient_layouts": {k: int(v) for k, v in layouts.value_counts().sort_index().items()},
        }
    return out


def structure(df: pd.DataFrame) -> dict:
    """Patient/breast/image/lesion structure statistics of one split."""
    breasts = breast_lesions(df)
    n_lesions, n_pairs = breasts["lesions"], breasts["pairs"]
    images = df.groupby(["patient_id", "side", "view"]).size()
    per_patient = images.groupby(level="patient_id").size()
    sides = df.groupby("patient_id")["side"].nunique()
    pairs_by_path: dict[str, float] = {}
    for pathology, sub in df.groupby("pathology"):
        pairs_by_path[str(pathology)] = round(
            2 * int(breast_lesions(sub)["pairs"].sum()) / len(sub), 4
        )
    n_single_cc = int((df["view"] == "CC").sum() - n_pairs.sum())
    n_single_mlo = int((df["view"] == "MLO").sum() - n_pairs.sum())
    lucent = df["calc_type"].str.contains("LUCENT_CENTER", regex=False)
    centered = df["raw_calc_type"].str.contains("LUCENT_CENTERED", regex=False)
    return {
        "rois": int(len(df)),
        "patients": int(df["patient_id"].nunique()),
        "breasts": int(len(breasts)),
        "images": int(len(images)),
        "bilateral_patient_fraction": round(float((sides == 2).mean()), 4),
        "lesions": int(n_lesions.sum()),
        "lesions_in_both_views": int(n_pairs.sum()),
        "both_views_lesion_fraction": round(float(n_pairs.sum() / n_lesions.sum()), 4),
        "both_views_roi_fraction_by_pathology": pairs_by_path,
        "single_view_mlo_fraction": round(n_single_mlo / max(1, n_single_cc + n_single_mlo), 4),
        "lesions_per_breast": _distribution(n_lesions),
        "images_per_patient": _distribution(per_patient),
        "abnormalities_per_image": _distribution(images),
        "patient_number_range": [
            int(df["patient_id"].str[2:].astype(int).min()),
            int(df["patient_id"].str[2:].astype(int).max()),
        ],
        "breast_layout": _breast_layout(breasts),
        "by_pathology": _class_structure(df),
        "lucent_centered_spelling_fraction": round(float(centered.sum() / max(1, lucent.sum())), 4),
    }


def derive_calibration(tables: dict[str, Path] | None = None) -> tuple[pd.DataFrame, dict]:
    """Joint descriptor counts and structure statistics of the calc tables (default: the shipped ones)."""
    tables = shipped_tables() if tables is None else tables
    frames = {split: read_split(Path(tables[split]), split) for split in SPLIT_FILES}
    both = pd.concat(frames.values(), ignore_index=True)
    overlap = set(frames["train"]["patient_id"]) & set(frames["test"]["patient_id"])
    info = {
        "source": SOURCE,
        "patients_in_both_splits": len(overlap),
        "splits": {split: structure(df) for split, df in frames.items()},
    }
    # a JSON round trip: plain str/int/float/list/dict values, as a reader of a JSON file would get
    return _joint_counts(both), json.loads(json.dumps(info, sort_keys=True))
