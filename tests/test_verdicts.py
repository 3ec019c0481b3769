"""Tests for mcalc.verdicts: the four outcomes, the paired and seed-relative rules, not testable here."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mcalc import verdicts as V


def test_judge_value_four_ways() -> None:
    assert V.judge_value(0.94, 0.93, (0.90, 0.96))[0] == V.REPRODUCED
    assert V.judge_value(0.94, 0.80, (0.75, 0.85))[0] == V.NOT_REPRODUCED
    # inside, but the interval is wider than the margin: not a success
    outcome, reason = V.judge_value(0.94, 0.90, (0.82, 0.97))
    assert outcome == V.INCONCLUSIVE and "too wide" in reason
    assert V.judge_value(0.94, 0.93, (np.nan, np.nan))[0] == V.INCONCLUSIVE
    # the margin is the stated one: just under and just over it
    half = V.MAX_CI_WIDTH / 2
    assert V.judge_value(0.5, 0.5, (0.5 - half + 1e-9, 0.5 + half - 1e-9))[0] == V.REPRODUCED
    assert V.judge_value(0.5, 0.5, (0.5 - half - 1e-3, 0.5 + half))[0] == V.INCONCLUSIVE


def diff(d: float, lo: float, hi: float, p: float = 0.01) -> pd.Series:
    """A row of mcalc.metrics.paired_difference."""
    return pd.Series({"difference": d, "ci_low": lo, "ci_high": hi, "p_value": p})


def test_judge_superiority_needs_both_comparators() -> None:
    both = {"SVM": diff(0.08, 0.03, 0.13), "k-NN": diff(0.1, 0.05, 0.15)}
    assert V.judge_superiority(both)[0] == V.REPRODUCED
    one = {"SVM": diff(0.08, 0.03, 0.13), "k-NN": diff(0.02, -0.06, 0.1, 0.6)}
    assert V.judge_superiority(one)[0] == V.INCONCLUSIVE  # wide CI around 0
    tight_zero = {"SVM": diff(0.08, 0.03, 0.13), "k-NN": diff(0.0, -0.03, 0.03, 0.9)}
    assert (
        V.judge_superiority(tight_zero)[0] == V.NOT_REPRODUCED
    )  # no advantage where one would show
    worse = {"SVM": diff(-0.08, -0.13, -0.03), "k-NN": diff(0.1, 0.05, 0.15)}
    outcome, reason = V.judge_superiority(worse)
    assert outcome == V.NOT_REPRODUCED and "vs SVM: -0.080" in reason


def seed_frame(means: dict[str, float], spread: float, n: int) -> pd.DataFrame:
    """Optimizer × seed accuracies: each optimizer's seeds evenly spread over ``spread`` around its mean."""
    offsets = np.linspace(-spread / 2, spread / 2, n)
    return pd.DataFrame(
        [
            {"optimizer": o, "seed": s, "accuracy": m + offsets[(s + i) % n]}
            for i, (o, m) in enumerate(means.items())
            for s in range(n)
        ]
    )


def test_optimizer_spread_is_judged_against_seed_spread() -> None:
    single = {"Adam": 0.70, "Adagrad": 0.68, "Adadelta": 0.71, "RMSprop": 0.69}
    noisy_seeds = seed_frame(dict.fromkeys(single, 0.70), spread=0.05, n=6)
    outcome, reason = V.judge_optimizer_spread(single, noisy_seeds)
    assert outcome == V.REPRODUCED and "seed-to-seed range" in reason
    # the same 0.03 spread is large when seeds barely move and the optimizers really differ
    quiet_seeds = seed_frame(
        {"Adam": 0.70, "Adagrad": 0.67, "Adadelta": 0.72, "RMSprop": 0.69}, spread=0.005, n=6
    )
    assert V.judge_optimizer_spread(single, quiet_seeds)[0] == V.NOT_REPRODUCED
    # a fixed threshold would have said "reproduced" for both (spread 0.03 ≤ 0.05)
    assert V.judge_optimizer_spread(single, None)[0] == V.INCONCLUSIVE
    assert V.judge_optimizer_spread(single, noisy_seeds.iloc[::6])[0] == V.INCONCLUSIVE


def synthetic_results(
    data: str, weights: str, network_gain: float, task: str = "three-class"
) -> object:
    """Results with four optimizer runs, an SVM and a k-NN on the same 240 test ROIs of 80 patients."""
    from mcalc.metrics import evaluate_rows
    from mcalc.provenance import Provenance
    from mcalc.results import BaselineRun, OptimizerRun, Results

    rng = np.random.default_rng(0)
    patient = np.repeat(np.arange(80), 3)
    y = (np.arange(80) % 3)[patient]
    rows = pd.DataFrame(
        {
            "roi_id": [f"R{i}" for i in range(len(y))],
            "label": y,
            "patient_id": [f"P_{p:05d}" for p in patient],
            "side": "LEFT",
            "abnormality_id": 1,
        }
    )

    def proba(signal: float) -> np.ndarray:
        logits = rng.normal(size=(len(y), 3))
        logits[np.arange(len(y)), y] += signal
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    prov = Provenance(data=data, weights=weights)
    history = pd.DataFrame({"loss": [0.5], "accuracy": [0.9]})
    cnn = {}
    for opt in ("adam", "adagrad", "adadelta", "rmsprop"):
        ev = evaluate_rows(rows, proba(1.0 + network_gain), n_boot=200)
        cnn[opt] = OptimizerRun(
            opt,
            {"task": task},
            history,
            ev,
            ev,
            prov,
            {"train": 1, "validation": 1, "test": 240},
            0.0,
        )
    baselines = {
        k: BaselineRun(k, label, {"test": evaluate_rows(rows, proba(1.0), n_boot=200)}, prov)
        for k, label in (("svm", "GLCM + SVM"), ("knn", "GLCM + k-NN"))
    }
    return Results(cnn=cnn, baselines=baselines, provenance=prov)


def test_verdict_table_on_the_phantom_is_not_testable_everywhere() -> None:
    table = V.verdict_table(synthetic_results("phantom", "imagenet", 2.0))
    assert set(table["verdict"]) == {V.NOT_TESTABLE}
    assert table["reason"].str.contains("phantom").sum() >= len(table) - 1


def test_verdict_table_on_real_data_uses_the_four_outcomes() -> None:
    table = V.verdict_table(synthetic_results("cbis-ddsm", "imagenet", 2.0))
    assert set(table["verdict"]) <= set(V.OUTCOMES)
    beats = table.loc[table.index.str.startswith("Outperforms"), ["verdict", "reason"]].iloc[0]
    assert beats["verdict"] == V.REPRODUCED and "paired patient-level" in beats["reason"]
    assert "vs GLCM + SVM" in beats["reason"] and "vs GLCM + k-NN" in beats["reason"]
    optimizer = table.loc[table.index.str.contains("irrespective"), "verdict"].iloc[0]
    assert optimizer == V.INCONCLUSIVE  # no seed runs given
    random = V.verdict_table(synthetic_results("cbis-ddsm", "random", 2.0))
    assert set(random["verdict"]) == {V.NOT_TESTABLE}
    # the paper's claims are three-class: another task cannot test them either
    other = V.verdict_table(synthetic_results("cbis-ddsm", "imagenet", 2.0, "binary-merged"))
    assert set(other["verdict"]) == {V.NOT_TESTABLE}
    assert other["reason"].str.contains("binary-merged task").sum() >= len(other) - 1
