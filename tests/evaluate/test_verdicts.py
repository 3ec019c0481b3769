"""Tests for mcalc.evaluate.verdicts: the evidence of each claim and the verdict table, on the phantom,
a random backbone, other tasks and real data; the chance levels beside our numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mcalc.evaluate import judging as J
from mcalc.evaluate import plan, power
from mcalc.evaluate import verdicts as V

# ------------------------------------------------------------------------------ data-free claims


def test_data_free_claims_are_decided_on_the_real_tables() -> None:
    decided = V.data_free_judgements()
    assert decided["table1_test"].outcome == J.NOT_REPRODUCED  # 99/133/94 vs official 67/130/129
    assert "official 67, paper 99" in decided["table1_test"].detail
    assert decided["table1_train"].outcome == J.REPRODUCED  # 474/528/545 vs 474/528/544
    assert decided["eq4"].outcome == J.NOT_REPRODUCED
    assert decided["eq5"].outcome == J.NOT_REPRODUCED
    assert decided["adadelta_step"].label == "not reproduced (lower)"
    ribli = decided["table5_ribli2018"]
    assert ribli.outcome == J.INCONCLUSIVE and "AUC: reproduced" in ribli.detail
    assert decided["table5_becker2017"].outcome == J.NOT_TESTABLE


# ------------------------------------------------------------------------------ the verdict table


def synthetic_results(
    data: str,
    weights: str,
    network_gain: float,
    task: str = "three-class",
    history_accuracy: float = 0.98,
) -> object:
    """Results with four optimizer runs, an SVM and a k-NN on the same 240 test ROIs of 80 patients."""
    from mcalc.evaluate.evaluation import evaluate_rows
    from mcalc.evaluate.runs import BaselineRun, OptimizerRun, Results
    from mcalc.records.provenance import Provenance

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
    history = pd.DataFrame({"loss": [0.5], "accuracy": [history_accuracy]})
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


def test_on_the_phantom_data_free_claims_are_decided_and_image_claims_not_testable() -> None:
    table = V.plan_verdicts(synthetic_results("phantom", "imagenet", 2.0))
    image = table[table["kind"] == plan.IMAGE]
    free = table[table["kind"] == plan.DATA_FREE]
    assert set(image["verdict"]) == {J.NOT_TESTABLE}
    assert image["reason"].str.contains("phantom").all()
    assert {J.REPRODUCED, J.NOT_REPRODUCED} <= set(free["verdict"])
    assert table["plan"].unique().tolist() == [plan.plan_hash()]


def test_random_backbone_and_other_tasks_test_no_image_claim() -> None:
    for results in (
        synthetic_results("cbis-ddsm", "random", 2.0),
        synthetic_results("cbis-ddsm", "imagenet", 2.0, "binary-merged"),
    ):
        v = V.plan_verdicts(results)
        image = v[v["kind"] == plan.IMAGE]
        assert set(image["verdict"]) == {J.NOT_TESTABLE}


def test_on_real_data_the_rules_apply() -> None:
    # a strong network (accuracy near 1) beats both baselines; the value claims are judged by TOST
    v = V.plan_verdicts(synthetic_results("cbis-ddsm", "imagenet", 6.0))
    assert set(v["verdict"]) <= set(J.OUTCOMES)
    assert v.loc["beats_classical", "verdict"] == J.REPRODUCED
    assert "paired patient-level" in v.loc["beats_classical", "reason"]
    assert v.loc["optimizer_insensitive", "verdict"] == J.INCONCLUSIVE  # no seed runs
    assert v.loc["training_accuracy", "verdict"] == J.REPRODUCED  # 0.98 in every history
    weak = V.plan_verdicts(synthetic_results("cbis-ddsm", "imagenet", -1.0, history_accuracy=0.4))
    assert weak.loc["accuracy", "label"] == "not reproduced (lower)"
    assert weak.loc["training_accuracy", "verdict"] == J.NOT_REPRODUCED


# ------------------------------------------------------------------------------ chance levels


def test_chance_level_of_the_pooled_auc_is_not_one_half() -> None:
    table = V.chance_levels(synthetic_results("phantom", "imagenet", 2.0))
    pooled = float(table.loc["AUC (pooled, as the paper)"].iloc[0])
    macro = float(table.loc["AUC (macro, one-vs-rest)"].iloc[0])
    assert macro == pytest.approx(0.5)
    assert 0.55 < pooled < 0.65


def test_methods_page_states_the_plan_s_power_and_chance_numbers() -> None:
    """book/methods.md's power paragraph and chance level are the numbers mcalc computes on the real tables."""
    from pathlib import Path

    text = " ".join((Path(__file__).parents[2] / "book" / "methods.md").read_text().split())
    d = power.power_design()
    for claim_id in ("accuracy", "auc", "beats_classical"):
        assert f"about {plan.claim(claim_id).mdd:.3f}" in text, claim_id
    assert f"about {d.design_effect:.1f}-fold" in text
    assert f"about {d.n_effective:.0f} ROIs' worth" in text
    chance = V.chance_levels(synthetic_results("phantom", "imagenet", 2.0))
    assert f"pooled AUC of about {chance.iloc[1, 0]}**" in text
