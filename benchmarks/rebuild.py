"""Rebuild costs: a cold book, the same book again with nothing changed, one optimizer's parameter changed.

Run from the repository root: ``python benchmarks/rebuild.py [--profile ci] [--jobs N]``. Every step
runs in fresh folders under ``build/bench/rebuild/<profile>`` (data, results, caches, executed
notebooks), one after the other, and records its wall time, which notebooks were executed and the
machine's load average before and after (the machine may be shared). Steps:

1. cold: ``python -m mcalc book`` on empty folders (phantom generation, features, every notebook, the
   seed sweep, the Jupyter Book build), as a user types it: interpreter start-up included;
2. warm: the same command again, nothing changed (every notebook should be kept; the book is rebuilt);
3. changed one parameter: Adam's learning rate changed in the plan, notebooks only, in-process (03
   Adam and 05 should run, nothing else);
4. one chapter by papermill: the README's recipe (jupytext, then papermill with new parameters on the
   optimizer template), features cached, as two commands.

Per-notebook execution times of the cold step are read from the executed notebooks (papermill's own
record). Raw figures to ``benchmarks/results/rebuild-<profile>.json`` (not committed); a markdown table
on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcalc.records.fsio import write_text
from mcalc.run import pipeline, profiles, runner

HERE = Path(__file__).resolve().parent
MARKER = "<!-- rebuild: figures from benchmarks/rebuild.py; run.py --write keeps this section -->"
CHANGED_RUN = "03_optimizer_adam"
CHANGED_PARAMETER = {"learning_rate": 1e-3}


def timed(name: str, run) -> dict:
    """Wall time and load averages around ``run()``, which returns the extra fields of the row."""
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    extra = run()
    return {
        "step": name,
        "wall_s": time.perf_counter() - start,
        **extra,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def step(name: str, profile: profiles.Profile, **kw) -> dict:
    """One in-process build of the notebooks: the notebooks executed (non-zero time) and kept."""

    def run() -> dict:
        """Run the profile; which notebooks ran."""
        done = pipeline.run_profile(profile, **kw)
        return {
            "executed": [path.stem for path, elapsed in done if elapsed > 0],
            "kept": [path.stem for path, elapsed in done if elapsed == 0],
        }

    return timed(name, run)


def notebook_durations(out_dir: Path) -> dict[str, float]:
    """Each executed notebook's execution time, as papermill recorded it in the notebook."""
    out = {}
    for path in sorted(Path(out_dir).glob("*.ipynb")):
        meta = json.loads(path.read_text()).get("metadata", {}).get("papermill", {})
        if meta.get("duration") is not None:
            out[path.stem] = float(meta["duration"])
    return out


def book_command(profile: profiles.Profile) -> list[str]:
    """``python -m mcalc book`` for ``profile``'s folders (what `make book` runs, with them)."""
    return [
        sys.executable,
        "-m",
        "mcalc",
        "book",
        "--profile",
        profile.name,
        "--data-root",
        profile.data_folder(),
        "--results-dir",
        profile.results_dir,
        "--cache-dir",
        profile.cache_dir,
        "--out-dir",
        profile.out_dir,
        "--quiet",
    ]


