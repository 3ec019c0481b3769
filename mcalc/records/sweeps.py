"""A sweep's records on disk: one JSON per point under ``<results_dir>/sweeps/<name>/``, sealed by a digest,
and the index of the sweep's latest run; read back as the finished points and a table of their metrics.

:mod:`mcalc.run.points` writes them (it runs each point of a sweep); chapters 5 and 7 read them from here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mcalc import paper
from mcalc.errors import DataError
from mcalc.records.cache import cache_key
from mcalc.records.fsio import atomic_write, write_new

__all__ = [
    "SWEEPS",
    "INDEX",
    "TEST_METRICS",
    "sweep_dir",
    "record_path",
    "write_first",
    "write_replace",
    "read_record",
    "record_digest",
    "sealed",
    "finished",
    "store_record",
    "load_sweep",
    "load_runs",
    "grid_axes",
    "runs_table",
]

SWEEPS = "sweeps"


INDEX = "sweep.json"  # the points of the sweep's latest run, in grid order


TEST_METRICS = {
    "accuracy": "accuracy",
    "AUC": "auc_pooled",  # the paper's AUC: Keras' pooled (micro) AUC
    "sensitivity at specificity 0.8": "sensitivity_at_spec80",
    "loss": "loss_kl",
}


def sweep_dir(results_dir: str | Path, name: str) -> Path:
    """The folder of one sweep's records, runs and executed notebooks."""
    return Path(results_dir) / SWEEPS / name


def record_path(out_dir: str | Path, key: str, failed: bool = False) -> Path:
    """The record of one point (``<key>.failed.json`` for a failed one)."""
    return Path(out_dir) / "records" / f"{key}{'.failed' if failed else ''}.json"


def write_first(obj: dict, path: Path) -> bool:
    """Write JSON atomically unless ``path`` exists (the first writer wins); True when this call wrote it."""
    return write_new(path, lambda fh: json.dump(obj, fh, indent=1, allow_nan=False))


def write_replace(obj: dict, path: Path) -> None:
    """Write JSON atomically, replacing any earlier file."""
    atomic_write(path, lambda fh: json.dump(obj, fh, indent=1, allow_nan=False))


def read_record(path: Path) -> dict | None:
    """A record, or None when absent or unreadable."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def record_digest(record: dict) -> str:
    """The digest of a record's content (every field but the digest itself)."""
    body = {k: v for k, v in record.items() if k != "digest"}
    return cache_key(json.dumps(body, sort_keys=True, allow_nan=False))


def sealed(record: dict) -> dict:
    """The record with its content digest."""
    return {**record, "digest": record_digest(record)}


def finished(record: dict | None, key: str) -> bool:
    """A whole, unedited record of a finished point of this key (its digest matches its content)."""
    if not isinstance(record, dict) or record.get("status") != "ok" or record.get("key") != key:
        return False
    try:
        return record.get("digest") == record_digest(record) and isinstance(record["run"], dict)
    except (KeyError, TypeError, ValueError):
        return False


def store_record(record: dict, out_dir: str | Path, force: bool = False) -> dict:
    """Write a finished point's record; the first writer wins unless the file there is damaged (or ``force``)."""
    path = record_path(out_dir, record["key"])
    record = sealed(record)
    if force:
        write_replace(record, path)
    elif not write_first(record, path):
        there = read_record(path)
        if finished(there, record["key"]):
            record = there  # another task of the same key finished first
        else:
            write_replace(record, path)  # a damaged record is replaced, never counted
    record_path(out_dir, record["key"], failed=True).unlink(missing_ok=True)
    return record


def load_sweep(results_dir: str | Path, name: str) -> tuple[list[dict], list[dict]]:
    """The finished records of a sweep's current points (grid order), and the failed or missing ones."""
    out_dir = sweep_dir(results_dir, name)
    index = read_record(out_dir / INDEX)
    if index is None:
        raise DataError(f"no sweep {name!r} in {out_dir.parent}: run it first (mcalc sweep)")
    done, missing = [], []
    for point in index["points"]:
        record = read_record(record_path(out_dir, point["key"]))
        if finished(record, point["key"]):
            done.append(record)
        else:
            failed = read_record(record_path(out_dir, point["key"], failed=True))
            missing.append(failed or {**point, "status": "not run", "error": "not run"})
    return done, missing


def load_runs(results_dir: str | Path, name: str, allow_missing: bool = False) -> pd.DataFrame:
    """One row per point of a sweep: its axes (optimizer as the paper spells it) and test metrics."""
    done, missing = load_sweep(results_dir, name)
    if missing and not allow_missing:
        errors = "; ".join(f"{r['axes']}: {r['error']}" for r in missing[:3])
        raise DataError(f"sweep {name}: {len(missing)} point(s) failed or not run ({errors})")
    if not done:
        raise DataError(f"sweep {name}: no point has finished yet")
    rows = []
    for record in done:
        row = dict(record["axes"])
        if "optimizer" in row:
            row["optimizer"] = paper.PAPER_OPTIMIZER_NAMES.get(row["optimizer"], row["optimizer"])
        test = record["run"]["test"]
        for label, field_ in TEST_METRICS.items():
            low, high = test.get("ci", {}).get(field_) or (None, None)
            row.update({label: test[field_], f"{label} low": low, f"{label} high": high})
        rows.append(row)
    return pd.DataFrame(rows).astype({m: float for m in _metric_columns()})


def _metric_columns() -> list[str]:
    """The metric columns of :func:`load_runs`: each test metric and its interval's bounds."""
    return [c for m in TEST_METRICS for c in (m, f"{m} low", f"{m} high")]


def grid_axes(runs: pd.DataFrame) -> list[str]:
    """The axes of a :func:`load_runs` frame that take more than one value."""
    return [c for c in runs.columns if c not in _metric_columns() and runs[c].nunique() > 1]


def runs_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per point, indexed by its axes: each test metric as 'value [low, high]' (the bootstrap's 95% CI)."""

    def cell(value: float, low: float, high: float) -> str:
        if pd.isna(value):
            return "—"
        return f"{value:.3f}" if pd.isna(low) else f"{value:.3f} [{low:.3f}, {high:.3f}]"

    axes = [c for c in runs.columns if c not in _metric_columns()]
    table = pd.DataFrame(
        {m: [cell(*r) for r in runs[[m, f"{m} low", f"{m} high"]].to_numpy()] for m in TEST_METRICS}
    )
    table.index = pd.MultiIndex.from_frame(runs[axes]) if len(axes) > 1 else runs[axes[0]]
    return table
