"""Tests for mcalc.report.tables: Tables 3 and 4 put ours, its CI, the paper's value and the difference in columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evaluate.test_verdicts import synthetic_results

from mcalc import paper
from mcalc.report import styling, tables


@pytest.fixture(scope="module")
def res() -> object:
    return synthetic_results("phantom", "imagenet", 2.0)


def test_table4_has_a_column_per_metric_part(res) -> None:
    """Each metric has ours / 95% CI / paper / difference; paper values are the paper's, difference is ours − paper."""
    t4 = tables.table4(res)
    assert t4.columns.nlevels == 2 and not isinstance(t4.index, pd.RangeIndex)
    for column in tables.METRIC_COLUMNS:
        assert list(t4[column].columns) == list(tables.COMPARISON_PARTS)
        assert pd.api.types.is_float_dtype(t4[(column, "ours")])
        diff = t4[(column, "ours")] - t4[(column, "paper")]
        pd.testing.assert_series_equal(t4[(column, "difference")], diff, check_names=False)
    t = paper.table4()
    for key, name in (("adam", "InceptionResNetV2, ADAM"), ("svm", "GLCM + SVM")):
        for column, field in tables.PAPER_METRIC_COLUMNS.items():
            assert t4.loc[name, (column, "paper")] == t.loc[key, field]
    adam = res.cnn["adam"].test
    assert t4.loc["InceptionResNetV2, ADAM", ("accuracy", "ours")] == adam.accuracy
    lo, hi = adam.ci["accuracy"]
    assert t4.loc["InceptionResNetV2, ADAM", ("accuracy", "95% CI")] == f"[{lo:.3f}, {hi:.3f}]"
    # not in the paper: the paper's value and the difference are blank
    macro = t4[("AUC (macro, one-vs-rest)", "difference")]
    assert macro.isna().all() and t4[("loss", "difference")].loc["GLCM + SVM":].isna().all()
    assert not any(" | " in str(v) for v in t4.to_numpy().ravel())


def test_table3_and_rows_compare_in_columns(res) -> None:
    """Table 3 and the per-optimizer rows carry numeric ours, paper and difference."""
    t3 = tables.table3(res)
    p3 = paper.table3()
    assert list(t3["training loss"].columns) == ["ours", "paper", "difference"]
    np.testing.assert_allclose(t3[("training loss", "paper")], p3["training_loss"])
    np.testing.assert_allclose(
        t3[("training accuracy", "difference")],
        t3[("training accuracy", "ours")] - p3["training_accuracy"].to_numpy(),
    )
    run = res.cnn["rmsprop"]
    row = tables.table3_row(run)
    assert (
        row.loc[run.paper_name, ("training accuracy", "paper")]
        == p3.loc["rmsprop", "training_accuracy"]
    )
    r4 = tables.table4_row(run)
    assert list(r4.index) == ["validation", "test"]
    assert r4.loc["test", ("accuracy", "difference")] == pytest.approx(
        run.test.accuracy - paper.table4().loc["rmsprop", "accuracy"]
    )
    html = styling.table_html(tables.table4(res), "Table 4 — demo")
    assert "95% CI" in html and "difference" in html


def test_baseline_rows_compare_in_the_table4_columns(res) -> None:
    """Chapter 4's rows: ours, CI, paper, difference per metric; the CV row names the folds that ran."""
    from mcalc.evaluate.baselines import BaselineResults
    from mcalc.evaluate.runs import BaselineRun

    runs = {
        key: BaselineRun(
            key,
            run.label,
            {"cv": res.cnn["adam"].test, "test": run.evaluations["test"]},
            run.provenance,
            {"cv_folds": 10, "cv_folds_run": 3},
        )
        for key, run in res.baselines.items()
    }
    rows = tables.baseline_rows(BaselineResults(np.zeros((1, 14)), runs, res.provenance))
    assert list(rows.index) == [
        "GLCM + SVM, 3-fold CV on train",
        "GLCM + SVM, official test split",
        "GLCM + k-NN, 3-fold CV on train",
        "GLCM + k-NN, official test split",
    ]
    assert rows.index.name == "model, evaluation"
    assert list(rows.columns) == list(tables.evaluation_comparison(None, None))
    t = paper.table4()
    svm_test = runs["svm"].evaluations["test"]
    row = rows.loc["GLCM + SVM, official test split"]
    assert row[("accuracy", "ours")] == svm_test.accuracy
    assert row[("accuracy", "paper")] == t.loc["svm", "accuracy"]
    assert row[("accuracy", "difference")] == pytest.approx(
        svm_test.accuracy - t.loc["svm", "accuracy"]
    )
    lo, hi = svm_test.ci["accuracy"]
    assert row[("accuracy", "95% CI")] == f"[{lo:.3f}, {hi:.3f}]"
    assert rows.loc["GLCM + k-NN, 3-fold CV on train", ("accuracy", "ours")] == (
        res.cnn["adam"].test.accuracy
    )
    assert not any(" | " in str(v) for v in rows.to_numpy().ravel())
    # a record from before the count was kept names the folds it asked for
    runs["svm"].config = {"cv_folds": 10}
    assert tables.cv_text(runs["svm"]) == "10-fold CV on train"


