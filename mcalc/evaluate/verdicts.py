"""The verdict on each claim of the analysis plan (:mod:`mcalc.evaluate.plan`): the evidence, and the table.

The evidence of each claim is gathered from a :class:`~mcalc.evaluate.runs.Results` (patient-level
intervals, chapter 7's seed runs, the sensitivity analyses' runs, the shipped official tables) and
judged by the rules of :mod:`mcalc.evaluate.judging`. :func:`verdict_table` applies the plan to the
results; :func:`plan_verdicts` is the same table keyed by claim id (what ``mcalc compare`` diffs
between two runs).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from mcalc import paper
from mcalc.errors import DataError
from mcalc.evaluate import plan
from mcalc.evaluate.evaluation import Evaluation, compare_evaluations
from mcalc.evaluate.judging import (
    CLAIM_METRIC,
    INCONCLUSIVE,
    NOT_TESTABLE,
    TOST_CONFIDENCE,
    Judgement,
    judge_all_of,
    judge_attribution,
    judge_counts,
    judge_equivalence,
    judge_formula,
    judge_optimizer,
    judge_step_ratio,
    judge_superiority,
    weight_travel,
)
from mcalc.evaluate.runs import OptimizerRun, Results
from mcalc.records.results import SENSITIVITY_DIR
from mcalc.study import DEFAULT_TASK

__all__ = [
    "CLAIM_METRICS",
    "SEED_SWEEP",
    "interval",
    "seed_runs",
    "sensitivity_runs",
    "not_testable_reason",
    "data_free_judgements",
    "plan_verdicts",
    "verdict_table",
    "plan_of_runs",
    "sensitivity_table",
    "chance_levels",
    "baseline_differences",
]

#: The Evaluation metric judged for each numeric headline claim (the paper's AUC is Keras' pooled AUC).
CLAIM_METRICS = {
    "accuracy": "accuracy",
    "auc": "auc_pooled",
    "sensitivity_at_spec80": "sensitivity_at_spec80",
}
#: The sweep chapter 7 runs (optimizer × seed) whose spread judges the optimizer claim.
SEED_SWEEP = "seed_variance"


# ------------------------------------------------------------------------------------------ evidence


def interval(
    ev: Evaluation, metric: str, confidence: float = TOST_CONFIDENCE
) -> tuple[float, float]:
    """The patient-level CI of one metric at ``confidence``: re-bootstrapped from the kept predictions,
    else read off the evaluation's 95% CI by the normal approximation."""
    if ev.predictions:
        from mcalc.evaluate.evaluation import evaluate

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
    from mcalc.evaluate.errata import paper_formula_errata
    from mcalc.evaluate.metadata import assessment_rule, class_counts, read_real_tables
    from mcalc.evaluate.metrics import confusion

    rows = read_real_tables()
    counts = class_counts(rows)
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


def _training_judgement(results: Results, seeds: pd.DataFrame | None) -> Judgement:
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


def _image_judgements(
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
    out["training_accuracy"] = _training_judgement(results, seeds)
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
    image = {} if why_not else _image_judgements(results, seeds)
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
