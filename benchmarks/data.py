"""Section 2: ``mcalc phantom`` and ``mcalc curate`` as subprocesses: ROIs/s and peak RSS; the
phantom the extraction section reads."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

from benchmarks.config import BenchConfig
from benchmarks.markdown import fmt_gb, fmt_s, table
from benchmarks.measure import run_measured, tail

NUMBER = 2


def phantom_dir(cfg: BenchConfig, scale: float) -> Path:
    """Where the benchmark's phantom of ``scale`` lives."""
    return cfg.work_dir / "data" / f"phantom-{scale:g}"


def remove_phantom(root: Path) -> None:
    """Delete a previous benchmark phantom (only a folder that holds a phantom.json marker, or nothing)."""
    if root.exists():
        if not (root / "phantom.json").is_file() and any(root.iterdir()):
            raise RuntimeError(f"{root} exists and is not a phantom; refusing to delete it")
        shutil.rmtree(root)


def bench_data(cfg: BenchConfig) -> dict:
    """Section 2: ``mcalc phantom`` and ``mcalc curate`` as subprocesses at ``cfg.scale``: ROIs/s and peak RSS."""
    root = phantom_dir(cfg, cfg.scale)
    remove_phantom(root)
    logs = cfg.work_dir / "logs"
    python = sys.executable
    phantom = run_measured(
        [
            python,
            "-m",
            "mcalc",
            "phantom",
            str(root),
            "--scale",
            f"{cfg.scale:g}",
            "--seed",
            str(cfg.seed),
            "--quiet",
        ],
        logs / "phantom.log",
    )
    if phantom.returncode != 0:
        raise RuntimeError(f"mcalc phantom failed (exit {phantom.returncode}): {tail(phantom.log)}")
    n_rois = int(json.loads((root / "phantom.json").read_text())["summary"]["n_rois"])
    out = {
        "scale": cfg.scale,
        "n_rois": n_rois,
        "phantom": asdict(phantom),
        "phantom_rois_per_s": n_rois / phantom.wall_s,
    }
    manifest = cfg.work_dir / "curate" / f"phantom-{cfg.scale:g}" / "manifest.csv"
    curate = run_measured(
        [python, "-m", "mcalc", "curate", str(root), "--out", str(manifest), "--quiet"],
        logs / "curate.log",
    )
    if curate.returncode != 0:
        raise RuntimeError(f"mcalc curate failed (exit {curate.returncode}): {tail(curate.log)}")
    out.update(
        curate=asdict(curate), curate_rois_per_s=n_rois / curate.wall_s, manifest=str(manifest)
    )
    return out


def usable_crop_paths(root: Path) -> tuple[list[str], str]:
    """The crop paths of the usable ROIs of a phantom (its curated manifest) and how they were found."""
    from mcalc.data.curation import curate

    result = curate(root, progress=False)
    ok = result.manifest[result.manifest["status"] == "ok"]
    return list(
        ok["crop_path"]
    ), f"usable ROIs of the curated manifest ({len(result.manifest) - len(ok)} excluded)"


def render(results: dict) -> list[str]:
    """Section 2 of the report (nothing when it was not run)."""
    d = results.get("data")
    if not d:
        return []
    lines: list[str] = []
    lines += [
        "",
        f"## {NUMBER}. Data: phantom generation and curation (scale {d['scale']:g}, {d['n_rois']} ROIs)",
        "",
    ]
    rows = [
        [
            f"`mcalc {command}`",
            fmt_s(d[command]["wall_s"]),
            f"{d[f'{command}_rois_per_s']:.1f}",
            fmt_gb(d[command]["peak_rss_bytes"]),
            fmt_gb(d[command]["peak_tree_rss_bytes"]),
        ]
        for command in ("phantom", "curate")
    ]
    lines += table(
        ["command", "wall", "ROIs/s", "peak RSS, largest process", "peak RSS, process tree"],
        rows,
    )
    lines += [
        "",
        "Each command runs as a subprocess (wall time includes interpreter start-up); largest process: "
        "the kernel's maximum resident set (getrusage of a launcher's children); process tree: summed RSS of the command and its "
        "workers, sampled at 10 Hz.",
    ]
    return lines