def test_table4_in_long_format_fits_and_keeps_every_number(res) -> None:
    """Long format: one row per model and metric, the parts as a handful of columns, values unchanged."""
    from mcalc.records.provenance import Provenance

    wide = tables.table4(res)
    real = Provenance(data="cbis-ddsm", weights="imagenet")
    long = tables.long_comparison(wide, real)
    assert list(long.columns) == [*tables.COMPARISON_PARTS, tables.UNITS_COLUMN]
    assert long.index.names == ["model", "metric"]
    assert len(long) == len(wide) * (len(tables.METRIC_COLUMNS) + 1)  # + loss
    name = "InceptionResNetV2, ADAM"
    assert long.loc[(name, "accuracy"), "ours"] == wide.loc[name, ("accuracy", "ours")]
    assert long.loc[(name, "accuracy"), "95% CI"] == wide.loc[name, ("accuracy", "95% CI")]
    assert long.loc[(name, "accuracy"), "difference"] == pytest.approx(
        wide.loc[name, ("accuracy", "difference")]
    )


def test_a_phantom_build_takes_no_difference_and_says_why(res) -> None:
    """On phantom data or a random backbone no difference column is shown, and the caption says why."""
    from mcalc.records.provenance import Provenance

    phantom = Provenance(data="phantom").with_weights("random")
    long = tables.long_comparison(tables.table4(res), phantom)
    assert "difference" not in long.columns and "paper" in long.columns
    t3 = tables.without_differences(tables.table3(res), phantom)
    assert "difference" not in t3.columns.get_level_values(1)
    note = tables.paper_note(phantom)
    assert "Not testable here" in note and "phantom data and a random backbone" in note
    assert tables.difference_words(phantom) == ""
    real = Provenance(data="cbis-ddsm", weights="imagenet")
    assert tables.paper_note(real) == "" and "difference" in tables.difference_words(real)
    assert tables.without_differences(tables.table3(res), real).equals(tables.table3(res))


@pytest.mark.parametrize(
    "data, weights, comparable",
    [
        ("cbis-ddsm", "imagenet", "yes"),
        ("cbis-ddsm", "random", "no"),
        ("phantom", "imagenet", "no"),
    ],
)
def test_table5b_reports_the_binary_studies_quantity_and_never_calls_simulation_comparable(
    data: str, weights: str, comparable: str
) -> None:
    """Table 5b's sensitivity is MALIGNANT's one-vs-rest sensitivity at 80% specificity (as the binary
    studies report), not the pooled one-hot one; a random backbone or the phantom is never comparable."""
    res = synthetic_results(data, weights, 0.0, "binary-merged")  # separable short of perfectly
    table = tables.binary_comparison(res)
    ours = table[table.index.str.startswith("This study")]
    assert len(ours) == 4
    for (_, row), run in zip(ours.iterrows(), res.cnn.values()):
        assert row["sensitivity"] == run.test.malignant_sensitivity_at_spec80
        assert row["sensitivity"] != run.test.sensitivity_at_spec80
        assert row["comparable with this task"].startswith(comparable)
    if comparable == "no":
        assert ("random backbone" if weights == "random" else "phantom data") in row[
            "comparable with this task"
        ]


def test_table4_reports_standardised_accuracy_and_brier_beside_raw_accuracy(res) -> None:
    """Every model's row carries the accuracy standardised to the paper's test mix and the Brier score."""
    t4 = tables.table4(res)
    adam = res.cnn["adam"].test
    row = t4.loc["InceptionResNetV2, ADAM"]
    assert row[("accuracy standardised to the paper's test mix", "ours")] == pytest.approx(
        adam.accuracy_standardised
    )
    assert row[("Brier score", "ours")] == pytest.approx(adam.brier)
    std = t4[("accuracy standardised to the paper's test mix", "ours")]
    assert std.notna().sum() >= 6  # the four optimizers and both baselines


def test_reference_rows_of_table4_name_their_data() -> None:
    """The metadata rule's row says whether it ran on the phantom's tables or the real ones."""
    from mcalc.evaluate.runs import BaselineRun

    for data, words in (("phantom", "phantom's tables"), ("cbis-ddsm", "real tables")):
        res = synthetic_results(data, "imagenet", 2.0)
        svm = res.baselines["svm"]
        res.baselines["assessment"] = BaselineRun(
            "assessment", "BI-RADS assessment only (metadata rule)", svm.evaluations, svm.provenance
        )
        t4 = tables.table4(res)
        assert f"BI-RADS assessment only (metadata rule), {words}" in t4.index
