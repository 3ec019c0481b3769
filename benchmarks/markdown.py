"""Formatting of the report: durations, sizes, verdicts and markdown tables."""

from __future__ import annotations

from benchmarks.config import GB


def fmt_s(seconds: float) -> str:
    """Seconds as '12.3 s', '4.5 min' or '1.2 h'."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def fmt_gb(n: float) -> str:
    """Bytes as GB."""
    return f"{n / GB:.2f} GB"


def verdict(ok: bool | None) -> str:
    """PASS / MISS / n/a."""
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown table lines."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(str(c) for c in r) + " |" for r in rows),
    ]


#: How a merged run's command lines are joined in its ``argv`` (:func:`benchmarks.run.merge_results`).
MERGE_SEPARATOR = "`, then (`--merge`) `python benchmarks/run.py"


def commands(argv: str) -> str:
    """The run's command line(s), as markdown: merged runs in order, a repeated one said once with its count."""
    runs: list[list] = []
    for part in argv.split(MERGE_SEPARATOR):
        if runs and runs[-1][0] == part:
            runs[-1][1] += 1
        else:
            runs.append([part, 1])
    said = [
        f"`python benchmarks/run.py{part}`" + (f" ({n} runs)" if n > 1 else "") for part, n in runs
    ]
    return ", then (`--merge`) ".join(said)
