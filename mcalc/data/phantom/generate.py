"""The whole phantom: its size, the room it needs, writing it once (exclusively), verifying it."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from mcalc import __version__
from mcalc.data import kaggle
from mcalc.data.phantom.config import (
    CSV_NAMES,
    DICOM_ROOT,
    OWNED_NAMES,
    PHANTOM_VERSION,
    PhantomConfig,
    PhantomSummary,
    load_calibration,
)
from mcalc.data.phantom.plan import plan_phantom, target_counts
from mcalc.data.phantom.store import generator_code
from mcalc.data.phantom.writing import (
    csv_rows,
    generate_patient,
    inject_quirks,
    phantom_dicom_info,
    write_csv,
)
from mcalc.errors import DataError
from mcalc.records.fsio import LOCK_NAME, exclusive, write_text
from mcalc.study import CLASSES, SPLITS

__all__ = [
    "IMAGES_PER_ROI",
    "CROP_BYTES_AT_005_MM",
    "HEADER_BYTES",
    "estimate_bytes",
    "check_room",
    "phantom_files",
    "verify_phantom",
    "ensure_phantom",
    "generate_phantom",
]

IMAGES_PER_ROI = 0.81
CROP_BYTES_AT_005_MM = 120_000
HEADER_BYTES = 1_000


def estimate_bytes(config: PhantomConfig) -> int:
    """About how many bytes the phantom of this configuration writes (computed without planning it)."""
    n_rois = sum(target_counts(load_calibration(), config.scale).values())
    rows, cols = config.full_shape
    crop = CROP_BYTES_AT_005_MM * (0.05 / config.crop_pixel_spacing_mm) ** 2
    per_roi = (
        IMAGES_PER_ROI * (2 * rows * cols + HEADER_BYTES) + rows * cols + crop + 2 * HEADER_BYTES
    )
    return int(n_rois * per_roi)


def _size_text(n: float) -> str:
    """A byte count for people ('1.2 GB')."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _tree_bytes(folder: Path) -> int:
    """Bytes of the files below folder (0 when absent)."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def check_room(out: Path, config: PhantomConfig) -> int:
    """DataError unless the disk under out can hold the phantom (a previous phantom there counts as free)."""
    out = Path(out)
    need = estimate_bytes(config)
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe if probe.is_dir() else probe.parent).free
    if (out / "phantom.json").is_file():
        free += _tree_bytes(out / DICOM_ROOT)
    if need > free:
        raise DataError(
            f"the phantom at scale {config.scale:g} needs about {_size_text(need)} but only "
            f"{_size_text(free)} is free under {probe}: choose a smaller --scale or another folder"
        )
    return need


def _check_out(out: Path) -> None:
    """DataError unless out is absent, an empty folder or a previous phantom (nothing is changed)."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    others = sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME) if out.is_dir() else []
    if others and not (out / "phantom.json").is_file():
        shown = ", ".join(others[:3]) + (" ..." if len(others) > 3 else "")
        raise DataError(
            f"{out}: folder is not empty ({shown}) and holds no phantom.json; "
            "refusing to write a phantom into it"
        )


def _prepare_out(out: Path) -> None:
    """Create out, or clear a previous phantom in it; refuse any other non-empty folder."""
    _check_out(out)
    if out.is_dir():
        for name in OWNED_NAMES:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _marker(config: PhantomConfig, complete: bool, extra: dict | None = None) -> str:
    """Text of phantom.json."""
    meta = {
        "generator": "mcalc.data.phantom",
        "version": PHANTOM_VERSION,
        "mcalc_version": __version__,
        "seed": config.seed,
        "config": asdict(config),
        "code": generator_code(),
        "complete": complete,
        **(extra or {}),
    }
    return json.dumps(meta, indent=2, sort_keys=True) + "\n"


def phantom_files(out: Path) -> dict[str, str]:
    """Every file of a phantom folder (its marker and lock aside) with the sha256 of its bytes."""
    from mcalc.records.cache import file_digest

    out = Path(out)
    skip = {"phantom.json", LOCK_NAME}
    return {
        p.relative_to(out).as_posix(): file_digest(p)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.relative_to(out).as_posix() not in skip
    }


def _content_config(config: object) -> dict:
    """The configuration fields that shape a phantom's files (how many processes wrote it does not)."""
    if not isinstance(config, dict):
        return {}
    return {k: v for k, v in json.loads(json.dumps(config)).items() if k != "workers"}


def verify_phantom(out: Path, config: PhantomConfig | None = None) -> str | None:
    """Why out is not a finished phantom (of config, when given) matching its own manifest; None when it is.

    The manifest is phantom.json's ``files``: the digest of every file as generation left it; a file
    missing, added, cut short or rewritten since (a damaged copy, two writers interleaved) is named.
    With ``config``, the phantom must also have been written by this mcalc's phantom code
    (:func:`~mcalc.data.phantom.store.generator_code`): one phantom per (layout, scale, seed, code).
    """
    marker = Path(out) / "phantom.json"
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError):
        return f"{marker} is missing or unreadable"
    if not isinstance(meta, dict) or not meta.get("complete"):
        return f"{marker} marks an unfinished phantom (its generation was interrupted)"
    if config is not None and _content_config(meta.get("config")) != _content_config(
        asdict(config)
    ):
        return f"{marker} records another configuration"
    if config is not None and meta.get("code") != generator_code():
        return (
            f"{marker} was written by other phantom code (sha256 {str(meta.get('code'))[:12]}, "
            f"this mcalc's {generator_code()[:12]})"
        )
    recorded = meta.get("files")
    if not isinstance(recorded, dict) or not recorded:
        return f"{marker} records no file digests (made by an older mcalc)"
    now = phantom_files(out)
    changed = sorted(k for k in recorded.keys() | now.keys() if recorded.get(k) != now.get(k))
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        return f"{len(changed)} file(s) differ from its manifest: {', '.join(changed[:3])}{more}"
    return None


