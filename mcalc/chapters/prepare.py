"""Chapter 1's step: the data (the phantom, generated when asked, or a download) curated into the results folder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from mcalc.data.curation import (
    CurationResult,
    curate,
    data_provenance,
    exclusion_report,
    write_curation,
)
from mcalc.data.phantom.store import PHANTOM_STORE, phantom_folder
from mcalc.errors import DataError
from mcalc.records.provenance import write_provenance
from mcalc.records.results import MANIFEST, PROVENANCE
from mcalc.study import DEFAULT_TASK, SPLITS, Task, apply_task, check_task_classes

__all__ = [
    "ensure_phantom",
    "prepare_data",
    "with_task",
]


def ensure_phantom(
    root: Path, scale: float, seed: int, progress: bool = True, layout: str = "uid"
) -> None:
    """Generate the phantom at ``root`` unless a finished phantom with the same scale, seed and layout,
    matching its own manifest, is already there (mcalc.data.phantom.ensure_phantom: exclusive, verified)."""
    from mcalc.data.phantom import PhantomConfig
    from mcalc.data.phantom import ensure_phantom as ensure

    ensure(Path(root), PhantomConfig(scale=scale, seed=seed, layout=layout), progress=progress)


def prepare_data(
    data_source: str,
    data_root: str | Path,
    phantom_scale: float = 1.0,
    seed: int = 0,
    results_dir: str | Path = "results",
    progress: bool = True,
    task: str | Task = DEFAULT_TASK,
    layout: str = "uid",
) -> CurationResult:
    """Curate the data (generating the phantom first when asked, in ``layout``) under a task (its labels;
    the ROIs it leaves out recorded as exclusions) and write the manifest and provenance; an empty
    ``data_root`` for the phantom is its own folder under ``data/phantom`` (one per layout, scale and seed)."""
    root = Path(data_root)
    if data_source == "phantom" and not str(data_root):
        root = phantom_folder(PHANTOM_STORE, phantom_scale, seed, layout)
    if data_source == "cbis-ddsm" and not str(data_root):
        raise DataError("data_source 'cbis-ddsm' needs data_root: the folder of your download")
    if data_source == "phantom":
        ensure_phantom(root, phantom_scale, seed, progress=progress, layout=layout)
    elif data_source == "cbis-ddsm":
        if not root.is_dir():
            raise DataError(
                f"data_root {root} does not exist: point it at your CBIS-DDSM download "
                "(the case-description CSVs with the DICOM tree below them)"
            )
    else:
        raise ValueError(f"data_source must be 'phantom' or 'cbis-ddsm', not {data_source!r}")
    result = with_task(curate(root, progress=progress), task, f"data root {root}")
    write_curation(result, Path(results_dir) / MANIFEST)
    write_provenance(data_provenance(root), Path(results_dir) / PROVENANCE)
    return result


def with_task(result: CurationResult, task: str | Task, where: str) -> CurationResult:
    """The curation under a task: relabelled, its left-out ROIs excluded (and in the exclusion report);
    DataError when a class of the task has no usable ROI in a split."""
    manifest = apply_task(result.manifest, task)
    usable = manifest[manifest["status"] == "ok"]
    counts = pd.crosstab(usable["split"], usable["pathology"]).reindex(
        index=list(SPLITS), fill_value=0
    )
    check_task_classes(counts, task, where)
    return replace(result, manifest=manifest, exclusions=exclusion_report(manifest))
