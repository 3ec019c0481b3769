"""The verdict on each of the paper's claims, with one of four outcomes, and why.

* **reproduced** — the paper's value lies inside our patient-level 95% CI *and* that CI is at most
  :data:`MAX_CI_WIDTH` wide, narrow enough to tell the paper's value from one half that width away;
* **not reproduced** — the paper's value lies outside our CI;
* **inconclusive** — inside, but the CI is too wide to tell (a wide interval is not a success), or
  the evidence the rule needs is missing;
* **not testable here** — anything computed on the phantom or with a randomly initialised backbone,
  whatever its numbers.

"Beats the classical baselines" needs the paired patient-level bootstrap CI of the accuracy
difference (:func:`mcalc.metrics.compare_evaluations`) to exclude 0 against both the SVM and the
k-NN; "the optimizer matters little" is judged against the spread the random seed alone produces
(chapter 7's sweep), not a fixed threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kruskal

from mcalc import paper
from mcalc.curation import DEFAULT_TASK
from mcalc.errors import DataError
from mcalc.metrics import compare_evaluations
from mcalc.results import Results
from mcalc.tables import ci_cell

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
NOT_TESTABLE = "not testable here"
#: The four outcomes of a verdict.
OUTCOMES = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE)
#: The widest 95% CI that can reproduce a value: wider, the paper's value being inside says little.
MAX_CI_WIDTH = 0.10
#: Significance level of the paired comparisons and of the optimizer test.
ALPHA = 0.05
#: The metric of the "beats the classical baselines" and "optimizer" claims (the paper's own).
CLAIM_METRIC = "accuracy"
#: The Evaluation metric judged for each numeric headline claim (the paper's AUC is Keras' pooled AUC).
CLAIM_METRICS = {
    "accuracy": "accuracy",
    "auc": "auc_pooled",
    "sensitivity_at_spec80": "sensitivity_at_spec80",
}
#: The sweep chapter 7 runs (optimizer × seed) whose spread judges the optimizer claim.
SEED_SWEEP = "seed_variance"


def judge_value(
    paper_value: float, value: float, ci: tuple[float, float], max_width: float = MAX_CI_WIDTH
) -> tuple[str, str]:
    """Outcome of "the paper's value is ours": inside a narrow CI, outside it, or inside a wide one."""
    lo, hi = ci
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return INCONCLUSIVE, f"ours {ci_cell(value)} has no confidence interval"
    width = hi - lo
    ours = f"ours {ci_cell(value, (lo, hi))} vs paper {paper_value:g}"
    if not lo <= paper_value <= hi:
        return NOT_REPRODUCED, f"{ours}: the paper's value is outside our 95% CI"
    if width > max_width:
        return INCONCLUSIVE, (
            f"{ours}: inside our 95% CI, but the CI is {width:.3f} wide (> {max_width:g}), too wide to tell"
        )
    return REPRODUCED, f"{ours}: inside our 95% CI, {width:.3f} wide (≤ {max_width:g})"


def judge_superiority(
    differences: dict[str, pd.Series], max_width: float = MAX_CI_WIDTH
) -> tuple[str, str]:
    """Outcome of "a beats every comparator" from paired differences (a − comparator, with CI).

    Reproduced when every CI lies above 0; not reproduced when a comparator is better (a CI below
    0) or when a CI narrower than ``max_width`` contains 0 (no advantage where one would show);
    otherwise inconclusive.
    """
    parts, outcomes = [], []
    for name, d in differences.items():
        lo, hi = float(d["ci_low"]), float(d["ci_high"])
        parts.append(
            f"vs {name}: {d['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}] (p = {d['p_value']:.3f})"
        )
        if lo > 0:
            outcomes.append(REPRODUCED)
        elif hi < 0 or hi - lo <= max_width:
            outcomes.append(NOT_REPRODUCED)
        else:
            outcomes.append(INCONCLUSIVE)
    if not outcomes:
        return INCONCLUSIVE, "no comparison"
    if all(o == REPRODUCED for o in outcomes):
        outcome = REPRODUCED
    elif NOT_REPRODUCED in outcomes:
        outcome = NOT_REPRODUCED
    else:
        outcome = INCONCLUSIVE
    return outcome, "; ".join(parts)


def judge_optimizer_spread(
    single_runs: dict[str, float], seed_runs: pd.DataFrame | None, metric: str = CLAIM_METRIC
) -> tuple[str, str]:
    """Outcome of "the optimizer matters little", judged against the seed-to-seed spread.

    ``single_runs`` holds chapter 3's one run per optimizer; ``seed_runs`` chapter 7's optimizer ×
    seed runs (columns ``optimizer``, ``seed``, ``metric``). Reproduced when the spread across
    optimizers (of chapter 3's runs) is no larger than the typical spread across seeds of one
    optimizer (the median over optimizers of max − min over seeds) and a Kruskal–Wallis test on the
    seed runs finds no optimizer effect (p ≥ :data:`ALPHA`); not reproduced when both say the
    opposite; inconclusive when they disagree or there are too few seeds.
    """
    if len(single_runs) < 2:
        return INCONCLUSIVE, "needs at least two optimizers' runs"
    spread = max(single_runs.values()) - min(single_runs.values())
    runs = f"{metric} spread across optimizers {spread:.3f} (" + ", ".join(
        f"{k} {v:.3f}" for k, v in single_runs.items()
    )
    if seed_runs is None or seed_runs.empty:
        return INCONCLUSIVE, runs + "); chapter 7's seed runs are not in the results folder"
    by_opt = [g[metric].to_numpy(dtype=float) for _, g in seed_runs.groupby("optimizer")]
    if len(by_opt) < 2 or min(len(g) for g in by_opt) < 2:
        return INCONCLUSIVE, runs + "); chapter 7 needs two or more seeds of two or more optimizers"
    seed_range = float(np.median([np.ptp(g) for g in by_opt]))
    pooled = np.concatenate(by_opt)
    p = float(kruskal(*by_opt).pvalue) if np.ptp(pooled) > 0 else 1.0
    detail = (
        f"{runs}) vs the seed-to-seed range {seed_range:.3f} (median over optimizers, "
        f"{min(len(g) for g in by_opt)}+ seeds each); Kruskal–Wallis across optimizers p = {p:.3f}"
    )
    small, no_effect = spread <= seed_range, p >= ALPHA
    if small and no_effect:
        return REPRODUCED, detail
    if not small and not no_effect:
        return NOT_REPRODUCED, detail
    return INCONCLUSIVE, detail


def _combine(outcomes: list[str]) -> str:
    """One outcome for several judged runs: reproduced only if all are, not reproduced if any is."""
    if outcomes and all(o == REPRODUCED for o in outcomes):
        return REPRODUCED
    if NOT_REPRODUCED in outcomes:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def training_accuracy_verdict(results: Results) -> tuple[str, str]:
    """Table 3's ≈98% training accuracy: each optimizer's training-split accuracy against the paper's."""
    t3 = paper.table3()
    outcomes, parts = [], []
    for opt, run in results.cnn.items():
        if opt not in t3.index:
            continue
        last = float(run.history["accuracy"].iloc[-1])
        ev = run.train
        if ev is None:
            outcomes.append(INCONCLUSIVE)
            parts.append(f"{run.paper_name}: last epoch {last:.3f}, no training-split evaluation")
            continue
        outcome, detail = judge_value(
            float(t3.loc[opt, "training_accuracy"]), ev.accuracy, ev.ci["accuracy"]
        )
        outcomes.append(outcome)
        parts.append(f"{run.paper_name}: {detail} (last epoch during training {last:.3f})")
    if not parts:
        return INCONCLUSIVE, "no network was trained in this build"
    return _combine(outcomes), "; ".join(parts)


def seed_runs(results_dir: str | Path, name: str = SEED_SWEEP) -> pd.DataFrame | None:
    """Chapter 7's optimizer × seed runs, or None when its sweep has not run (yet)."""
    from mcalc.sweep import load_runs

    try:
        return load_runs(results_dir, name, allow_missing=True)
    except DataError:
        return None


def verdict_table(results: Results, seeds: pd.DataFrame | None = None) -> pd.DataFrame:
    """The verdict on each headline claim (four outcomes, see the module doc), with its reason."""
    claims = paper.headline_claims().set_index("claim_id")
    prov = results.provenance
    tasks = {r.config.get("task", DEFAULT_TASK) for r in results.cnn.values()}
    other_task = sorted(t for t in tasks if t != DEFAULT_TASK)
    simulated = prov.is_simulated or bool(other_task)
    why_not = (
        "the book ran on "
        + ("the offline phantom" if prov.data == "phantom" else "real data")
        + (" with a randomly initialised backbone" if prov.weights == "random" else "")
        + (
            f" under the {', '.join(other_task)} task, not the paper's three classes"
            if other_task
            else ""
        )
        + ": its numbers test the pipeline, not the paper's"
    )

    def row(claim: str, outcome: str, detail: str) -> tuple[str, str, str]:
        """A verdict row; on the phantom or with random weights every claim is not testable here."""
        if simulated:
            return claim, NOT_TESTABLE, f"{why_not} (measured: {detail})"
        return claim, outcome, detail

    rows = []
    ada = results.cnn.get("adadelta") or results.best_cnn()
    for claim_id, metric in CLAIM_METRICS.items():
        claim = claims.loc[claim_id]
        if ada is None:
            rows.append((claim["claim"], INCONCLUSIVE, "no network was trained in this build"))
            continue
        outcome, detail = judge_value(
            claim["paper_value"], ada.test.values()[metric], ada.test.ci[metric]
        )
        rows.append(
            row(claim["claim"], outcome, f"{detail} ({ada.paper_name}, test split, {metric})")
        )
    rows.append(
        (
            claims.loc["specificity", "claim"],
            NOT_TESTABLE,
            "0.80 is the fixed operating point of the sensitivity-at-specificity metric, not a "
            "measurement"
            + (
                "; our per-class specificities: "
                + ", ".join(f"{c} {v:.2f}" for c, v in ada.test.specificity.items())
                if ada is not None
                else ""
            ),
        )
    )
    rows.append(
        row("Training accuracy ≈98% after 20 epochs (Table 3)", *training_accuracy_verdict(results))
    )
    best = results.best_cnn()
    comparators = {
        results.baselines[k].label: results.baselines[k].evaluations["test"]
        for k in ("svm", "knn")
        if k in results.baselines
    }
    claim = claims.loc["beats_classical", "claim"]
    if best is None or len(comparators) < 2:
        rows.append((claim, INCONCLUSIVE, "needs the network and both the SVM and k-NN runs"))
    else:
        try:
            diffs = {
                name: compare_evaluations(best.test, ev, metrics=(CLAIM_METRIC,)).iloc[0]
                for name, ev in comparators.items()
            }
        except DataError as exc:
            rows.append((claim, INCONCLUSIVE, f"no paired comparison: {exc}"))
        else:
            outcome, detail = judge_superiority(diffs)
            rows.append(
                row(
                    claim,
                    outcome,
                    f"paired patient-level bootstrap of the test {CLAIM_METRIC} difference, "
                    f"best network ({best.paper_name}) − baseline: {detail}",
                )
            )
    outcome, detail = judge_optimizer_spread(
        {r.paper_name: r.test.values()[CLAIM_METRIC] for r in results.cnn.values()}, seeds
    )
    rows.append(row(claims.loc["optimizer_insensitive", "claim"], outcome, detail))
    return pd.DataFrame(rows, columns=["claim", "verdict", "reason"]).set_index("claim")


def baseline_differences(results: Results) -> pd.DataFrame:
    """Best network − each classical baseline on the test split: paired patient-level differences."""
    best = results.best_cnn()
    frames = []
    for key in ("svm", "knn"):
        run = results.baselines.get(key)
        if best is None or run is None:
            continue
        try:
            d = compare_evaluations(
                best.test, run.evaluations["test"], metrics=("accuracy", "auc_pooled", "auc_macro")
            )
        except DataError:
            continue
        d.insert(0, "comparison", f"{best.paper_name} − {run.label}")
        frames.append(d)
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True).drop(columns=["a", "b"])
    return out.set_index(["comparison", "metric"])
