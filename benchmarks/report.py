"""The markdown report: the run, the machine, the targets, then each section in its published order."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks import backbone, book, data, extraction, threads, training
from benchmarks.config import (
    GB,
    TARGET_BACKBONE_FRACTION,
    TARGET_BOOK_S,
    TARGET_EXTRACTION_RATIO,
    TARGET_RSS_BYTES,
    TARGET_SPEEDUP,
)
from benchmarks.markdown import commands, fmt_gb, fmt_s, table, verdict

#: The sections in their published (numbered) order.
SECTION_MODULES = (backbone, data, extraction, training, book)


@dataclass(frozen=True)
class Target:
    """One row of the targets table, and the parts the bottom line says it with."""

    name: str  # the target as the table states it
    measured: str  # what was measured, in full
    verdict: str  # PASS, MISS or n/a (with a qualifier)
    subject: str = ""  # the bottom line's words for it: "whole book"
    figure: str = ""  # its headline figure: "cold 25.8 min"
    goal: str = ""  # its threshold: "≤ 6 min"
    because: str = ""  # what the bottom line adds to a miss: the book's floor

    @property
    def judged(self) -> bool:
        """Whether the row has a verdict (PASS or MISS, not n/a)."""
        return self.verdict.split()[0] in ("PASS", "MISS")

    def row(self) -> list[str]:
        """The table's cells."""
        return [self.name, self.measured, self.verdict]


def book_target(results: dict, full_book: dict | None) -> Target:
    """The whole-book row: the fully cold wall time (its verdict) and, beside it, the same run with the phantom kept."""
    goal = f"≤ {TARGET_BOOK_S / 60:g} min"
    name = f"whole book, default data (scale 1), cold, {goal} on an idle 2-core machine"
    if not full_book:
        return Target(name, "not measured (run with `--book`)", "n/a")
    ok = full_book["returncode"] == 0
    figure = f"cold {fmt_s(full_book['wall_s'])}" + ("" if ok else " (failed)")
    text = figure
    floor = book.floor_s(results, full_book)
    because = ""
    if floor is not None:
        text += f"; its floor, the backbone's passes at the machine's ceiling: {fmt_s(floor)} (section 5)"
        because = f"where the backbone's passes alone take {fmt_s(floor)} at the machine's ceiling"
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
    ok_time = ok and full_book["wall_s"] <= TARGET_BOOK_S
    return Target(name, text, verdict(ok_time), "whole book", figure, goal, because)


def bottom_line(rows: list[Target]) -> str:
    """One sentence from the targets: how many were met, and each missed one in a few words."""
    judged = [t for t in rows if t.judged]
    if not judged:
        return "**Bottom line:** no target was measured in this run."
    missed = [t for t in judged if t.verdict.startswith("MISS")]
    text = f"**Bottom line:** {len(judged) - len(missed)} of {len(judged)} targets met"
    if not missed:
        return text + "."

    def said(t: Target) -> str:
        """A missed target in a few words: its subject, the figure, the threshold (and why, where known)."""
        words = f"{t.subject}: {t.figure} against {t.goal}"
        return words + (f", {t.because}" if t.because else "")

    return text + ". Missed: " + "; ".join(said(t) for t in missed) + "."


