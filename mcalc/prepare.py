"""Chapter 1's step: the data (the phantom, generated when asked, or a download) curated into the results folder."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd

from mcalc.curation import (
    DEFAULT_TASK,
    SPLITS,
    CurationResult,
    Task,
    _exclusions,
    apply_task,
    check_task_classes,
    curate,
    write_curation,
)
from mcalc.errors import DataError
from mcalc.provenance import data_provenance, write_provenance
from mcalc.results import MANIFEST, PROVENANCE


def ensure_phantom(
    root: Path, scale: float, seed: int, progress: bool = True, layout: str = "uid"
) -> None:
    """Generate the phantom at ``root`` unless a phantom with the same scale, seed and layout is already there."""
    from mcalc.phantom import PhantomConfig, generate_phantom

    config = PhantomConfig(scale=scale, seed=seed, layout=layout)
    marker = Path(root) / "phantom.json"
    if marker.is_file():
        meta = json.loads(marker.read_text())
        if meta.get("config") == json.loads(json.dumps(asdict(config))) and meta.get(
            "complete", True
        ):
            return
    generate_phantom(Path(root), config, progress=progress)


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
    the ROIs it leaves out recorded as exclusions) and write the manifest and provenance."""
    root = Path(data_root)
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
    return replace(result, manifest=manifest, exclusions=_exclusions(manifest))
