"""Per-point cost of a sweep: a fresh kernel per point (the earlier design) against warm kernels.

Run from the repository root: ``python benchmarks/sweep_points.py [--points 6] [--scale 0.05]``.
One run, one machine: a tiny phantom's inputs are made once (manifest and random-weight features
under ``build/bench/sweep``), then the same serial sweep of the optimizer template (``--points``
seeds, Adam, ``--epochs`` epochs) runs with a fresh kernel per point, then with one warm kernel, then
fresh and warm again (alternating, so a change in the machine's load falls on both). For each run:
the wall time per point, the head training inside it (the run record's ``elapsed_s``) and the rest
(kernel start, imports, reading the inputs, evaluation, the notebook's figures). Prints a markdown
table; raw figures to ``benchmarks/results/sweep-points.json`` (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcalc.records.fsio import write_text

HERE = Path(__file__).resolve().parent


def prepare(work: Path, scale: float, image_size: int):
    """A CI-like profile on a fresh tiny phantom with random-weight features (what notebooks 01-02 make)."""
    from mcalc.chapters.prepare import prepare_data
    from mcalc.learn.features import compute_features
    from mcalc.learn.weights import resolve_weights
    from mcalc.records.results import load_manifest, read_results_provenance
    from mcalc.run.profiles import get_profile

    shutil.rmtree(work, ignore_errors=True)
    profile = get_profile(
        "ci",
        data_root=str(work / "data"),
        results_dir=str(work / "results"),
        cache_dir=str(work / "cache"),
        phantom_scale=scale,
        image_size=image_size,
        weights="random",
    )
    prepare_data(
        "phantom",
        Path(profile.data_folder()),
        phantom_scale=scale,
        seed=0,
        results_dir=Path(profile.results_dir),
        progress=False,
    )
    weights = resolve_weights("random")
    prov = read_results_provenance(profile.results_dir).with_weights(weights.used, weights.note)
    compute_features(
        load_manifest(profile.results_dir),
        image_size,
        weights,
        Path(profile.cache_dir),
        Path(profile.results_dir),
        prov,
        progress=False,
    )
    return profile


def run_mode(profile, points: int, epochs: int, warm: bool, name: str) -> dict:
    """One serial sweep of ``points`` seeds; wall time and per-point figures."""
    from mcalc.records import sweeps
    from mcalc.run import sweep
    from mcalc.run.grid import GridSpec

    spec = GridSpec.from_dict(
        {
            "name": name,
            "fixed": {"optimizer": "adam", "epochs": epochs, "n_boot": 0, "split_seed": 0},
            "grid": {"seed": list(range(points))},
        }
    )
    load = os.getloadavg()[0]
    start = time.perf_counter()
    summary = sweep.run_sweep(spec, profile, "serial", progress=False, force=True, warm=warm)
    wall = time.perf_counter() - start
    assert not summary.failed, summary.describe()
    done, _ = sweeps.load_sweep(profile.results_dir, name)
    training = [r["run"]["elapsed_s"] for r in done]
    executions = [r["elapsed_s"] for r in done]
    return {
        "mode": "warm" if warm else "fresh",
        "wall_s": wall,
        "per_point_s": wall / points,
        "execution_s": executions,
        "training_s": training,
        "overhead_per_point_s": (wall - sum(training)) / points,
        "load_before": load,
        "load_after": os.getloadavg()[0],
    }


def render(result: dict) -> str:
    """The markdown table of one run."""
    lines = [
        f"**Sweep points: fresh kernel per point vs warm kernels** (`python benchmarks/sweep_points.py"
        f"{result['argv']}`, {result['date']}, one run; {result['points']} points of the optimizer "
        f"template per sweep, Adam, {result['epochs']} epochs, phantom scale {result['scale']:g} at "
        f"{result['image_size']} px, {result['n_rois']} ROIs)",
        "",
        "| sweep | kernels | wall | per point | head training per point | the rest per point "
        "| load avg before / after |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(result["runs"], start=1):
        n = len(r["training_s"])
        lines.append(
            f"| {i} | {r['mode']} | {r['wall_s']:.1f} s | {r['per_point_s']:.2f} s "
            f"| {sum(r['training_s']) / n:.2f} s | {r['overhead_per_point_s']:.2f} s "
            f"| {r['load_before']:.1f} / {r['load_after']:.1f} |"
        )
    fresh = [r["overhead_per_point_s"] for r in result["runs"] if r["mode"] == "fresh"]
    warm = [r["overhead_per_point_s"] for r in result["runs"] if r["mode"] == "warm"]
    lines += [
        "",
        f"The rest per point (everything but the head training): fresh {min(fresh):.2f}–"
        f"{max(fresh):.2f} s, warm {min(warm):.2f}–{max(warm):.2f} s; fresh / warm "
        f"{(sum(fresh) / len(fresh)) / (sum(warm) / len(warm)):.1f}× (means of the runs above).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Prepare the inputs, run the sweeps alternating fresh and warm, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--scale", type=float, default=0.05)
    ap.add_argument("--image-size", type=int, default=75)
    ap.add_argument("--repeats", type=int, default=2, help="fresh + warm pairs")
    args = ap.parse_args(argv)
    from mcalc.records.results import load_manifest

    profile = prepare(Path("build/bench/sweep"), args.scale, args.image_size)
    runs = []
    for i in range(args.repeats):
        for warm in (False, True):
            name = f"bench-{'warm' if warm else 'fresh'}-{i}"
            runs.append(run_mode(profile, args.points, args.epochs, warm, name))
            print(f"[bench] {name}: {runs[-1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "argv": "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
        "points": args.points,
        "epochs": args.epochs,
        "scale": args.scale,
        "image_size": args.image_size,
        "n_rois": len(load_manifest(profile.results_dir)),
        "runs": runs,
    }
    (HERE / "results").mkdir(exist_ok=True)
    write_text(HERE / "results" / "sweep-points.json", json.dumps(result, indent=1))
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
