"""The markdown report: the run, the machine, the targets, then each section in its published order."""

from __future__ import annotations

import re

from benchmarks import backbone, book, data, extraction, threads, training
from benchmarks.config import (
    TARGET_BOOK_S,
    TARGET_EXTRACTION_RATIO,
    TARGET_RSS_BYTES,
    TARGET_SPEEDUP,
)
from benchmarks.markdown import fmt_gb, fmt_s, table, verdict

#: The sections in their published (numbered) order.
SECTION_MODULES = (backbone, data, extraction, training, book)


def book_target(results: dict, full_book: dict | None) -> list[str]:
    """The whole-book row: the fully cold wall time (its verdict) and, beside it, the same run with the phantom kept."""
    name = (
        f"whole book, default data (scale 1), cold, ≤ {TARGET_BOOK_S / 60:g} min "
        "on an idle 2-core machine"
    )
    if not full_book:
        return [name, "not measured (run with `--book`)", "n/a"]
    ok = full_book["returncode"] == 0
    text = f"cold {fmt_s(full_book['wall_s'])}" + ("" if ok else " (failed)")
    floor = book.floor_s(results, full_book)
    if floor is not None:
        text += f"; its floor, the backbone's passes at the machine's ceiling: {fmt_s(floor)} (section 5)"
    kept = book.kept_phantom_s(full_book)
    text += (
        "; with the phantom kept: not recorded"
        if kept is None
        else f"; with the phantom kept: {fmt_s(kept)} (computed from the same run, no verdict)"
    )
    m = results.get("machine") or {}
    if m.get("cores") not in (None, 2):
        text += f"; measured on {m['cores']} cores"
    if (
        results.get("other_cpu_s") is not None
        and results.get("benchmark_wall_s")
        and m.get("cores")
    ):
        share = results["other_cpu_s"] / (results["benchmark_wall_s"] * m["cores"])
        if share > 0.1:
            text += f"; the machine was not idle ({share:.0%} used by other processes)"
    return [name, text, verdict(ok and full_book["wall_s"] <= TARGET_BOOK_S)]


def bottom_line(results: dict, rows: list[list[str]]) -> str:
    """One sentence from the targets table: how many were met, and each missed one in a few words."""
    judged = [r for r in rows if r[2].split()[0] in ("PASS", "MISS")]
    if not judged:
        return "**Bottom line:** no target was measured in this run."
    missed = [r for r in judged if r[2].startswith("MISS")]
    text = f"**Bottom line:** {len(judged) - len(missed)} of {len(judged)} targets met"
    if not missed:
        return text + "."
    full_book = next(
        (r for r in (results.get("book") or {}).get("rows", []) if r["scale"] == 1.0), None
    )
    floor = book.floor_s(results, full_book)

    def said(r: list[str]) -> str:
        """A missed target in a few words: its subject, the figure, the threshold (and the book's floor)."""
        goal = re.search(r"[≤≥] [\d.]+ ?(?:min|GB|×|%)?", r[0])
        words = f"{r[0].split(',')[0].split(' ≤ ')[0].split(' ≥ ')[0]}: "
        words += r[1].split(";")[0].split(" (")[0] + (f" against {goal.group(0)}" if goal else "")
        if r is rows[0] and full_book and floor is not None:
            words += (
                f", where the backbone's passes alone take {fmt_s(floor)} at the machine's ceiling"
            )
        return words

    return text + ". Missed: " + "; ".join(said(r) for r in missed) + "."


def targets(results: dict) -> list[list[str]]:
    """Rows of the targets table: target, measured, verdict."""
    book_rows = (results.get("book") or {}).get("rows", [])
    full_book = next((r for r in book_rows if r["scale"] == 1.0), None)
    rows = [book_target(results, full_book)]
    if full_book:
        rows.append(
            [
                "peak RSS of the book ≤ 4 GB",
                fmt_gb(full_book["peak_tree_rss_bytes"]) + " (process tree)",
                verdict(full_book["peak_tree_rss_bytes"] <= TARGET_RSS_BYTES),
            ]
        )
    else:
        steps = []
        if results.get("data"):
            d = results["data"]
            steps.append(("mcalc phantom", d["phantom"]["peak_tree_rss_bytes"]))
            steps.append(("mcalc curate", d["curate"]["peak_tree_rss_bytes"]))
        if results.get("extraction"):
            steps.append(
                (
                    "benchmark process (backbone, extraction)",
                    results["extraction"]["process_peak_rss_bytes"],
                )
            )
        if steps:
            name, worst = max(steps, key=lambda s: s[1])
            rows.append(
                [
                    "peak RSS ≤ 4 GB",
                    f"whole book not measured; largest measured step: {name} {fmt_gb(worst)}",
                    verdict(worst <= TARGET_RSS_BYTES) + " (steps only)",
                ]
            )
        else:
            rows.append(["peak RSS ≤ 4 GB", "not measured", "n/a"])
    tr = results.get("training")
    if tr:
        rows.append(
            [
                f"cached path ≥ {TARGET_SPEEDUP:g}× faster than naive (4 optimizers × {tr['full']['epochs']} epochs)",
                f"{tr['speedup']:.0f}× (naive extrapolated; weights identical: {'yes' if tr['same_weights'] else 'NO'})",
                verdict(tr["speedup"] >= TARGET_SPEEDUP and tr["same_weights"]),
            ]
        )
    else:
        rows.append([f"cached path ≥ {TARGET_SPEEDUP:g}× faster than naive", "not measured", "n/a"])
    ex = results.get("extraction")
    rows.append(
        [
            f"end-to-end extraction ≥ {TARGET_EXTRACTION_RATIO:.0%} of bare backbone throughput",
            f"{ex['ratio']:.0%}" if ex else "not measured",
            verdict(ex["ratio"] >= TARGET_EXTRACTION_RATIO) if ex else "n/a",
        ]
    )
    return rows


def render(results: dict) -> str:
    """The markdown report of ``results``."""
    m, cfg = results["machine"], results["config"]
    rows = targets(results)
    lines = [
        bottom_line(results, rows),
        "",
        f"Measured {results['date']} with `python benchmarks/run.py{results['argv']}` "
        f"({'quick sizes' if results['quick'] else 'full sizes'}; backbone weights: {cfg['weights']}, "
        "which does not change any cost).",
        "",
    ]
    lines += table(
        ["machine", ""],
        [
            ["CPU", m["cpu"]],
            ["cores", m["cores"]],
            ["RAM", f"{m['ram_gb']} GB"],
            ["device", m["device"]],
            ["TensorFlow / Keras", f"{m['tensorflow']} / {m['keras']}"],
            ["Python", m["python"]],
        ],
    )
    if results.get("other_cpu_s") is not None:
        share = results["other_cpu_s"] / (results["benchmark_wall_s"] * m["cores"])
        lines += [
            "",
            f"Benchmark wall time {fmt_s(results['benchmark_wall_s'])}; CPU used meanwhile by other processes "
            f"and the system: {results['other_cpu_s']:.0f} core-seconds ({share:.0%} of the machine)"
            + (" — **the machine was not idle; the figures are disturbed**" if share > 0.1 else "")
            + ".",
        ]
    lines += ["", "## Targets", ""]
    lines += table(["target", "measured", "verdict"], rows)

    for section in SECTION_MODULES:
        lines += section.render(results)
        if section is backbone:
            lines += threads.render(results)  # section 1's thread pools (their own module)
    return "\n".join(lines) + "\n"
