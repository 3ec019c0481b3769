"""The prose generated from numbers: verdict counts and summaries, the intro's bottom line, and the
comparative sentences of chapters 6 (leakage) and 7 (seed against optimizer)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kruskal

from mcalc.evaluate import plan
from mcalc.evaluate.judging import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    NOT_TESTABLE,
    OUTCOMES,
    REPRODUCED,
    expected_range,
)
from mcalc.evaluate.power import ALPHA

__all__ = [
    "counts_text",
    "verdict_summary",
    "OUTCOME_BADGES",
    "bottom_line",
    "write_bottom_line",
    "leakage_sentence",
    "leakage_gap_sentence",
    "seed_sentence",
]


def _verdict_counts(table: pd.DataFrame) -> dict[str, int]:
    """Claims of a verdict table per outcome, in :data:`~mcalc.evaluate.judging.OUTCOMES` order (no zeros)."""
    counts = table["verdict"].value_counts()
    return {o: int(counts[o]) for o in OUTCOMES if o in counts}


def counts_text(table: pd.DataFrame) -> str:
    """'3 reproduced, 1 inconclusive': the outcomes of a table's ``verdict`` column, counted."""
    return ", ".join(f"{n} {o}" for o, n in _verdict_counts(table).items()) or "none"


def verdict_summary(table: pd.DataFrame) -> str:
    """One sentence counting the outcomes of a displayed verdict table, data-free and image claims apart."""
    parts = []
    for kind, words in ((plan.DATA_FREE, "data-free"), (plan.IMAGE, "image")):
        sub = table[table["kind"] == kind]
        if len(sub):
            parts.append(f"of the {len(sub)} {words} claims, {counts_text(sub)}")
    return "; ".join(parts) if parts else "no claim was judged"


#: The sphinx-design badge of each outcome in the book's colour-coded tables.
OUTCOME_BADGES = {
    REPRODUCED: "bdg-success",
    NOT_REPRODUCED: "bdg-danger",
    INCONCLUSIVE: "bdg-warning",
    NOT_TESTABLE: "bdg-muted",
}


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def bottom_line(verdicts: pd.DataFrame) -> str:
    """The intro's bottom-line box and colour-coded at-a-glance table (MyST) of the plan's verdicts."""
    free = verdicts[verdicts["kind"] == plan.DATA_FREE]
    image = verdicts[verdicts["kind"] == plan.IMAGE]
    untestable = (image["verdict"] == NOT_TESTABLE).all() and len(image)
    could = (
        f"The {len(free)} data-free claims (counts of the official tables, the printed formulas, "
        "optimizer arithmetic, what the cited sources say) are decided on the official CBIS-DDSM "
        "tables shipped with mcalc. "
        + (
            f"The {len(image)} claims about the network's numbers need the CBIS-DDSM images and the "
            "ImageNet weights; this build does not have them, so they are *not testable here*. "
            if untestable
            else f"The {len(image)} claims about the network's numbers are judged on this build's runs. "
        )
        + "Even on the real images, the official test split (151 patients) can detect only paired "
        f"accuracy differences of about {plan.claim('beats_classical').mdd:.2f} or more: the paper's "
        "claimed advantages (+0.03, +0.05) and its spread across optimizers (0.02) are inconclusive by "
        "design ({ref}`the analysis plan <analysis-plan>`)."
    )
    decided = (
        f"Of the data-free claims, {counts_text(free)}; of the image claims, {counts_text(image)}."
    )
    lines = [
        "```{admonition} Bottom line",
        ":class: tip mcalc-bottom-line",  # the browser check finds the box by this class
        f"**What this study could decide here.** {could}",
        "",
        f"**What it decided.** {decided} The full reasons are in {{ref}}`the verdict table <verdict>`.",
        "```",
        "",
        "| the paper's claim, and where the book shows it | verdict |",
        "|---|---|",
    ]
    for _, row in verdicts.iterrows():
        badge = f"{{{OUTCOME_BADGES[row['verdict']]}}}`{row['verdict']}`"
        way = f" ({_cell(row['which way'])})" if row["which way"] else ""
        lines.append(f"| {_cell(row['claim'])} → {row['shown']} | {badge}{way} |")
    return "\n".join(lines) + "\n"


def write_bottom_line(verdicts: pd.DataFrame, path: str | Path) -> Path:
    """Write :func:`bottom_line` where the intro includes it (the executed notebooks' folder)."""
    from mcalc.records.fsio import write_text

    return write_text(Path(path), bottom_line(verdicts))


