"""Section 5 (``--book``): wall time and peak RSS of the whole book at several phantom scales."""

from __future__ import annotations

import shutil
import sys
from dataclasses import asdict

from benchmarks.config import BenchConfig
from benchmarks.markdown import fmt_gb, fmt_s, table
from benchmarks.measure import run_measured, tail

NUMBER = 5


_BOOK_SCRIPT = """
import sys
from dataclasses import replace
from pathlib import Path
from mcalc.report.book import assemble, build_book
from mcalc.run.pipeline import run_profile
from mcalc.run.profiles import get_profile
scale, work = float(sys.argv[1]), Path(sys.argv[2])
profile = replace(get_profile("default", phantom_scale=scale), name=f"bench-{scale:g}",
                  data_root=str(work / "data" / "phantom"), results_dir=str(work / "results"),
                  cache_dir=str(work / "cache"), out_dir=str(work / "executed"))
run_profile(profile)
print("book:", build_book(profile, source=assemble(profile, work / "book")))
"""


def bench_book(cfg: BenchConfig) -> dict:
    """Section 5: the whole book (default profile) at each phantom scale, in fresh folders under the work dir."""
    rows = []
    for scale in cfg.book_scales:
        work = cfg.work_dir / "book" / f"scale-{scale:g}"
        shutil.rmtree(work, ignore_errors=True)
        cost = run_measured(
            [sys.executable, "-c", _BOOK_SCRIPT, f"{scale:g}", str(work)],
            cfg.work_dir / "logs" / f"book-{scale:g}.log",
        )
        rows.append(
            {
                "scale": scale,
                **asdict(cost),
                "error": "" if cost.returncode == 0 else tail(cost.log),
            }
        )
    return {"rows": rows}


def render(results: dict) -> list[str]:
    """Section 5 of the report (nothing when it was not run)."""
    bk = results.get("book")
    if not bk:
        return []
    lines: list[str] = []
    lines += ["", f"## {NUMBER}. The whole book (`default` profile) by phantom scale", ""]
    lines += table(
        ["scale", "wall", "peak RSS, process tree", "peak RSS, largest process", "status"],
        [
            [
                f"{r['scale']:g}",
                fmt_s(r["wall_s"]),
                fmt_gb(r["peak_tree_rss_bytes"]),
                fmt_gb(r["peak_rss_bytes"]),
                "ok" if r["returncode"] == 0 else f"failed: {r['error'][:200]}",
            ]
            for r in bk["rows"]
        ],
    )
    lines += [
        "",
        "Each scale in fresh data / results / cache folders (nothing shared, so the scale-1 row "
        "includes phantom generation and feature extraction).",
    ]
    return lines
