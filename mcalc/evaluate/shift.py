"""How far each ROI's backbone features moved between two results folders (chapter 8: the same
phantom written as the DICOM release and as the Kaggle JPEG re-release), matched by ROI id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mcalc.errors import DataError
from mcalc.records.results import FEATURES

__all__ = [
    "feature_shift",
    "shift_summary",
    "shift_figure",
    "shift_sentence",
]


def _features(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """A results folder's backbone features and their ROI ids (DataError when absent or unreadable)."""
    path = Path(folder) / FEATURES
    if not path.is_file():
        raise DataError(f"no {FEATURES} in {folder}: run notebook 02 (preprocessing) there first")
    try:
        with np.load(path, allow_pickle=False) as z:
            return np.asarray(z["X"], dtype=float), np.asarray(z["roi_id"]).astype(str)
    except (ValueError, KeyError, OSError) as exc:
        raise DataError(f"{path} cannot be read ({exc})") from None


def feature_shift(folder_a: str | Path, folder_b: str | Path) -> pd.DataFrame:
    """How far each ROI's backbone features moved from results folder A to B (matched by ROI id).

    Per ROI both folders hold with finite features: the relative change ‖b − a‖ / ‖a‖, the cosine
    distance, and for scale the distance from a to the nearest *other* ROI of A (relative to ‖a‖);
    ``moved_past_neighbour`` says whether the move is larger than that.
    """
    from sklearn.neighbors import NearestNeighbors

    Xa, ida = _features(Path(folder_a))
    Xb, idb = _features(Path(folder_b))
    fin_a = np.isfinite(Xa).all(axis=1)
    row_b = {r: i for i, r in enumerate(idb) if np.isfinite(Xb[i]).all()}
    ia = [i for i, r in enumerate(ida) if fin_a[i] and r in row_b]
    if not ia:
        raise DataError(f"the features of {folder_a} and {folder_b} share no ROI")
    A = Xa[ia]
    B = Xb[[row_b[ida[i]] for i in ia]]
    norm_a = np.linalg.norm(A, axis=1)
    norm_b = np.linalg.norm(B, axis=1)
    safe = np.where(norm_a > 0, norm_a, np.nan)
    moved = np.linalg.norm(B - A, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = 1 - (A * B).sum(axis=1) / (safe * np.where(norm_b > 0, norm_b, np.nan))
    pool = Xa[fin_a]
    if len(pool) >= 2:
        dist, _ = NearestNeighbors(n_neighbors=2).fit(pool).kneighbors(A)
        nearest = dist[:, 1]
    else:
        nearest = np.full(len(A), np.nan)
    return pd.DataFrame(
        {
            "roi_id": ida[ia],
            "relative_change": moved / safe,
            "cosine_distance": cosine,
            "nearest_other_roi": nearest / safe,
            "moved_past_neighbour": moved > nearest,
        }
    )


def shift_summary(shift: pd.DataFrame) -> pd.DataFrame:
    """The feature shift in a few rows (as text): median, 90th percentile and largest change, beside the
    same statistic of the distance to the nearest other ROI."""
    rel, near = shift["relative_change"], shift["nearest_other_roi"]
    rows = [
        ("ROIs matched by id", f"{len(shift)}", "—"),
        ("relative change ‖B − A‖ / ‖A‖, median", f"{rel.median():.3f}", f"{near.median():.3f}"),
        (
            "relative change, 90th percentile",
            f"{rel.quantile(0.9):.3f}",
            f"{near.quantile(0.9):.3f}",
        ),
        ("relative change, largest", f"{rel.max():.3f}", f"{near.max():.3f}"),
        ("cosine distance, median", f"{shift['cosine_distance'].median():.2e}", "—"),
        (
            "ROIs that moved farther than their nearest other ROI",
            f"{int(shift['moved_past_neighbour'].sum())}",
            "—",
        ),
    ]
    return pd.DataFrame(
        rows, columns=["quantity", "value", "nearest other ROI (same statistic)"]
    ).set_index("quantity")


def shift_figure(shift: pd.DataFrame):
    """Histogram of each ROI's relative feature change beside the distance to its nearest other ROI."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    rel = shift["relative_change"].to_numpy(dtype=float)
    near = shift["nearest_other_roi"].to_numpy(dtype=float)
    both = np.concatenate([rel[np.isfinite(rel)], near[np.isfinite(near)]])
    top = float(both.max()) if both.size else 1.0
    bins = np.linspace(0, top * 1.02 if top > 0 else 1.0, 41)
    ax.hist(rel, bins=bins, color="C0", alpha=0.8, label="each ROI: its move between the two runs")
    ax.hist(
        near, bins=bins, color="C1", alpha=0.5, label="each ROI: distance to its nearest other ROI"
    )
    ax.set_xlabel("distance relative to the ROI's feature norm ‖A‖")
    ax.set_ylabel("ROIs")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def shift_sentence(shift: pd.DataFrame) -> str:
    """One sentence on the feature shift, from its numbers."""
    rel, near = shift["relative_change"], shift["nearest_other_roi"]
    past = int(shift["moved_past_neighbour"].sum())
    return (
        f"Backbone features of {len(shift)} ROIs matched by id moved by a median {rel.median():.3f} "
        f"of their norm (largest {rel.max():.3f}), against a median distance of {near.median():.3f} "
        f"to the nearest other ROI; {past} of {len(shift)} ROIs moved farther than that."
    )
