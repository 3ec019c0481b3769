"""Curation of a CBIS-DDSM download: the official case-description tables + the images → a manifest.

One manifest row per ROI of the tables, whatever happens to it: ``status`` is ``ok`` for a usable ROI,
``excluded`` (with a ``reason`` and a ``detail`` naming the file) otherwise, or ``unchecked`` when the
images were not opened (``check_images=False``: only the tables are parsed and the paths resolved by
name; a row whose files are not found keeps ``unchecked`` and says so in ``note``).

This module orchestrates: the tables are read by :mod:`mcalc.data.case_tables`; the files are found and
checked by the download's layout (:mod:`mcalc.data.layouts`: the DICOM release, by UID paths or the
NBIA downloader's series folders; :mod:`mcalc.data.kaggle`: the Kaggle JPEG re-release, detected by
its ``jpeg/`` folder, 8-bit lossy pixels, labelled as such); every image is read by
:mod:`mcalc.data.images`. Here the outcomes become the manifest, the exclusion report and the swaps
table, and are written as one set.

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

import json
import logging
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mcalc.data import kaggle
from mcalc.data.case_tables import (
    CurationWarning,
    add_note,
    find_case_tables,
    mark_excluded,
    read_tables,
)
from mcalc.data.layouts import Layout, dicom_layout
from mcalc.errors import DataError
from mcalc.records.fsio import write_files
from mcalc.records.manifest import EXCLUSION_COLUMNS, MANIFEST_COLUMNS, SWAP_COLUMNS, manifest_frame
from mcalc.records.provenance import Provenance
from mcalc.study import CLASSES, SPLITS

__all__ = [
    "CurationResult",
    "exclusion_report",
    "find_layout",
    "curate",
    "curation_paths",
    "write_curation",
    "data_provenance",
]

log = logging.getLogger(__name__)


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


def exclusion_report(manifest: pd.DataFrame) -> pd.DataFrame:
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


def find_layout(root: Path, tables: dict[tuple[str, str], Path]) -> Layout:
    """How a download keeps its images: the Kaggle JPEG re-release when its jpeg/ folder is there, else the DICOM release."""
    tree = kaggle.find_tree(root, tables)  # None for the DICOM release
    return dicom_layout(root) if tree is None else kaggle.kaggle_layout(tree)


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
    rows = read_tables(tables)
    layout = find_layout(root, tables)
    locator, check = layout.locator, layout.check
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
                mark_excluded(rows[i], "outside_root", "; ".join(resolved[i].outside))
    todo = [i for i in todo if rows[i]["status"] == "ok"]
    if check_images and todo and locator.hits == 0:
        raise DataError(
            f"no image found under {root} for any of the {len(todo)} ROIs of "
            f"{', '.join(p.name for p in tables.values())}; layouts tried: "
            f"{'; '.join(layout.tried)} "
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
                mark_excluded(row, chk.reason, chk.detail)
            if chk.note:
                add_note(row, chk.note)
    else:
        for i in todo:
            res = resolved[i]
            rows[i]["status"] = "unchecked"
            if res.missing or res.ambiguous:
                add_note(
                    rows[i],
                    "files not found: " + "; ".join(res.missing) if res.missing else res.ambiguous,
                )
    manifest = manifest_frame(rows)
    _announce(manifest)
    return CurationResult(
        manifest=manifest,
        exclusions=exclusion_report(manifest),
        swaps=_swaps(manifest),
        tables=tables,
        is_phantom=(root / "phantom.json").is_file(),
        layout=layout.name,
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
    marker = Path(root) / "phantom.json"
    if marker.is_file():
        meta = json.loads(marker.read_text())
        cfg = meta.get("config", {})
        detail = f"mcalc phantom {meta.get('version', '?')}, scale {cfg.get('scale', '?')}, seed {cfg.get('seed', '?')}"
        release = kaggle.LAYOUT if cfg.get("layout") == kaggle.LAYOUT else ""
        return Provenance(data="phantom", data_detail=detail, release=release)
    release = kaggle.LAYOUT if kaggle.layout_of(root) == kaggle.LAYOUT else ""
    return Provenance(data="cbis-ddsm", data_detail=Path(root).name, release=release)
