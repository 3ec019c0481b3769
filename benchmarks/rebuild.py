"""Rebuild costs: a cold book, the same book again with nothing changed, one optimizer's parameter changed.

Run from the repository root: ``python benchmarks/rebuild.py [--profile ci] [--jobs N]``. Every step
runs :func:`mcalc.pipeline.run_profile` in fresh folders under ``build/bench/rebuild/<profile>``
(data, results, caches, executed notebooks), one after the other in one process, and records its
wall time, which notebooks were executed and the machine's load average before and after (the
machine may be shared). Steps:

1. cold: empty folders (phantom generation, features, every notebook, the seed sweep);
2. warm: the same build again, nothing changed (every notebook should be up to date);
3. changed one parameter: Adam's learning rate changed in the plan (03 Adam and 05 should run);
4. one chapter by papermill: ``--only 03_optimizer_adam --force``, features cached.

Raw figures to ``benchmarks/results/rebuild-<profile>.json`` (not committed); a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcalc import pipeline
from mcalc.fsio import write_text

HERE = Path(__file__).resolve().parent
MARKER = "<!-- rebuild: figures from benchmarks/rebuild.py; run.py --write keeps this section -->"
CHANGED_RUN = "03_optimizer_adam"
CHANGED_PARAMETER = {"learning_rate": 1e-3}


def step(name: str, profile: pipeline.Profile, **kw) -> dict:
    """One build: wall time, the notebooks executed (those with a non-zero time), load averages."""
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    done = pipeline.run_profile(profile, **kw)
    wall = time.perf_counter() - start
    return {
        "step": name,
        "wall_s": wall,
        "executed": [path.stem for path, elapsed in done if elapsed > 0],
        "kept": [path.stem for path, elapsed in done if elapsed == 0],
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


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
    ap.add_argument("--profile", default="ci", choices=sorted(pipeline.PROFILES))
    ap.add_argument("--jobs", type=int, default=None)
    args = ap.parse_args(argv)
    work = Path("build/bench/rebuild") / args.profile
    shutil.rmtree(work, ignore_errors=True)
    profile = pipeline.get_profile(
        args.profile,
        data_root=str(work / "data"),
        results_dir=str(work / "results"),
        cache_dir=str(work / "cache"),
        out_dir=str(work / "executed"),
    )
    rows = [step("cold", profile, jobs=args.jobs)]
    rows.append(step("warm (nothing changed)", profile, jobs=args.jobs))
    real_plan = pipeline.plan
    pipeline.plan = with_changed_parameter(real_plan)
    try:
        rows.append(step(f"changed one parameter ({CHANGED_RUN})", profile, jobs=args.jobs))
    finally:
        pipeline.plan = real_plan
    rows.append(
        step("one chapter by papermill", profile, only=[CHANGED_RUN], force=True, jobs=args.jobs)
    )
    out = HERE / "results" / f"rebuild-{args.profile}.json"
    out.parent.mkdir(exist_ok=True)
    write_text(out, json.dumps({"profile": args.profile, "cores": os.cpu_count(), "rows": rows}))
    print("| step | wall | executed | kept | load avg before / after |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['step']} | {r['wall_s']:.1f} s | {', '.join(r['executed']) or '—'} | "
            f"{len(r['kept'])} | {r['load_before']:.1f} / {r['load_after']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
