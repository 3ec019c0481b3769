"""Section 5 (``--book``): wall time and peak RSS of the whole book at several phantom scales, and where
the time went (each executed notebook, the sweep points, the phantom's generation, the rest)."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from benchmarks.config import TARGET_BOOK_S, BenchConfig
from benchmarks.markdown import fmt_gb, fmt_s, table
from benchmarks.measure import run_measured, tail
from benchmarks.rebuild import notebook_durations

NUMBER = 5
#: The book script's own clock readings (seconds since the epoch), written beside the scale's folders.
STAGES = "stages.json"

_BOOK_SCRIPT = """
import json, sys, time
clock = {"script_start": time.time()}
from dataclasses import replace
from pathlib import Path
from mcalc.report.book import assemble, build_book
from mcalc.run.pipeline import run_profile
from mcalc.run.profiles import get_profile
scale, work = float(sys.argv[1]), Path(sys.argv[2])
profile = replace(get_profile("default", phantom_scale=scale), name=f"bench-{scale:g}",
                  data_root=str(work / "data" / "phantom"), results_dir=str(work / "results"),
                  cache_dir=str(work / "cache"), out_dir=str(work / "executed"))
clock["imported"] = time.time()
run_profile(profile)
clock["run_profile_end"] = time.time()
print("book:", build_book(profile, source=assemble(profile, work / "book")))
clock["build_book_end"] = time.time()
(work / "stages.json").write_text(json.dumps(clock))
"""


def _span(path: Path) -> tuple[float, float] | None:
    """(start, end) of an executed notebook, seconds since the epoch, as papermill recorded them."""
    meta = json.loads(path.read_text()).get("metadata", {}).get("papermill", {})
    if not (meta.get("start_time") and meta.get("end_time")):
        return None
    return tuple(datetime.fromisoformat(meta[k]).timestamp() for k in ("start_time", "end_time"))


def union_s(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one of the (start, end) spans (overlaps counted once)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def phantom_seconds(root: Path, window: tuple[float, float] | None) -> float | None:
    """Seconds the phantom's generation held its folder: from the folder's lock file, written when the
    generation takes the folder, to ``phantom.json``, the finished marker written last; None when
    either is missing, the phantom is unfinished, or the two fall outside ``window`` (notebook 01)."""
    from mcalc.records.fsio import LOCK_NAME

    lock, marker = root / LOCK_NAME, root / "phantom.json"
    if not (lock.is_file() and marker.is_file()) or not json.loads(marker.read_text()).get(
        "complete"
    ):
        return None
    start, end = lock.stat().st_mtime, marker.stat().st_mtime
    if end < start or (window and not (window[0] - 1 <= start and end <= window[1] + 1)):
        return None
    return end - start


def backbone_rows(cache: Path) -> int:
    """Backbone feature rows in a feature cache: one ``<2 hex>/<key>.npz`` file per ROI the backbone saw
    (a cold build starts from an empty cache, so this counts its forward passes; the GLCM rows live in
    a subfolder and are not counted)."""
    return sum(1 for _ in cache.glob("[0-9a-f][0-9a-f]/*.npz")) if cache.is_dir() else 0


def floor_s(results: dict, row: dict | None) -> float | None:
    """The backbone's forwards of a cold book at the ceiling, in seconds (see :func:`floor_rows`)."""
    rows_seen = ((row or {}).get("stages") or {}).get("backbone_rows")
    bb = results.get("backbone") or {}
    ceiling = (bb.get("ceiling") or {}).get("flops_per_s")
    if not rows_seen or not bb.get("flops_per_image") or not ceiling:
        return None
    return rows_seen * bb["flops_per_image"] / ceiling


def reduced_precision_s(results: dict, row: dict | None) -> tuple[str, float] | None:
    """(variant, seconds): the cold book's backbone passes at the speed section 1 measured for the
    opt-in bfloat16 variant (None when it was not measured)."""
    from benchmarks.backbone import summarize_variants
    from mcalc.learn.backbone import REDUCED_PRECISION

    rows_seen = ((row or {}).get("stages") or {}).get("backbone_rows")
    bb = results.get("backbone") or {}
    if not rows_seen or not bb.get("variants") or not results.get("config"):
        return None
    for s in summarize_variants(bb["variants"], bb["flops_per_image"], results["config"]):
        variant = s["run"].split("@")[0]
        if variant in REDUCED_PRECISION and s["images_per_s"] > 0:
            return variant, rows_seen / s["images_per_s"]
    return None