def book_step(name: str, profile: profiles.Profile) -> dict:
    """`mcalc book` as a subprocess; which notebooks it executed (their papermill times changed)."""

    def run() -> dict:
        """Run the command; the notebooks whose execution record changed."""
        before = notebook_durations(Path(profile.out_dir))
        mtimes = {p.stem: p.stat().st_mtime for p in Path(profile.out_dir).glob("*.ipynb")}
        done = subprocess.run(book_command(profile), capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(
                f"{name}: mcalc book failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        after = notebook_durations(Path(profile.out_dir))
        executed = [
            stem
            for stem, path in ((p.stem, p) for p in Path(profile.out_dir).glob("*.ipynb"))
            if stem not in mtimes or before.get(stem) != after.get(stem)
        ]
        return {
            "executed": sorted(executed),
            "kept": sorted(set(after) - set(executed)),
            "notebook_s": {k: after[k] for k in sorted(executed) if k in after},
        }

    return timed(name, run)


def papermill_step(profile: profiles.Profile, work: Path) -> dict:
    """The README's re-run recipe on the optimizer template: jupytext to .ipynb, then papermill."""
    bin_dir = Path(sys.executable).parent
    template = work / "03_optimizer.ipynb"
    params = {
        "optimizer": "rmsprop",
        "learning_rate": 1e-3,
        "epochs": 5,
        "results_dir": profile.results_dir,
        "cache_dir": profile.cache_dir,
        "image_size": profile.image_size,
        "validation_size": profile.validation(),
        "n_boot": profile.n_boot,
    }
    declared = runner.declared("03_optimizer")
    args = [x for k, v in params.items() if k in declared for x in ("-p", k, str(v))]

    def run() -> dict:
        """jupytext, then papermill; the executed notebook's own time."""
        for cmd in (
            [
                bin_dir / "jupytext",
                "--to",
                "ipynb",
                "--set-kernel",
                "python3",
                "notebooks/03_optimizer.py",
                "-o",
                template,
            ],
            [bin_dir / "papermill", "--cwd", ".", template, work / "03_override.ipynb", *args],
        ):
            done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"papermill recipe failed:\n{done.stderr[-3000:]}")
        return {
            "executed": ["03_override (rmsprop, lr 1e-3, 5 epochs)"],
            "kept": [],
            "notebook_s": notebook_durations(work),
        }

    return timed("one chapter by papermill (README recipe)", run)


def with_changed_parameter(plan):
    """The plan with one optimizer chapter's parameters changed (as an edit of that chapter would)."""

    def changed(profile):
        """The plan, CHANGED_RUN's parameters updated."""
        return [
            replace(r, parameters={**r.parameters, **CHANGED_PARAMETER})
            if r.output == CHANGED_RUN
            else r
            for r in plan(profile)
        ]

    return changed


def kept_section(markdown: Path) -> str:
    """The rebuild section of an existing RESULTS.md (from its marker on), to keep when the rest is rewritten."""
    text = Path(markdown).read_text() if Path(markdown).is_file() else ""
    return "\n\n" + text[text.index(MARKER) :] if MARKER in text else ""


def main(argv: list[str] | None = None) -> int:
    """Run the four steps and print their table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="ci", choices=sorted(profiles.PROFILES))
    ap.add_argument("--jobs", type=int, default=None)
    args = ap.parse_args(argv)
    work = Path("build/bench/rebuild") / args.profile
    shutil.rmtree(work, ignore_errors=True)
    profile = profiles.get_profile(
        args.profile,
        data_root=str(work / "data"),
        results_dir=str(work / "results"),
        cache_dir=str(work / "cache"),
        out_dir=str(work / "executed"),
    )
    rows = [book_step("cold: mcalc book, empty folders", profile)]
    rows.append(book_step("warm: mcalc book again, nothing changed", profile))
    real_plan = pipeline.plan
    pipeline.plan = with_changed_parameter(real_plan)
    try:
        rows.append(
            step(f"changed one parameter ({CHANGED_RUN}), notebooks only", profile, jobs=args.jobs)
        )
    finally:
        pipeline.plan = real_plan
    rows.append(papermill_step(profile, work))
    out = HERE / "results" / f"rebuild-{args.profile}.json"
    out.parent.mkdir(exist_ok=True)
    write_text(out, json.dumps({"profile": args.profile, "cores": os.cpu_count(), "rows": rows}))
    print("| step | wall | executed (execution time each) | kept | load avg before / after |")
    print("|---|---|---|---|---|")
    for r in rows:
        times = r.get("notebook_s", {})
        ran = ", ".join(f"{e} ({times[e]:.1f} s)" if e in times else e for e in r["executed"])
        print(
            f"| {r['step']} | {r['wall_s']:.1f} s | {ran or '—'} | "
            f"{len(r['kept'])} | {r['load_before']:.1f} / {r['load_after']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
