"""The verdict on each claim of the analysis plan (:mod:`mcalc.evaluate.plan`), with one of four outcomes, and why.

* **reproduced** — the evidence meets the plan's test (for a value: our 90% CI inside the paper's
  value ± δ, or beyond it in the direction the plan counts as better);
* **not reproduced** — the evidence excludes the claim (for a value: our 90% CI entirely below
  paper − δ, say, with the direction said);
* **inconclusive** — neither, saying which way it could still go; or the evidence the rule needs is
  missing (absence of evidence is not refutation);
* **not testable here** — an image claim judged on the phantom, a random backbone or another task,
  whatever its numbers; or a source this build cannot read.

The rules, one function each: :func:`judge_equivalence` (value claims, two one-sided tests),
:func:`judge_superiority` (an advantage of a claimed size, against each comparator),
:func:`judge_optimizer` (level and spread, like with like), :func:`judge_all_of` (a claim of several
numbers: intersection–union), :func:`judge_counts`, :func:`judge_formula`, :func:`judge_step_ratio`
and :func:`judge_attribution` (the data-free claims). :func:`verdict_table` applies the plan to a
:class:`~mcalc.evaluate.runs.Results`; :func:`plan_verdicts` is the same table keyed by claim id (what
``mcalc compare`` diffs between two runs).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import integrate
from scipy.stats import kruskal, norm

from mcalc import paper
from mcalc.errors import DataError
from mcalc.evaluate import plan
from mcalc.evaluate.metrics import Evaluation, compare_evaluations
from mcalc.evaluate.runs import OptimizerRun, Results
from mcalc.records.results import SENSITIVITY_DIR
from mcalc.study import DEFAULT_TASK

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
NOT_TESTABLE = "not testable here"
#: The four outcomes of a verdict.
OUTCOMES = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE)
ALPHA = plan.ALPHA
#: The confidence of the intervals of an equivalence test at α (two one-sided tests).
TOST_CONFIDENCE = 1 - 2 * ALPHA
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
#: Where the sensitivity analyses' runs are saved, under the results folder.


@dataclass(frozen=True)
class Judgement:
    """An outcome, which way (lower, higher, could be lower, …; empty when none), and why."""

    outcome: str
    qualifier: str
    detail: str

    @property
    def label(self) -> str:
        """'not reproduced (lower)', or the outcome alone."""
        return f"{self.outcome} ({self.qualifier})" if self.qualifier else self.outcome


# ------------------------------------------------------------------------------------------ rules


def judge_equivalence(
    paper_value: float | tuple[float, float],
    value: float,
    ci: tuple[float, float],
    delta: float,
    better: str = plan.HIGHER,
) -> Judgement:
    """Two one-sided tests: ``ci`` (a 90% CI) against the paper's value (or range) ± ``delta``.

    Inside the band: reproduced. Entirely below: not reproduced (lower). Entirely above: reproduced
    (higher) when the plan counts higher as better, else not reproduced (higher). Overlapping an
    edge: inconclusive, saying which way it could go — except that a CI reaching only above the band
    when higher is better is reproduced (at least as good as the paper's within δ).
    """
    lo, hi = ci
    p_lo, p_hi = (paper_value, paper_value) if np.isscalar(paper_value) else paper_value
    paper_text = f"{p_lo:g}" if p_lo == p_hi else f"{p_lo:g}–{p_hi:g}"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return Judgement(
            INCONCLUSIVE, "no interval", f"ours {value:.3f} has no confidence interval"
        )
    band = (p_lo - delta, p_hi + delta)
    ours = (
        f"ours {value:.3f}, 90% CI [{lo:.3f}, {hi:.3f}], against the paper's {paper_text} ± {delta:g} "
        f"= [{band[0]:.3f}, {band[1]:.3f}]"
    )
    higher_better = better == plan.HIGHER
    if lo >= band[0] and hi <= band[1]:
        return Judgement(REPRODUCED, f"within ±{delta:g}", f"{ours}: inside")
    if hi < band[0]:
        return Judgement(NOT_REPRODUCED, "lower", f"{ours}: entirely below")
    if lo > band[1]:
        outcome = REPRODUCED if higher_better else NOT_REPRODUCED
        return Judgement(outcome, "higher", f"{ours}: entirely above (better than the paper's)")
    if lo >= band[0]:
        if higher_better:
            return Judgement(
                REPRODUCED,
                "at least as good",
                f"{ours}: not below the band, and may be above it (better)",
            )
        return Judgement(INCONCLUSIVE, "could be higher", f"{ours}: reaches above the band")
    if hi <= band[1]:
        return Judgement(
            INCONCLUSIVE, "could be lower", f"{ours}: reaches below the band (could be worse)"
        )
    return Judgement(
        INCONCLUSIVE, "could be lower or higher", f"{ours}: wider than the band on both sides"
    )


def judge_all_of(parts: dict[str, Judgement | None]) -> Judgement:
    """A claim of several numbers, each of which must hold (intersection–union: no correction).

    Any part not reproduced refutes the claim; otherwise a missing part (None) or an inconclusive
    one leaves it inconclusive; all reproduced reproduce it.
    """
    texts = [
        f"{name}: {'missing' if j is None else j.label + ' — ' + j.detail}"
        for name, j in parts.items()
    ]
    detail = "; ".join(texts) if texts else "nothing to judge"
    found = [j for j in parts.values() if j is not None]
    failed = [name for name, j in parts.items() if j is not None and j.outcome == NOT_REPRODUCED]
    missing = [name for name, j in parts.items() if j is None]
    if failed:
        return Judgement(NOT_REPRODUCED, f"{', '.join(failed)}", detail)
    if missing:
        return Judgement(INCONCLUSIVE, f"{', '.join(missing)} missing", detail)
    if found and all(j.outcome == REPRODUCED for j in found):
        return Judgement(REPRODUCED, "", detail)
    if found and all(j.outcome == NOT_TESTABLE for j in found):
        return Judgement(NOT_TESTABLE, "", detail)
    open_ = [name for name, j in parts.items() if j is not None and j.outcome != REPRODUCED]
    return Judgement(INCONCLUSIVE, f"{', '.join(open_)} open", detail)


def judge_superiority(
    differences: dict[str, pd.Series], claimed: dict[str, float] | None = None
) -> Judgement:
    """ "a beats every comparator by the claimed difference", from paired differences (a − comparator, 95% CI).

    Per comparator: the CI below 0 → not reproduced (the comparator better); below the claimed size
    → not reproduced (smaller than claimed); above 0 (holding the claimed size, or above it) →
    reproduced; holding both 0 and the claimed size → inconclusive. All comparators must hold.
    """
    claimed = claimed or {}
    parts = {}
    for name, d in differences.items():
        lo, hi = float(d["ci_low"]), float(d["ci_high"])
        c = float(claimed.get(name, 0.0))
        text = f"{d['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}] (p = {d['p_value']:.3f}), claimed {c:+.2f}"
        if not (np.isfinite(lo) and np.isfinite(hi)):
            parts[name] = Judgement(INCONCLUSIVE, "no interval", text)
        elif hi < 0:
            parts[name] = Judgement(NOT_REPRODUCED, "baseline better", text)
        elif hi < c:
            parts[name] = Judgement(
                NOT_REPRODUCED,
                "smaller than claimed",
                text
                + (
                    ": a positive difference is supported, the claimed size is excluded"
                    if lo > 0
                    else ": the claimed size is excluded"
                ),
            )
        elif lo > 0:
            size = "larger than claimed" if lo > c else "the claimed size inside"
            parts[name] = Judgement(REPRODUCED, size, text)
        else:
            parts[name] = Judgement(
                INCONCLUSIVE, "holds 0 and the claim", text + ": both 0 and the claim inside"
            )
    if not parts:
        return Judgement(INCONCLUSIVE, "no comparison", "no comparison")
    return judge_all_of({f"vs {k}": v for k, v in parts.items()})


def expected_range(k: int) -> float:
    """Expected range of ``k`` independent standard normal draws (d2 of quality control: 2.059 for k = 4)."""
    if k < 2:
        return 0.0

    def f(x: float) -> float:
        c = norm.cdf(x)
        return 1 - c**k - (1 - c) ** k

    return float(integrate.quad(f, -np.inf, np.inf)[0])


def judge_spread(
    single_runs: dict[str, float], seed_runs: pd.DataFrame | None, metric: str = CLAIM_METRIC
) -> Judgement:
    """Is the range of the single runs (one per optimizer) larger than the seed alone gives? Like with like.

    The range of k single runs is set against the range k single runs of *one* optimizer would
    show from the seed alone: the seed SD (pooled within optimizers, chapter 7) times the expected
    range of k normal draws. Reproduced when it is no larger and a Kruskal–Wallis test on the seed
    runs finds no optimizer effect (p ≥ α); not reproduced when both say the opposite.
    """
    k = len(single_runs)
    if k < 2:
        return Judgement(INCONCLUSIVE, "too few runs", "needs at least two optimizers' runs")
    spread = max(single_runs.values()) - min(single_runs.values())
    runs = f"range of the {k} single runs {spread:.3f} (" + ", ".join(
        f"{n} {v:.3f}" for n, v in single_runs.items()
    )
    if seed_runs is None or seed_runs.empty:
        return Judgement(
            INCONCLUSIVE, "no seed runs", runs + "); chapter 7's seed runs are not in the results"
        )
    by_opt = [g[metric].to_numpy(dtype=float) for _, g in seed_runs.groupby("optimizer")]
    if len(by_opt) < 2 or min(len(g) for g in by_opt) < 2:
        return Judgement(
            INCONCLUSIVE,
            "too few seeds",
            runs + "); chapter 7 needs two or more seeds of two or more optimizers",
        )
    seed_sd = float(np.sqrt(np.mean([np.var(g, ddof=1) for g in by_opt])))
    noise_range = seed_sd * expected_range(k)
    pooled = np.concatenate(by_opt)
    p = float(kruskal(*by_opt).pvalue) if np.ptp(pooled) > 0 else 1.0
    detail = (
        f"{runs}) against {noise_range:.3f}, the range {k} single runs of one optimizer show from "
        f"the seed alone (seed SD {seed_sd:.3f} × {expected_range(k):.3f}); Kruskal–Wallis across "
        f"optimizers on the seed runs p = {p:.3f}"
    )
    small, no_effect = spread <= noise_range, p >= ALPHA
    if small and no_effect:
        return Judgement(REPRODUCED, "", detail)
    if not small and not no_effect:
        return Judgement(NOT_REPRODUCED, "optimizers differ", detail)
    return Judgement(INCONCLUSIVE, "range and test disagree", detail)


def judge_optimizer(
    levels: dict[str, tuple[float, tuple[float, float]]],
    seed_runs: pd.DataFrame | None,
    paper_range: tuple[float, float] = (0.92, 0.94),
    delta: float = plan.VALUE_MARGIN,
) -> Judgement:
    """ "Performs efficiently irrespective of the optimizer": the level of each AND the spread.

    ``levels`` maps each optimizer to (accuracy, 90% CI): each must lie in the paper's range ± δ
    (:func:`judge_equivalence`, all four by :func:`judge_all_of`); the spread is :func:`judge_spread`.
    Four optimizers failing equally are not a reproduction.
    """
    level = judge_all_of(
        {n: judge_equivalence(paper_range, v, ci, delta) for n, (v, ci) in levels.items()}
    )
    spread = judge_spread({n: v for n, (v, _) in levels.items()}, seed_runs)
    parts = {"level": level, "spread": spread}
    combined = judge_all_of(parts)
    qualifier = ""
    if level.outcome == NOT_REPRODUCED:
        qualifier = "level " + (level.qualifier and "not met by " + level.qualifier)
    elif spread.outcome == NOT_REPRODUCED:
        qualifier = "the optimizers differ"
    elif combined.outcome == INCONCLUSIVE:
        qualifier = combined.qualifier
    return Judgement(combined.outcome, qualifier, combined.detail)


def judge_counts(ours: dict[str, int], printed: dict[str, int], tolerance: int = 1) -> Judgement:
    """Counts per class against the printed ones: every class within ``tolerance``."""
    diffs = {k: int(ours[k]) - int(printed[k]) for k in printed}
    detail = "; ".join(
        f"{k}: official {ours[k]}, paper {printed[k]} ({d:+d})" for k, d in diffs.items()
    )
    off = [k for k, d in diffs.items() if abs(d) > tolerance]
    if off:
        return Judgement(NOT_REPRODUCED, f"{len(off)} of {len(diffs)} classes differ", detail)
    return Judgement(REPRODUCED, f"within {tolerance} ROI", detail)


def judge_formula(printed: pd.Series, correct: pd.Series, name: str) -> Judgement:
    """A printed formula against the definition, class by class on one confusion matrix."""
    diff = (printed - correct).abs()
    detail = "; ".join(
        f"{c}: printed {p:.3f}, correct {q:.3f}" for c, p, q in zip(printed.index, printed, correct)
    )
    if (diff > 1e-12).any():
        return Judgement(NOT_REPRODUCED, "wrong as printed", f"{name} — {detail}")
    return Judgement(REPRODUCED, "", f"{name} — {detail}")


def weight_travel(optimizer: str, steps: int, lr: float, grad: float = 1.0) -> float:
    """How far one weight moves in ``steps`` under a constant gradient, by Keras' update rule and the paper's settings."""
    if optimizer == "adam":  # β1 0.9, β2 0.999, ε 1e-7: bias-corrected steps of about lr each
        b1, b2, eps = 0.9, 0.999, 1e-7
        m = v = x = 0.0
        for t in range(1, steps + 1):
            m, v = b1 * m + (1 - b1) * grad, b2 * v + (1 - b2) * grad**2
            x += lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
        return x
    if optimizer == "adadelta":  # ρ 0.95, ε 1e-7
        rho, eps = 0.95, 1e-7
        acc_g = acc_d = x = 0.0
        for _ in range(steps):
            acc_g = rho * acc_g + (1 - rho) * grad**2
            d = math.sqrt(acc_d + eps) / math.sqrt(acc_g + eps) * grad
            acc_d = rho * acc_d + (1 - rho) * d**2
            x += lr * d
        return x
    raise ValueError(f"weight_travel knows adam and adadelta, not {optimizer!r}")


def judge_step_ratio(ratio: float, margin: float = plan.STEP_RATIO_MARGIN) -> Judgement:
    """ADADelta's weight travel ÷ Adam's against a factor ``margin``: below 1/margin, it cannot train alike."""
    detail = f"ADADelta moves a weight {ratio:.1e} times as far as Adam (1/{1 / ratio:,.0f})"
    if ratio < 1 / margin:
        return Judgement(NOT_REPRODUCED, "lower", f"{detail}: more than {margin:g} times less far")
    return Judgement(REPRODUCED, "", f"{detail}: within a factor of {margin:g}")


def _number_in(text: str, value: float) -> bool:
    """Whether ``value`` appears in ``text`` as a fraction (0.95) or a percentage (95, 95%)."""
    forms = {f"{value:g}", f"{value:.2f}", f"{value * 100:g}"}
    return any(re.search(rf"(?<![\d.]){re.escape(f)}(?![\d])", text) for f in forms)


def judge_attribution(source: paper.Source) -> Judgement:
    """The numbers Table 5 attributes to a study, against the source's words read here."""
    numbers = {"accuracy": source.accuracy, "AUC": source.auc, "sensitivity": source.sensitivity}
    if not source.quote:
        return Judgement(
            NOT_TESTABLE,
            "source not read",
            f"the source's text could not be read here ({source.where})",
        )
    parts = {}
    for name, v in numbers.items():
        if v is None:
            continue
        if _number_in(source.quote, v):
            parts[name] = Judgement(REPRODUCED, "", f"{v:g} is in the source's words")
        else:
            parts[name] = Judgement(
                INCONCLUSIVE,
                "not in the text read",
                f"{v:g} is not in {source.where} (the full text was not read)",
            )
    j = judge_all_of(parts)
    return Judgement(j.outcome, j.qualifier, j.detail)


# ------------------------------------------------------------------------------------------ evidence


def interval(
    ev: Evaluation, metric: str, confidence: float = TOST_CONFIDENCE
) -> tuple[float, float]:
    """The patient-level CI of one metric at ``confidence``: re-bootstrapped from the kept predictions,
    else read off the evaluation's 95% CI by the normal approximation."""
    if ev.predictions:
        from mcalc.evaluate.metrics import evaluate

        p = ev.predictions
        again = evaluate(
            np.asarray(p["label"], dtype=int),
            np.asarray(p["proba"], dtype=float),
            classes=ev.classes,
            n_boot=max(ev.n_boot, 200),
            seed=ev.seed,
            confidence=confidence,
            groups=np.asarray(p["patient_id"]),
            lesions=np.asarray(p["lesion_id"]),
        )
        return tuple(float(v) for v in again.ci[metric])
    lo, hi = ev.ci.get(metric, (math.nan, math.nan))
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    scale = norm.ppf(1 - (1 - confidence) / 2) / norm.ppf(1 - (1 - ev.confidence) / 2)
    return mid - half * scale, mid + half * scale


def seed_runs(results_dir: str | Path, name: str = SEED_SWEEP) -> pd.DataFrame | None:
    """Chapter 7's optimizer × seed runs (test accuracy, and Table 3's last-epoch training accuracy), or None."""
    from mcalc.records.sweeps import load_sweep

    try:
        done, _ = load_sweep(results_dir, name)
    except DataError:
        return None
    rows = []
    for record in done:
        axes, run = record["axes"], record["run"]
        history = run.get("history", {})
        rows.append(
            {
                "optimizer": paper.PAPER_OPTIMIZER_NAMES.get(
                    axes.get("optimizer"), axes.get("optimizer")
                ),
                "seed": axes.get("seed"),
                "accuracy": run["test"]["accuracy"],
                "training_accuracy": (history.get("accuracy") or [math.nan])[-1],
            }
        )
    return pd.DataFrame(rows) if rows else None


def sensitivity_runs(results_dir: str | Path) -> dict[str, OptimizerRun]:
    """The plan's sensitivity-analysis runs found under the results folder, by analysis key."""
    out = {}
    for key, _, _ in plan.SENSITIVITY_ANALYSES:
        path = Path(results_dir) / SENSITIVITY_DIR / f"cnn_{key}.json"
        if path.is_file():
            import json

            out[key] = OptimizerRun.from_dict(json.loads(path.read_text()), path)
    return out


def not_testable_reason(results: Results) -> str | None:
    """Why this build's images cannot test the paper (phantom, random backbone, other task), or None."""
    prov = results.provenance
    tasks = {r.config.get("task", DEFAULT_TASK) for r in results.cnn.values()}
    other_task = sorted(t for t in tasks if t != DEFAULT_TASK)
    if not (prov.is_simulated or other_task):
        return None
    return (
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


# ------------------------------------------------------------------------------------------ claims


def data_free_judgements() -> dict[str, Judgement]:
    """The data-free claims of the plan, decided on the shipped official tables and arithmetic."""
    from mcalc.evaluate.metadata import _counts, assessment_rule, read_real_tables
    from mcalc.evaluate.metrics import confusion, paper_formula_errata

    rows = read_real_tables()
    counts = _counts(rows)
    printed = paper.table1()
    out = {
        "table1_train": judge_counts(counts["train"].to_dict(), printed["Training"].to_dict()),
        "table1_test": judge_counts(counts["test"].to_dict(), printed["Testing"].to_dict()),
    }
    train, test = rows[rows["split"] == "train"], rows[rows["split"] == "test"]
    pred = assessment_rule(train, test).argmax(axis=1)
    errata = paper_formula_errata(confusion(test["label"].to_numpy(dtype=int), pred))
    per_class = errata[errata["class"] != "all"].set_index("class")
    out["eq4"] = judge_formula(
        per_class["specificity_eq4_paper"],
        per_class["specificity_correct"],
        "specificity on the assessment rule's real test confusion matrix",
    )
    out["eq5"] = judge_formula(
        per_class["accuracy_eq5_paper"],
        per_class["accuracy_correct"],
        "one-vs-rest accuracy on the assessment rule's real test confusion matrix",
    )
    steps = paper.EPOCHS * 43
    lr = paper.LEARNING_RATE
    ratio = weight_travel("adadelta", steps, lr) / weight_travel("adam", steps, lr)
    out["adadelta_step"] = judge_step_ratio(ratio)
    for s in paper.TABLE5_SOURCES:
        out[f"table5_{s.key}"] = judge_attribution(s)
    return out


def _value_judgement(
    ev: Evaluation, claim_id: str, metric: str, cache: dict
) -> tuple[Judgement, float]:
    """A value claim of the plan on one evaluation (its 90% CI computed once per evaluation and metric)."""
    c = plan.claim(claim_id) if claim_id in {x.claim_id for x in plan.claims()} else None
    paper_value = float(c.paper_value) if c is not None else float("nan")
    key = (id(ev), metric)
    if key not in cache:
        cache[key] = interval(ev, metric)
    value = ev.values()[metric]
    return judge_equivalence(paper_value, value, cache[key], plan.VALUE_MARGIN), value


def training_judgement(results: Results, seeds: pd.DataFrame | None) -> Judgement:
    """Table 3's ≈98%: Keras' last-epoch running accuracy per optimizer, its seed range when known."""
    t3 = paper.table3()
    parts: dict[str, Judgement | None] = {}
    for opt in paper.OPTIMIZERS:
        name = paper.PAPER_OPTIMIZER_NAMES[opt]
        run = results.cnn.get(opt)
        values = []
        if seeds is not None and "training_accuracy" in seeds:
            values = seeds.loc[seeds["optimizer"] == name, "training_accuracy"].dropna().tolist()
        if run is not None:
            values.append(float(run.history["accuracy"].iloc[-1]))
        if not values:
            parts[name] = None
            continue
        lo, hi = min(values), max(values)
        j = judge_equivalence(
            float(t3.loc[opt, "training_accuracy"]),
            float(np.mean(values)),
            (lo, hi),
            plan.TRAINING_MARGIN,
        )
        what = f"{len(values)} run(s), range [{lo:.3f}, {hi:.3f}]"
        parts[name] = Judgement(j.outcome, j.qualifier, j.detail.replace("90% CI", what))
    return judge_all_of(parts)


def image_judgements(
    results: Results, seeds: pd.DataFrame | None, cache: dict | None = None
) -> dict[str, Judgement]:
    """The image claims of the plan on this build's runs (meaningful only on real images and weights)."""
    cache = {} if cache is None else cache
    out: dict[str, Judgement] = {}
    ada = results.cnn.get("adadelta")
    for claim_id, metric in CLAIM_METRICS.items():
        if ada is None:
            out[claim_id] = Judgement(
                INCONCLUSIVE, "no run", "ADADelta was not trained in this build"
            )
        else:
            j, _ = _value_judgement(ada.test, claim_id, metric, cache)
            out[claim_id] = Judgement(
                j.outcome, j.qualifier, f"{j.detail} (ADADelta, test split, {metric})"
            )
    out["training_accuracy"] = training_judgement(results, seeds)
    best = results.best_cnn()
    comparators = {
        k: (results.baselines[k].label, results.baselines[k].evaluations["test"])
        for k in ("svm", "knn")
        if k in results.baselines and "test" in results.baselines[k].evaluations
    }
    if best is None or len(comparators) < 2:
        out["beats_classical"] = Judgement(
            INCONCLUSIVE, "runs missing", "needs the network and both the SVM and k-NN runs"
        )
    else:
        t4 = paper.table4()
        claimed = {
            label: float(t4["accuracy"].max() - t4.loc[k, "accuracy"])
            for k, (label, _) in comparators.items()
        }
        try:
            diffs = {
                label: compare_evaluations(best.test, ev, metrics=(CLAIM_METRIC,)).iloc[0]
                for label, ev in comparators.values()
            }
        except DataError as exc:
            out["beats_classical"] = Judgement(INCONCLUSIVE, "no paired comparison", str(exc))
        else:
            j = judge_superiority(diffs, claimed)
            out["beats_classical"] = Judgement(
                j.outcome,
                j.qualifier,
                f"paired patient-level bootstrap of the test {CLAIM_METRIC} difference, best network "
                f"({best.paper_name}, chosen on validation) − baseline: {j.detail}",
            )
    levels = {}
    for r in results.cnn.values():
        key = (id(r.test), CLAIM_METRIC)
        if key not in cache:
            cache[key] = interval(r.test, CLAIM_METRIC)
        levels[r.paper_name] = (r.test.accuracy, cache[key])
    out["optimizer_insensitive"] = (
        judge_optimizer(levels, seeds)
        if levels
        else Judgement(INCONCLUSIVE, "no run", "no network was trained in this build")
    )
    return out


def plan_verdicts(results: Results, seeds: pd.DataFrame | None = None) -> pd.DataFrame:
    """The plan's verdict on every claim, keyed by claim id: kind, verdict, which way, label, reason, plan hash.

    The stable, machine-readable form of :func:`verdict_table` (what ``mcalc compare`` diffs).
    """
    decided = data_free_judgements()
    why_not = not_testable_reason(results)
    image = {} if why_not else image_judgements(results, seeds)
    h = plan.plan_hash()
    rows = []
    for c in plan.claims():
        if c.kind == plan.DATA_FREE:
            j = decided.get(c.claim_id)
            if j is None:
                continue
        elif why_not:
            j = Judgement(NOT_TESTABLE, "", why_not)
        else:
            j = image[c.claim_id]
        rows.append(
            {
                "claim_id": c.claim_id,
                "claim": f"{c.words} ({c.where})",
                "kind": c.kind,
                "verdict": j.outcome,
                "which way": j.qualifier,
                "label": j.label,
                "reason": j.detail,
                "shown": c.shown,
                "plan": h,
            }
        )
    return pd.DataFrame(rows).set_index("claim_id")


def verdict_table(results: Results, seeds: pd.DataFrame | None = None) -> pd.DataFrame:
    """The verdict on each claim of the plan, as chapter 5 shows it: claim, verdict (with which way), reason."""
    v = plan_verdicts(results, seeds)
    return v.set_index("claim")[["kind", "verdict", "which way", "reason"]]


def plan_of_runs(results: Results) -> set[str]:
    """The plan hashes the run records carry ('unrecorded' for records older than the plan)."""
    runs = [*results.cnn.values(), *results.baselines.values()]
    return {getattr(r, "analysis_plan", None) or "unrecorded" for r in runs}


def sensitivity_table(
    results: Results, runs: dict[str, OptimizerRun], seeds: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The pre-stated sensitivity analyses: the three value claims under each, beside (never instead of) the primary verdict."""
    why_not = not_testable_reason(results)
    best = results.best_cnn()
    cache: dict = {}
    rows = []
    for key, _, title in plan.SENSITIVITY_ANALYSES:
        run = best if key == "best_on_validation" else runs.get(key)
        for claim_id, metric in CLAIM_METRICS.items():
            c = plan.claim(claim_id)
            if run is None:
                j = Judgement(INCONCLUSIVE, "not run", "this analysis's run is not in the results")
                value = "—"
            else:
                value = f"{run.test.values()[metric]:.3f}"
                if why_not:
                    j = Judgement(NOT_TESTABLE, "", why_not)
                else:
                    j, _ = _value_judgement(run.test, claim_id, metric, cache)
            name = (
                title
                if run is None or key != "best_on_validation"
                else f"{title} ({run.paper_name})"
            )
            rows.append(
                {
                    "analysis": name,
                    "claim": c.words.split(" (")[0],
                    "ours": value,
                    "paper": c.paper_value,
                    "verdict": j.outcome,
                    "which way": j.qualifier,
                    "reason": j.detail,
                }
            )
    return pd.DataFrame(rows).set_index(["analysis", "claim"])


def verdict_counts(table: pd.DataFrame) -> dict[str, int]:
    """How many claims of a verdict table got each outcome, in :data:`OUTCOMES` order (zeros left out)."""
    counts = table["verdict"].value_counts()
    return {o: int(counts[o]) for o in OUTCOMES if o in counts}


def counts_text(table: pd.DataFrame) -> str:
    """'3 reproduced, 1 inconclusive': the outcomes of a table's ``verdict`` column, counted."""
    return ", ".join(f"{n} {o}" for o, n in verdict_counts(table).items()) or "none"


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
    """The intro's bottom-line box and colour-coded at-a-glance table (MyST), from :func:`plan_verdicts`."""
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


# ------------------------------------------------------------------------------------------ prose


def chance_levels(results: Results) -> pd.DataFrame:
    """No-skill values beside ours and the paper's: a constant predictor of the training class mix on the test split."""
    from mcalc.evaluate.metadata import read_real_tables
    from mcalc.evaluate.metrics import auc_macro, auc_pooled

    rows = read_real_tables()
    y_train = rows.loc[rows["split"] == "train", "label"].to_numpy(dtype=int)
    y_test = rows.loc[rows["split"] == "test", "label"].to_numpy(dtype=int)
    k = int(max(y_train.max(), y_test.max())) + 1
    prior = np.bincount(y_train, minlength=k) / len(y_train)
    constant = np.tile(prior, (len(y_test), 1))
    # a constant score ties every pair: the pooled AUC still rewards the class mix (the prior's ranking)
    chance = {
        "accuracy": float((y_test == prior.argmax()).mean()),
        "auc_pooled": auc_pooled(y_test, constant),
        "auc_macro": auc_macro(y_test, constant),
    }
    ada = results.cnn.get("adadelta")
    best = results.best_cnn()
    t4 = paper.table4()
    paper_values = {
        "accuracy": t4.loc["adadelta", "accuracy"],
        "auc_pooled": t4.loc["adadelta", "auc"],
    }
    names = {
        "accuracy": "accuracy",
        "auc_pooled": "AUC (pooled, as the paper)",
        "auc_macro": "AUC (macro, one-vs-rest)",
    }
    out = []
    for m, label in names.items():
        out.append(
            {
                "metric": label,
                "no skill (training class mix, official test split)": f"{chance[m]:.3f}",
                "ours, ADADelta": "—" if ada is None else f"{ada.test.values()[m]:.3f}",
                "ours, best on validation": "—" if best is None else f"{best.test.values()[m]:.3f}",
                "paper, ADADelta": f"{paper_values[m]:.2f}" if m in paper_values else "—",
            }
        )
    return pd.DataFrame(out).set_index("metric")


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


def baseline_differences(results: Results) -> pd.DataFrame:
    """Best network − each classical baseline on the test split: paired patient-level differences."""
    best = results.best_cnn()
    frames = []
    for key in ("svm", "knn"):
        run = results.baselines.get(key)
        if best is None or run is None or "test" not in run.evaluations:
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