def floor_rows(results: dict, row: dict) -> list[list[str]] | None:
    """The floor of one cold book: its backbone forwards at the machine's dense-convolution ceiling
    (section 1's FLOPs per image and ceiling, the same run), beside the target; None without them."""
    at_ceiling = floor_s(results, row)
    if at_ceiling is None:
        return None
    bb = results["backbone"]
    rows = [
        [
            "backbone forward passes in the cold build (feature rows written to the empty cache)",
            f"{row['stages']['backbone_rows']:,}",
        ],
        ["FLOPs per forward pass (section 1)", f"{bb['flops_per_image'] / 1e9:.2f} GFLOP"],
        [
            "the machine's dense-convolution ceiling (section 1)",
            f"{bb['ceiling']['flops_per_s'] / 1e9:.1f} GFLOP/s",
        ],
        [
            "**the backbone alone at 100% of the ceiling** (passes × FLOPs / ceiling, float32)",
            fmt_s(at_ceiling),
        ],
    ]
    if bb.get("fraction_of_ceiling"):
        rows.append(
            [
                f"the backbone alone at the {bb['fraction_of_ceiling']:.0%} of the ceiling it reached "
                "in section 1",
                fmt_s(at_ceiling / bb["fraction_of_ceiling"]),
            ]
        )
    reduced = reduced_precision_s(results, row)
    if reduced is not None:
        rows.append(
            [
                f"the backbone alone at the speed of the opt-in `{reduced[0]}` variant (section 1; "
                "bfloat16 arithmetic, not the book's float32 features)",
                fmt_s(reduced[1]),
            ]
        )
    if row["stages"].get("phantom_s") is not None:
        rows.append(["phantom generation (this run)", fmt_s(row["stages"]["phantom_s"])])
    rows.append(["target: the whole cold book", fmt_s(TARGET_BOOK_S)])
    rows.append(["measured: the whole cold book", fmt_s(row["wall_s"])])
    return rows


def floor_sentence(results: dict, row: dict) -> str:
    """The floor's reading, generated from its figures."""
    at_ceiling = floor_s(results, row)
    n = row["stages"]["backbone_rows"]
    if at_ceiling is None:
        return ""
    if at_ceiling > TARGET_BOOK_S:
        verdict = (
            f"more than the {fmt_s(TARGET_BOOK_S)} target by {fmt_s(at_ceiling - TARGET_BOOK_S)}: "
            "on this machine a cold book that extracts these features cannot meet it, whatever the "
            "rest costs"
        )
    else:
        verdict = (
            f"{at_ceiling / TARGET_BOOK_S:.0%} of the {fmt_s(TARGET_BOOK_S)} target, leaving "
            f"{fmt_s(TARGET_BOOK_S - at_ceiling)} for everything else"
        )
    text = (
        f"The backbone must see every ROI of a cold build once ({n:,} passes here: the phantom's "
        f"usable ROIs and chapter 8's two copies). At 100% of the machine's float32 dense-convolution "
        f"ceiling those passes alone take {fmt_s(at_ceiling)}, {verdict}. The whole cold book took "
        f"{fmt_s(row['wall_s'])}, {row['wall_s'] / at_ceiling:.1f}× that floor."
    )
    reduced = reduced_precision_s(results, row)
    if reduced is not None:
        variant, seconds = reduced
        text += (
            f" In bfloat16 (`{variant}`, opt-in: its features are within a stated tolerance of "
            f"float32's, not equal to them, so the book keeps float32) the same passes would take "
            f"{fmt_s(seconds)} at the speed section 1 measured, {at_ceiling / seconds:.1f}× faster "
            "than the float32 floor."
        )
    return text


