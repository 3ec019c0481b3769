"""The analysis plan, fixed before any data: one record per claim of the paper the book judges.

Each :class:`Claim` states the paper's words and where they are, the quantity judged, the paper's
value, the test, the margin δ and why that δ, the direction that counts as better, the rule for a
claim made of several numbers, and the minimum difference the official test split can detect (80%
power, two-sided α 0.05) on its patient / lesion / ROI structure (:func:`mcalc.evaluate.power.power_design`, computed from
the shipped case-description tables, so the same in every build). :func:`plan_hash` is the content
hash of the plan; every run record carries it (:mod:`mcalc.records.results`), so a verdict on real data can
show which plan judged it. :mod:`mcalc.evaluate.verdicts` applies the plan.

Two kinds of claim: *data-free* ones (counts of the official tables, printed formulas, optimizer
arithmetic, what a cited source says) are decided in every build; *image* ones need the CBIS-DDSM
images and ImageNet weights, and are "not testable here" on the phantom or a random backbone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import pandas as pd

from mcalc.evaluate.power import ALPHA, POWER, mdd_auc, mdd_paired, mdd_proportion, power_design

__all__ = [
    "VALUE_MARGIN",
    "VALUE_MARGIN_WHY",
    "TRAINING_MARGIN",
    "TRAINING_MARGIN_WHY",
    "STEP_RATIO_MARGIN",
    "SENSITIVITY_ANALYSES",
    "COUNTS",
    "FORMULA",
    "STEPS",
    "QUOTE",
    "EQUIVALENCE",
    "TRAINING",
    "SUPERIORITY",
    "LEVEL_AND_SPREAD",
    "TESTS",
    "Claim",
    "claims",
    "claim",
    "plan_hash",
    "plan_table",
    "plan_details",
    "tests_table",
    "power_note",
]

#: The margin of the value claims (accuracy, AUC, sensitivity): see :data:`VALUE_MARGIN_WHY`.
VALUE_MARGIN = 0.05
VALUE_MARGIN_WHY = (
    "the paper's best network leads its k-NN by 0.05 accuracy (0.94 vs 0.89), the advantage it "
    "draws its conclusion from; a value within 0.05 of the paper's leaves that conclusion standing"
)
#: The margin of Table 3's training accuracy.
TRAINING_MARGIN = 0.02
TRAINING_MARGIN_WHY = (
    "'≈98%' is a near-perfect fit: within 0.02 (0.96–1.00) the head still fits its training ROIs "
    "almost perfectly; the paper's four rows differ by 0.0006"
)
#: How many times slower than Adam an optimizer may move a weight and still train like it in 20 epochs.
STEP_RATIO_MARGIN = 100.0
#: Kinds of claim.
DATA_FREE, IMAGE = "data-free", "image"
#: Directions that count as better.
HIGHER, EITHER = "higher", "neither (two-sided)"
#: The sensitivity analyses reported beside the primary verdict, never instead of it (chapter 5).
SENSITIVITY_ANALYSES = (
    (
        "adadelta_lr1e-3",
        {"optimizer": "adadelta", "learning_rate": 1e-3},
        "ADADelta at lr 1e-3 (the learning rate of the paper's Conclusions)",
    ),
    (
        "adadelta_lr1",
        {"optimizer": "adadelta", "learning_rate": 1.0},
        "ADADelta at lr 1.0 (Keras' former default for Adadelta)",
    ),
    (
        "best_on_validation",
        {},
        "the best of the four optimizers at lr 1e-4, chosen on validation accuracy",
    ),
)


#: The tests of the plan: a short name (the plan table's) and the rule in words.
COUNTS = "count comparison"
FORMULA = "formula against definition"
STEPS = "optimizer arithmetic"
QUOTE = "quotation"
EQUIVALENCE = "equivalence (TOST)"
TRAINING = "equivalence over seeds"
SUPERIORITY = "superiority against the claim"
LEVEL_AND_SPREAD = "level and spread"
TESTS = {
    COUNTS: "the official tables shipped with mcalc counted per class against the printed counts; "
    "every class within δ → reproduced, else not reproduced",
    FORMULA: "the printed formula and the definition evaluated on a real confusion matrix (the BI-RADS "
    "assessment rule's on the official test table); any class where they differ → not reproduced",
    STEPS: "how far one weight moves in 860 steps under a constant gradient by Keras' update rules, "
    "ADADelta ÷ Adam; below 1/δ → not reproduced (lower)",
    QUOTE: "each number attributed to a study searched in the source's words read here (as a fraction "
    "or a percentage); all found → reproduced; one not found in an abstract → inconclusive (the "
    "full text may hold it); no text read → not testable here",
    EQUIVALENCE: "two one-sided tests at α 0.05: the 90% patient-level CI of ours inside paper ± δ → "
    "reproduced; entirely below paper − δ → not reproduced (lower); entirely above paper + δ, or "
    "reaching only above it → reproduced (higher: better is not a failure); otherwise inconclusive, "
    "saying which way",
    TRAINING: "per optimizer, the range of Keras' last-epoch running accuracy over chapter 7's seeds "
    "(or the one run) against paper ± δ, read as an equivalence interval",
    SUPERIORITY: "paired patient-level 95% CI of best network − baseline: above 0 and holding (or above) "
    "the claimed size → reproduced; below the claimed size → not reproduced (smaller than claimed, "
    "or the baseline better); holding both 0 and the claimed size → inconclusive",
    LEVEL_AND_SPREAD: "level: each optimizer's 90% CI inside [0.92 − δ, 0.94 + δ] (as for equivalence); "
    "spread: the range of the four single runs against the range four single runs of one optimizer "
    "show from the seed alone (seed SD × 2.06), with a Kruskal–Wallis test on the seed runs; both "
    "must hold",
}


@dataclass(frozen=True)
class Claim:
    """One claim of the paper as the plan judges it."""

    claim_id: str
    words: str  # the paper's words (or a faithful summary), as the verdict table shows them
    where: str  # where in the paper
    kind: str  # DATA_FREE or IMAGE
    quantity: str
    paper_value: str
    test: str
    margin: str  # δ, in the quantity's units
    margin_why: str
    better: str  # the direction that counts as better
    multiplicity: str  # the rule for a claim of several numbers ("—" for one number)
    mdd: float | None  # minimum detectable difference at 80% power, α 0.05 (None: exact or n/a)
    shown: str  # where the book shows the evidence (a MyST reference)


# ------------------------------------------------------------------------------------------ claims


def claims() -> tuple[Claim, ...]:
    """Every claim the book judges, data-free first, each with its test, margin and detectable difference."""
    d = power_design()
    n_eff = d.n_effective
    k = 3  # classes: the pooled AUC and sensitivity count every (ROI, class) pair
    val = f"δ = {VALUE_MARGIN:g}"
    return (
        Claim(
            "table1_train",
            "Training ROIs per class 474 / 528 / 545",
            "Table 1",
            DATA_FREE,
            "ROIs per class in the official calcification training table",
            "474 / 528 / 545",
            COUNTS,
            "1 ROI per class",
            "a one-ROI difference is a transcription or release detail, not another data set",
            EITHER,
            "every class must agree",
            None,
            "{ref}`Table 1 <01_data_curation-table-1>`",
        ),
        Claim(
            "table1_test",
            "Testing ROIs per class 99 / 133 / 94",
            "Table 1",
            DATA_FREE,
            "ROIs per class in the official calcification test table",
            "99 / 133 / 94",
            COUNTS,
            "1 ROI per class",
            "as for the training counts",
            EITHER,
            "every class must agree",
            None,
            "{ref}`Table 1 <01_data_curation-table-1>`",
        ),
        Claim(
            "eq4",
            "Specificity = TP / (TN + FP)",
            "Eq. 4",
            DATA_FREE,
            "the printed formula against TN / (TN + FP), on a real confusion matrix",
            "TP / (TN + FP)",
            FORMULA,
            "0 (a definition is right or wrong)",
            "a formula that differs from the definition on any matrix is wrong",
            EITHER,
            "any class where the two differ refutes the formula",
            None,
            "{ref}`the formulas, evaluated <05_comparison-formulas>`",
        ),
        Claim(
            "eq5",
            "Accuracy = (TP + TN + FP) / (TP + FP + FN)",
            "Eq. 5",
            DATA_FREE,
            "the printed formula against (TP + TN) / (TP + TN + FP + FN), on a real confusion matrix",
            "(TP + TN + FP) / (TP + FP + FN)",
            FORMULA,
            "0 (a definition is right or wrong)",
            "as for Eq. 4",
            EITHER,
            "any class where the two differ refutes the formula",
            None,
            "{ref}`the formulas, evaluated <05_comparison-formulas>`",
        ),
        Claim(
            "adadelta_step",
            "ADADelta at lr 1e-4 trains the head as far as the others in 20 epochs (0.9816 training accuracy)",
            "§2.4, Table 3",
            DATA_FREE,
            "how far one weight moves in 860 steps (20 epochs of 43 batches) under a constant "
            "gradient, ADADelta ÷ Adam, with the paper's ρ 0.95, ε 1e-7",
            "comparable (all four reach 0.981–0.982)",
            STEPS,
            f"a factor of {STEP_RATIO_MARGIN:g}",
            "the paper's Adagrad moves a weight 15–37 times less than its Adam at the same training "
            "accuracy, so a slower optimizer is not by itself a contradiction; 100 times slower is",
            HIGHER,
            "—",
            None,
            "{ref}`step sizes <05_comparison-step-sizes>`",
        ),
        *(
            Claim(
                f"table5_{s.key}",
                f"{s.article}: accuracy {s.accuracy:g}, AUC {s.auc:g}, sensitivity {s.sensitivity:g}",
                "Table 5",
                DATA_FREE,
                "whether each number attributed to the study is in the source's text read here",
                f"{s.accuracy:g} / {s.auc:g} / {s.sensitivity:g}",
                QUOTE,
                "0 (as printed, fraction or percentage)",
                "a cited number is in its source or it is not",
                EITHER,
                "all three numbers must be found; a number missing from an abstract is "
                "inconclusive (the full text may hold it), not refuted",
                None,
                "{ref}`Table 5 <05_comparison-table-5>`",
            )
            for s in _table5_sources()
        ),
        Claim(
            "accuracy",
            "Validation/test accuracy 94% (ADADelta)",
            "Table 4, §3, Conclusions",
            IMAGE,
            "three-class test accuracy of the ADADelta network, official test split",
            "0.94",
            EQUIVALENCE,
            val,
            VALUE_MARGIN_WHY,
            HIGHER,
            "—",
            round(mdd_proportion(0.94, n_eff), 3),
            "{ref}`Table 4 <05_comparison-table-4>`",
        ),
        Claim(
            "auc",
            "AUC 0.96 (ADADelta)",
            "Table 4, §3",
            IMAGE,
            "pooled (Keras) AUC of the ADADelta network on the test split",
            "0.96",
            EQUIVALENCE,
            val,
            VALUE_MARGIN_WHY,
            HIGHER,
            "—",
            round(
                mdd_auc(0.96, d.n_rois / d.design_effect, (k - 1) * d.n_rois / d.design_effect), 3
            ),
            "{ref}`Table 4 <05_comparison-table-4>`",
        ),
        Claim(
            "sensitivity_at_spec80",
            "Sensitivity 0.97 at specificity 0.80 (ADADelta)",
            "Table 4, §3",
            IMAGE,
            "pooled sensitivity at specificity 0.8 of the ADADelta network on the test split",
            "0.97",
            EQUIVALENCE,
            val,
            VALUE_MARGIN_WHY,
            HIGHER,
            "—",
            round(mdd_proportion(0.97, n_eff), 3),
            "{ref}`Table 4 <05_comparison-table-4>`",
        ),
        Claim(
            "training_accuracy",
            "Training accuracy ≈98% after 20 epochs, all four optimizers",
            "Table 3",
            IMAGE,
            "Keras' running mean of the training accuracy over the last epoch (what Table 3 "
            "reports), per optimizer; its spread is the range over chapter 7's seeds",
            "0.9810–0.9816",
            TRAINING,
            f"δ = {TRAINING_MARGIN:g}",
            TRAINING_MARGIN_WHY,
            HIGHER,
            "all four must reach it (intersection–union, no correction): one optimizer not "
            "reproduced refutes the claim; a missing optimizer leaves it inconclusive",
            None,
            "{ref}`Table 3 <05_comparison-table-3>`",
        ),
        Claim(
            "beats_classical",
            "Outperforms classical machine learning (GLCM + SVM 0.91, k-NN 0.89 accuracy)",
            "Table 4, Abstract, Conclusions",
            IMAGE,
            "paired difference of test accuracy, best network (chosen on validation) − each baseline",
            "+0.03 over the SVM, +0.05 over the k-NN",
            SUPERIORITY,
            "the claimed difference itself",
            "the paper claims an advantage of a size, not just a sign",
            HIGHER,
            "against both baselines (intersection–union, no correction): all reproduced → "
            "reproduced; any not reproduced → not reproduced",
            round(mdd_paired(0.94, 0.91, n_eff), 3),
            "{ref}`paired differences <05_comparison-paired>`",
        ),
        Claim(
            "optimizer_insensitive",
            "Performs efficiently irrespective of the optimizer (0.92–0.94 accuracy)",
            "Table 4, §3, Conclusions",
            IMAGE,
            "level: each optimizer's test accuracy; spread: the range of four single runs",
            "level 0.92–0.94; range 0.02",
            LEVEL_AND_SPREAD,
            val,
            VALUE_MARGIN_WHY,
            HIGHER,
            "level and spread must both hold; level: all four optimizers (intersection–union)",
            round(mdd_paired(0.93, 0.93, n_eff), 3),
            "{ref}`Table 4 <05_comparison-table-4>`, chapter 7",
        ),
    )


def _table5_sources():
    """The studies of the paper's Table 5."""
    from mcalc.paper import TABLE5_SOURCES

    return TABLE5_SOURCES