def leakage_sentence(repeats: pd.DataFrame) -> str:
    """Chapter 6: which model gains more from a ROI-level split, the 1-NN memoriser or the head, from the repeats."""

    def gain(col: str) -> float:
        roi = repeats.loc[repeats["scheme"] == "roi_level", col].mean()
        grouped = repeats.loc[repeats["scheme"] == "patient_grouped", col].mean()
        return float(roi - grouped)

    memo, head = gain("1-NN accuracy on the features"), gain("accuracy")
    if not (np.isfinite(memo) and np.isfinite(head)):
        return "Both split schemes are needed to say what leakage adds."
    if abs(memo - head) < 0.005:
        verdict = "The two gain about the same"
    elif memo > head:
        verdict = "The memoriser gains more than the frozen head"
    else:
        verdict = "The frozen head gains more than the memoriser"
    return (
        f"{verdict}: a ROI-level split instead of a patient-grouped one changes the 1-NN memoriser's "
        f"mean test accuracy by {memo:+.3f} and the head's by {head:+.3f}."
    )


def leakage_gap_sentence(
    roi_level: float, grouped: float, gap: tuple[float, float, float], n_split_seeds: int
) -> str:
    """Chapter 6's answer: the head's mean test accuracy under a ROI-level and a patient-grouped split of
    the same pooled data, their difference and its interval over the split seeds, in words that follow them."""
    diff, low, high = gap
    if not (np.isfinite(roi_level) and np.isfinite(grouped) and np.isfinite(diff)):
        return "Both split schemes are needed to say what leakage adds."
    if abs(diff) < 0.0005:
        how = "the same mean test accuracy as"
    else:
        how = f"a {'higher' if diff > 0 else 'lower'} mean test accuracy than"
    seeds = f"{n_split_seeds} split seed{'s' if n_split_seeds != 1 else ''} each"
    text = (
        f"On the same pooled data, a ROI-level split gives the head {how} a patient-grouped one: "
        f"{roi_level:.3f} against {grouped:.3f} ({seeds}), a difference of {diff:+.3f}"
    )
    if not (np.isfinite(low) and np.isfinite(high)):
        return text + " (one split seed: no interval over the seeds)."
    if low == high:
        return text + " (the same on every split seed)."
    zero = "excludes" if low > 0 or high < 0 else "includes"
    return text + f" (95% CI over the split seeds {low:+.3f} to {high:+.3f}, which {zero} zero)."


def seed_sentence(runs: pd.DataFrame, metric: str = "accuracy") -> str:
    """Chapter 7: the optimizers' spread against the seed's, like with like, and the Kruskal–Wallis test."""
    by_opt = [g[metric].to_numpy(dtype=float) for _, g in runs.groupby("optimizer")]
    k = len(by_opt)
    if k < 2 or min(len(g) for g in by_opt) < 2:
        return "Two or more seeds of two or more optimizers are needed to set the optimizer against the seed."
    n = min(len(g) for g in by_opt)
    means = [g.mean() for g in by_opt]
    seed_sd = float(np.sqrt(np.mean([np.var(g, ddof=1) for g in by_opt])))
    spread = float(max(means) - min(means))
    expected = seed_sd / math.sqrt(n) * expected_range(k)
    pooled = np.concatenate(by_opt)
    p = float(kruskal(*by_opt).pvalue) if np.ptp(pooled) > 0 else 1.0
    compare = "larger than" if spread > expected else "no larger than"
    test = (
        f"a Kruskal–Wallis test finds an optimizer effect (p = {p:.3f})"
        if p < ALPHA
        else f"a Kruskal–Wallis test finds no optimizer effect (p = {p:.3f}; absence of evidence, "
        "not evidence of absence)"
    )
    agree = (
        "the two agree"
        if (spread > expected) == (p < ALPHA)
        else "the two disagree, so neither settles it"
    )
    return (
        f"The {k} optimizers' mean test {metric} over {n} seeds span {spread:.3f}; from the seed alone, "
        f"the means of {k} identical optimizers would span {expected:.3f} on average (seed SD "
        f"{seed_sd:.3f} ÷ √{n} × {expected_range(k):.2f}). The optimizers' spread is {compare} the "
        f"seed's, and {test}: {agree}."
    )