def sweep_kernels(records: Path) -> dict | None:
    """How a sweep's points ran, from their records: ``warm`` points (in a kept kernel, reset between
    points), ``kernels`` (kernels started: one per warm kernel's first point, one per fresh point);
    None without records."""
    kernels = [
        json.loads(p.read_text()).get("kernel") or {} for p in sorted(records.glob("*.json"))
    ]
    if not kernels:
        return None
    warm = [k for k in kernels if k.get("warm")]
    started = sum(1 for k in warm if k.get("points_before") == 0) + len(kernels) - len(warm)
    return {"warm": len(warm), "kernels": started}


def sweep_label(sweep: dict) -> str:
    """The per-stage table's words for a sweep: its points and the kernels they ran in."""
    k = sweep.get("kernels")
    if k is None:
        how = "kernels not recorded"
    elif k["warm"] == 0:
        how = "one fresh kernel each"
    elif k["warm"] == sweep["points"]:
        how = (
            f"in {k['kernels']} warm kernel{'s' if k['kernels'] != 1 else ''}, reset between points"
        )
    else:
        how = f"{k['warm']} in warm kernels, reset between points; {k['kernels']} kernels started"
    return f"sweep `{sweep['name']}`: {sweep['points']} points, {how}"


def stage_times(work: Path) -> dict:
    """Where one scale's time went, read from its folders after the run (see :func:`render_stages`)."""
    executed = work / "executed"
    spans = {p.stem: _span(p) for p in sorted(executed.glob("*.ipynb"))}
    spans = {k: v for k, v in spans.items() if v}
    durations = notebook_durations(executed)
    order = sorted(durations, key=lambda k: spans.get(k, (float("inf"),))[0])
    sweeps, all_spans = [], list(spans.values())
    for folder in sorted((work / "results" / "sweeps").glob("*/notebooks")):
        points = notebook_durations(folder)
        point_spans = [s for s in map(_span, sorted(folder.glob("*.ipynb"))) if s]
        all_spans += point_spans
        sweeps.append(
            {
                "name": folder.parent.name,
                "points": len(points),
                "kernels": sweep_kernels(folder.parent / "records"),
                "seconds": sum(points.values()),
                "start": min((s[0] for s in point_spans), default=None),
                "busy_s": union_s(point_spans),
            }
        )
    clock_path = work / STAGES
    clock = json.loads(clock_path.read_text()) if clock_path.is_file() else {}
    first = next((k for k in order if k.startswith("01_")), None)
    return {
        "notebook_s": {k: durations[k] for k in order},
        "notebook_start": {k: spans[k][0] for k in order if k in spans},
        "sweeps": sweeps,
        "busy_s": union_s(all_spans),
        "phantom_s": phantom_seconds(work / "data" / "phantom", spans.get(first)),
        "backbone_rows": backbone_rows(work / "cache"),
        "clock": clock,
    }


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
        stages = stage_times(work)
        rows.append(
            {
                "scale": scale,
                **asdict(cost),
                "error": "" if cost.returncode == 0 else tail(cost.log),
                "stages": stages,
            }
        )
        print(
            f"[bench] book at scale {scale:g}: {fmt_s(cost.wall_s)}, notebooks and sweep points "
            f"{fmt_s(stages['busy_s'])}, phantom generation "
            f"{'not recorded' if stages['phantom_s'] is None else fmt_s(stages['phantom_s'])}",
            file=sys.stderr,
            flush=True,
        )
    return {"rows": rows}


def kept_phantom_s(row: dict) -> float | None:
    """The cold book with the phantom already written, computed from the same run: wall − its generation."""
    phantom = (row.get("stages") or {}).get("phantom_s")
    return None if phantom is None or row.get("returncode") else row["wall_s"] - phantom


