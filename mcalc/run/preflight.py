"""Before any notebook runs: can the data root support the run? (Both splits, every class, a validation
hold-out that fits.) Reads the case-description tables only, so a bad data root fails in seconds."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from mcalc.errors import DataError
from mcalc.run.profiles import Profile
from mcalc.study import CLASSES, DEFAULT_TASK, SPLITS, Task, check_task_classes, get_task

__all__ = ["PAPER_TRAIN_ROIS", "DataCheck", "scaled_validation", "check_counts", "preflight"]

PAPER_TRAIN_ROIS = (
    1546  # the real calcification training split (official), the paper's 200 held out of it
)


@dataclass(frozen=True)
class DataCheck:
    """What the preflight read: ROIs per split and class, and the validation hold-out it resolved."""

    counts: pd.DataFrame  # split × class
    validation_size: float

    def describe(self) -> str:
        """One line for the terminal."""
        per = ", ".join(f"{s} {int(self.counts.loc[s].sum())}" for s in SPLITS)
        return f"data: {per} ROIs; validation hold-out {self.validation_size:g}"


def scaled_validation(validation_size: float, n_train: int, n_classes: int = len(CLASSES)) -> float:
    """A count scales with the training split (200 of the real 1546; 13 of 100); a fraction stays as given."""
    if validation_size < 1:
        return validation_size
    return max(n_classes, round(validation_size * min(1.0, n_train / PAPER_TRAIN_ROIS)))


def check_counts(
    counts: pd.DataFrame, root: str, validation_size: float, task: str | Task = DEFAULT_TASK
) -> float:
    """DataError when a split or a class of the task is missing or the hold-out cannot fit; returns the hold-out to use."""
    task = get_task(task)
    counts = counts.drop(columns=[c for c in task.left_out() if c in counts.columns])
    for split in SPLITS:
        if split not in counts.index or counts.loc[split].sum() == 0:
            raise DataError(f"data root {root} has no {split} split (no usable ROI in its tables)")
    check_task_classes(counts.loc[list(SPLITS)], task, f"data root {root}")
    k = len(task.classes)
    n_train = int(counts.loc["train"].sum())
    n_val = scaled_validation(validation_size, n_train, k)
    held = round(n_val * n_train) if n_val < 1 else int(n_val)
    if not k <= held <= n_train - k:
        raise DataError(
            f"data root {root}: the training split has {n_train} ROIs, too few for a validation "
            f"hold-out of {held} with every class on both sides (give --data-root a larger set)"
        )
    return n_val


def preflight(profile: Profile) -> tuple[Profile, DataCheck | None]:
    """Check a real data root before executing (nothing to check for the phantom, which chapter 1 generates);
    returns the profile with its validation hold-out scaled to the data, and what was read."""
    if profile.data_source == "phantom":
        return profile, None
    from mcalc.data.curation import curate

    if not profile.data_root:
        raise DataError(
            "the data source cbis-ddsm needs a data root: the folder of your download (--data-root)"
        )
    root = Path(profile.data_root)
    if not root.is_dir():
        raise DataError(f"data root {root} is not a folder")
    manifest = curate(root, check_images=False, progress=False).manifest
    counts = (
        pd.crosstab(manifest["split"], manifest["pathology"])
        if len(manifest)
        else pd.DataFrame(index=pd.Index([], name="split"))
    )
    n_val = check_counts(counts, str(root), profile.validation_size, profile.task)
    return replace(profile, validation_size=n_val), DataCheck(counts, n_val)