def _wait_note(message: str) -> None:
    """Tell the user (stderr) that this run waits for another one."""
    import sys

    print(f"mcalc: {message}", file=sys.stderr)


def ensure_phantom(
    out: Path, config: PhantomConfig, progress: bool = True
) -> PhantomSummary | None:
    """Generate the phantom at out unless a finished phantom of config matching its manifest is there
    (a damaged or partial one is generated again); waits for another process generating it. None when kept."""
    out = Path(out)
    _check_before_lock(out)  # the room is checked if it is generated
    with exclusive(out, f"the phantom folder {out}", say=_wait_note):
        _check_out(out)
        problem = verify_phantom(out, config)
        if problem is None:
            return None
        if (out / "phantom.json").is_file():
            _wait_note(f"the phantom at {out} is generated again: {problem}")
        return _generate(out, config, progress)


def generate_phantom(out: Path, config: PhantomConfig, progress: bool = True) -> PhantomSummary:
    """Write a CBIS-DDSM-shaped phantom (CSVs, DICOM tree, phantom.json, quirks.csv) into out.

    Exclusive: the folder's lock is held while it is written (another process writing the same folder
    is waited for); the finished marker records every file's digest (:func:`verify_phantom`).
    """
    out = Path(out)
    _check_before_lock(out, config)
    with exclusive(out, f"the phantom folder {out}", say=_wait_note):
        return _generate(out, config, progress)


def _check_before_lock(out: Path, config: PhantomConfig | None = None) -> None:
    """Refuse a foreign folder, or a disk too small, before leaving a lock file (and the folder); a
    folder with mcalc's lock may be half-way through another run's write, so it is checked once that
    run is done (under the lock)."""
    if not (out / LOCK_NAME).is_file():
        _check_out(out)
    if config is not None:
        check_room(out, config)


def _generate(out: Path, config: PhantomConfig, progress: bool) -> PhantomSummary:
    """:func:`generate_phantom` with the folder's lock held."""
    start = time.perf_counter()
    _check_out(out)
    check_room(out, config)
    _prepare_out(out)
    write_text(out / "phantom.json", _marker(config, complete=False))
    patients = plan_phantom(config)
    tasks = [(p, config, str(out)) for p in patients]
    bar = tqdm(total=len(tasks), desc="phantom patients", unit="patient", disable=not progress)
    if config.workers == 1 or len(tasks) < 4 * config.workers:
        for task in tasks:
            generate_patient(task)
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=config.workers, mp_context=ctx) as pool:
            for _ in pool.map(generate_patient, tasks, chunksize=4):
                bar.update()
    bar.close()
    tables = out / kaggle.CSV_FOLDER if config.layout == kaggle.LAYOUT else out
    tables.mkdir(exist_ok=True)
    for split in SPLITS:
        write_csv(tables / CSV_NAMES[split], csv_rows(patients, split))
    if config.layout == kaggle.LAYOUT:
        info = phantom_dicom_info(patients)
        info.to_csv(tables / kaggle.DICOM_INFO, index=False, lineterminator="\n")
    quirks = inject_quirks(out, patients, config)
    quirks.to_csv(out / "quirks.csv", index=False, lineterminator="\n")
    counts = pd.DataFrame(0, index=list(SPLITS), columns=list(CLASSES))
    n_patients = {s: 0 for s in SPLITS}
    n_images = 0
    lesions_by_key = {}
    for p in patients:
        n_patients[p["split"]] += 1
        n_images += len(p["images"])
        lesions_by_key = {les["key"]: les for br in p["breasts"] for les in br["lesions"]}
        for image in p["images"]:
            for roi in image["rois"]:
                counts.loc[p["split"], lesions_by_key[roi["lesion"]]["pathology"]] += 1
    counts.index.name = "split"
    n_rois = int(counts.to_numpy().sum())
    summary = {
        "n_rois": n_rois,
        "n_images": n_images,
        "n_patients": n_patients,
        "rois": {s: {c: int(counts.loc[s, c]) for c in CLASSES} for s in SPLITS},
        "n_quirk_rows": len(quirks),
    }
    extra = {"summary": summary, "files": phantom_files(out)}
    write_text(out / "phantom.json", _marker(config, complete=True, extra=extra))
    return PhantomSummary(
        out=out,
        counts=counts,
        n_patients=n_patients,
        n_images=n_images,
        n_rois=n_rois,
        quirks=quirks,
        elapsed_s=time.perf_counter() - start,
    )