def stage_rows(row: dict) -> list[list[str]]:
    """Rows of the per-stage table of one scale: each notebook and sweep, then the rest, then the wall time."""
    st, clock = row["stages"], row["stages"].get("clock", {})
    t0 = clock.get("script_start")
    stages = []  # (start, what, seconds)
    for name, seconds in st["notebook_s"].items():
        what = f"`{name}`"
        if name.startswith("01_") and st.get("phantom_s") is not None:
            what += f" (of which phantom generation {fmt_s(st['phantom_s'])})"
        stages.append((st["notebook_start"].get(name), what, fmt_s(seconds)))
    for sw in st["sweeps"]:
        what = sweep_label(sw)
        seconds = f"{fmt_s(sw['seconds'])} (over {fmt_s(sw['busy_s'])} of wall time)"
        stages.append((sw.get("start"), what, seconds))
    rows = []
    for start, what, seconds in sorted(
        stages, key=lambda s: float("inf") if s[0] is None else s[0]
    ):
        at = "—" if t0 is None or start is None else f"{(start - t0) / 60:.1f} min"
        rows.append([what, at, seconds])
    rest = row["wall_s"] - st["busy_s"]
    rows.append(["notebooks and sweep points, overlaps counted once", "", fmt_s(st["busy_s"])])
    rows.append(
        ["the rest (wall − the line above): start-up, preflight, the book build", "", fmt_s(rest)]
    )
    if {"script_start", "imported", "run_profile_end", "build_book_end"} <= set(clock):
        parts = {
            "interpreter start-up and exit (outside the book script)": row["wall_s"]
            - (clock["build_book_end"] - clock["script_start"]),
            "the book script's imports": clock["imported"] - clock["script_start"],
            "`run_profile` outside the notebooks (preflight, build keys, sweep set-up)": (
                clock["run_profile_end"] - clock["imported"]
            )
            - st["busy_s"],
            "the Jupyter Book build (`build_book`)": clock["build_book_end"]
            - clock["run_profile_end"],
        }
        rows += [[f"in the rest: {k}", "", fmt_s(v)] for k, v in parts.items()]
    rows.append(["wall (the whole subprocess)", "", fmt_s(row["wall_s"])])
    return rows


def _cell(value: float | None) -> str:
    """Seconds formatted, or a dash."""
    return "—" if value is None else fmt_s(value)


def render(results: dict) -> list[str]:
    """Section 5 of the report (nothing when it was not run)."""
    bk = results.get("book")
    if not bk:
        return []
    lines: list[str] = []
    lines += ["", f"## {NUMBER}. The whole book (`default` profile) by phantom scale", ""]
    lines += table(
        [
            "scale",
            "wall, cold",
            "phantom generation",
            "with the phantom kept (computed: wall − generation)",
            "peak RSS, process tree",
            "peak RSS, largest process",
            "status",
        ],
        [
            [
                f"{r['scale']:g}",
                fmt_s(r["wall_s"]),
                _cell((r.get("stages") or {}).get("phantom_s")),
                _cell(kept_phantom_s(r)),
                fmt_gb(r["peak_tree_rss_bytes"]),
                fmt_gb(r["peak_rss_bytes"]),
                "ok" if r["returncode"] == 0 else f"failed: {r['error'][:200]}",
            ]
            for r in bk["rows"]
        ],
    )
    lines += [
        "",
        "Each scale in fresh data / results / cache folders (nothing shared, so every row includes "
        "phantom generation and feature extraction). Phantom generation: from the phantom folder's "
        "lock file, written when notebook 01 takes the folder to generate it, to its `phantom.json`, "
        "the last file written (file times of the same run). *With the phantom kept* is computed "
        "from the same run, not measured: a later build of the same scale, seed and code keeps the "
        "phantom (it checks the kept files' digests instead, which this figure does not count).",
    ]
    staged = [r for r in bk["rows"] if r.get("stages") and r["returncode"] == 0]
    if staged:
        big = max(staged, key=lambda r: r["scale"])
        lines += ["", f"### Where the time went, scale {big['scale']:g}", ""]
        lines += table(["stage", "started (after the script's start)", "seconds"], stage_rows(big))
        lines += [
            "",
            "Each notebook's and sweep point's own execution time, as papermill recorded it in the "
            "executed notebook; notebooks of one wave run side by side (two at a time on two cores), "
            "so their seconds add up to more than the time they took together: the rest is the wall "
            "time less the time during which at least one notebook or sweep point was executing.",
        ]
        floor = floor_rows(results, big)
        if floor:
            lines += ["", f"### The floor of a cold book, scale {big['scale']:g}", ""]
            lines += table(["quantity", "value"], floor)
            lines += ["", floor_sentence(results, big)]
    return lines
