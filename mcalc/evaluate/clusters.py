"""How ROIs cluster: the patient and lesion of every ROI, as ids, integer codes and counts.

CBIS-DDSM ROIs are not independent: the two views (CC, MLO) of one lesion share patient, side and
abnormality id, and one patient may have several lesions. :func:`cluster_ids` reads both ids off
manifest rows, :func:`cluster_codes` and :func:`lesion_codes` turn ids into the integer codes the
bootstrap resamples, and :func:`unit_counts` counts the ROIs, lesions and patients an interval rests
on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mcalc.errors import DataError
from mcalc.study import CLASSES

__all__ = [
    "cluster_codes",
    "lesion_codes",
    "cluster_ids",
    "unit_counts",
]


def cluster_codes(ids: Any, n: int, what: str) -> np.ndarray:
    """Integer codes 0..g-1 of a per-ROI id array (DataError on a wrong length or a missing id)."""
    arr = np.asarray(ids, dtype=object) if not isinstance(ids, np.ndarray) else ids
    if arr.ndim != 1 or len(arr) != n:
        raise DataError(f"{what}: expected {n} ids (one per ROI), got shape {np.shape(arr)}")
    codes, _ = pd.factorize(pd.Series(arr), use_na_sentinel=True)
    if (codes < 0).any():
        raise DataError(f"{what}: missing id at position {int(np.flatnonzero(codes < 0)[0])}")
    return codes.astype(np.int64)


def lesion_codes(lesions: Any, patients: np.ndarray | None, n: int) -> np.ndarray | None:
    """Integer lesion codes, a lesion id naming a lesion within its patient (None without ids)."""
    if lesions is None:
        return None
    les = cluster_codes(lesions, n, "lesions")
    if patients is None:
        return les
    return cluster_codes(patients * (int(les.max()) + 1) + les, n, "lesions")


def cluster_ids(manifest: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(patient id, lesion id) of every manifest row; a lesion is (patient, side, abnormality id).

    The CC and MLO views of one abnormality share patient, side and abnormality id, so they are one
    lesion; ``evaluate`` resamples the patients and counts the lesions.
    """
    cols = ["patient_id", "side", "abnormality_id"]
    missing = [c for c in cols if c not in manifest.columns]
    if missing:
        raise DataError(
            f"manifest: missing column(s) {', '.join(missing)} (patient and lesion ids)"
        )
    for c in cols:
        na = manifest[c].isna().to_numpy()
        if na.any():
            raise DataError(f"manifest: missing {c} in row {manifest.index[na][0]!r}")
    patients = manifest["patient_id"].astype(str).to_numpy()
    abn = manifest["abnormality_id"].astype(str).str.replace(r"\.0$", "", regex=True)
    lesions = manifest["patient_id"].astype(str) + "|" + manifest["side"].astype(str) + "|" + abn
    return patients, lesions.to_numpy()


def unit_counts(
    y: np.ndarray,
    groups: np.ndarray | None,
    lesions: np.ndarray | None,
    classes: Sequence[str] = CLASSES,
) -> dict[str, dict[str, int | None]]:
    """ROIs, lesions and patients of all ROIs, of each class and of the ROIs not of each class."""
    y = np.asarray(y)

    def count(mask: np.ndarray) -> dict[str, int | None]:
        """The three counts of the ROIs in ``mask``."""
        return {
            "rois": int(mask.sum()),
            "lesions": None if lesions is None else int(len(np.unique(lesions[mask]))),
            "patients": None if groups is None else int(len(np.unique(groups[mask]))),
        }

    out = {"all": count(np.ones(len(y), dtype=bool))}
    for k, c in enumerate(classes):
        out[c] = count(y == k)
    for k, c in enumerate(classes):
        out[f"not {c}"] = count(y != k)
    return out