def claim(claim_id: str) -> Claim:
    """One claim of the plan by its id."""
    for c in claims():
        if c.claim_id == claim_id:
            return c
    raise KeyError(claim_id)


def plan_hash() -> str:
    """Content hash (SHA-256, first 12 hex digits) of the plan: claims, α, power and the sensitivity analyses."""
    content = {
        "alpha": ALPHA,
        "power": POWER,
        "claims": [asdict(c) for c in claims()],
        "tests": TESTS,
        "sensitivity": [[k, p, t] for k, p, t in SENSITIVITY_ANALYSES],
    }
    text = json.dumps(content, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def plan_table() -> pd.DataFrame:
    """The plan as the book shows it, one row per claim, before any result: what is tested, how, δ, power."""
    rows = [
        {
            "claim": f"{c.words} ({c.where})",
            "kind": c.kind,
            "paper": c.paper_value,
            "test": c.test,
            "margin δ": c.margin,
            "better": c.better,
            "detectable at 80% power": "—" if c.mdd is None else f"{c.mdd:.3f}",
        }
        for c in claims()
    ]
    return pd.DataFrame(rows).set_index("claim")


def plan_details() -> pd.DataFrame:
    """Per claim, what the plan table leaves short: the quantity, why δ, the rule for several numbers."""
    rows = [
        {
            "claim": f"{c.words} ({c.where})",
            "quantity, why this δ, several numbers": f"{c.quantity}. δ: {c.margin_why}."
            + ("" if c.multiplicity == "—" else f" Several numbers: {c.multiplicity}."),
        }
        for c in claims()
    ]
    return pd.DataFrame(rows).set_index("claim")


def tests_table() -> pd.DataFrame:
    """The plan's tests in words."""
    return pd.DataFrame(
        {"the rule": list(TESTS.values())}, index=pd.Index(list(TESTS), name="test")
    )


def power_note() -> str:
    """One paragraph: the split's structure, its design effect, and what it can detect."""
    d = power_design()
    acc = claim("accuracy").mdd
    paired = claim("beats_classical").mdd
    return (
        f"The official test split holds {d.n_rois} ROIs of {d.n_lesions} lesions and "
        f"{d.n_patients} patients. Clustering by patient inflates the variance of an accuracy "
        f"{d.design_effect:.2f}-fold (design effect of the BI-RADS assessment rule's real test "
        f"predictions), so the split carries about {d.n_effective:.0f} ROIs' worth of independent "
        f"information. At 80% power and α {ALPHA:g} it can detect an accuracy {acc:.3f} away from "
        f"0.94, and a paired accuracy difference of {paired:.3f} between two models near 0.94 and "
        f"0.91 — more than the paper's claimed advantages (+0.03 over the SVM, +0.05 over the k-NN) "
        f"and its spread across optimizers (0.02): those claims are inconclusive by design unless "
        "the true differences are much larger than the paper says."
    )