def targets(results: dict) -> list[Target]:
    """The targets table's rows: target, measured, verdict (and the bottom line's parts)."""
    book_rows = (results.get("book") or {}).get("rows", [])
    full_book = next((r for r in book_rows if r["scale"] == 1.0), None)
    rows = [book_target(results, full_book)]
    rss_goal = f"≤ {TARGET_RSS_BYTES / GB:g} GB"
    if full_book:
        peak = fmt_gb(full_book["peak_tree_rss_bytes"])
        rows.append(
            Target(
                f"peak RSS of the book {rss_goal}",
                peak + " (process tree)",
                verdict(full_book["peak_tree_rss_bytes"] <= TARGET_RSS_BYTES),
                "peak RSS of the book",
                peak,
                rss_goal,
            )
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
                Target(
                    f"peak RSS {rss_goal}",
                    f"whole book not measured; largest measured step: {name} {fmt_gb(worst)}",
                    verdict(worst <= TARGET_RSS_BYTES) + " (steps only)",
                    f"peak RSS of {name}",
                    fmt_gb(worst),
                    rss_goal,
                )
            )
        else:
            rows.append(Target(f"peak RSS {rss_goal}", "not measured", "n/a"))
    tr = results.get("training")
    speed_goal = f"≥ {TARGET_SPEEDUP:g}×"
    if tr:
        figure = f"{tr['speedup']:.0f}×"
        same = "yes" if tr["same_weights"] else "NO"
        rows.append(
            Target(
                f"cached path {speed_goal} faster than naive (4 optimizers × {tr['full']['epochs']} epochs)",
                f"{figure} (naive extrapolated; weights identical: {same})",
                verdict(tr["speedup"] >= TARGET_SPEEDUP and tr["same_weights"]),
                "cached path",
                figure if tr["same_weights"] else f"{figure} with different weights",
                speed_goal,
            )
        )
    else:
        rows.append(Target(f"cached path {speed_goal} faster than naive", "not measured", "n/a"))
    ex = results.get("extraction")
    ratio_goal = f"≥ {TARGET_EXTRACTION_RATIO:.0%}"
    name = f"end-to-end extraction {ratio_goal} of bare backbone throughput"
    if ex:
        figure = f"{ex['ratio']:.0%}"
        rows.append(
            Target(
                name,
                figure,
                verdict(ex["ratio"] >= TARGET_EXTRACTION_RATIO),
                "end-to-end extraction",
                figure,
                ratio_goal,
            )
        )
    else:
        rows.append(Target(name, "not measured", "n/a"))
    rows.append(backbone_target(results))
    return rows


def backbone_target(results: dict) -> Target:
    """The backbone's row: the book's variant as a share of the float32 ceiling, judged on the
    interleaved rounds of section 1 (each taken seconds from its ceiling), with their range."""
    goal = f"≥ {TARGET_BACKBONE_FRACTION:.0%}"
    name = (
        f"backbone (the book's variant, float32) {goal} of the machine's dense-convolution ceiling"
    )
    bb = results.get("backbone") or {}
    run = f"{bb.get('variant')}@{(results.get('config') or {}).get('batch_size')}"
    rounds = {}
    if bb.get("variants") and run in bb["variants"]["runs"]:
        rounds = next(
            s
            for s in backbone.summarize_variants(
                bb["variants"], bb["flops_per_image"], results["config"]
            )
            if s["run"] == run
        )
    if not rounds:
        return Target(name, "not measured (section 1's rounds)", "n/a")
    lo, hi = rounds["fraction_range"]
    figure = f"{rounds['fraction_of_ceiling']:.0%}"
    measured = (
        f"{figure} (median of {len(bb['variants']['rounds'])} rounds; range {lo:.0%}–{hi:.0%})"
    )
    if bb.get("fraction_of_ceiling"):
        measured += f"; {bb['fraction_of_ceiling']:.0%} in the single measurement of section 1"
    ok = rounds["fraction_of_ceiling"] >= TARGET_BACKBONE_FRACTION
    return Target(name, measured, verdict(ok), "backbone", figure, goal)


def render(results: dict) -> str:
    """The markdown report of ``results``."""
    m, cfg = results["machine"], results["config"]
    rows = targets(results)
    lines = [
        bottom_line(rows),
        "",
        f"Measured {results['date']} with {commands(results['argv'])} "
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
    lines += table(["target", "measured", "verdict"], [t.row() for t in rows])

    for section in SECTION_MODULES:
        lines += section.render(results)
        if section is backbone:
            lines += threads.render(results)  # section 1's thread pools (their own module)
    return "\n".join(lines) + "\n"
