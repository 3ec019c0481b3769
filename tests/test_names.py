"""What the reader sees: metric display names from one table, and numbers as a reader reads them."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mcalc import names
from mcalc.report import styling


@pytest.mark.parametrize(
    "key, shown",
    [
        ("auc_pooled", "AUC (pooled, as the paper)"),
        ("sensitivity_at_spec80", "sensitivity at specificity 0.8"),
        ("auc[BENIGN]", "AUC, BENIGN"),
        ("sensitivity[BENIGN_WITHOUT_CALLBACK]", "sensitivity, BENIGN_WITHOUT_CALLBACK"),
        ("not_a_metric[X]", "not_a_metric[X]"),
        ("ADAM", "ADAM"),
        (3, 3),
    ],
)
def test_metric_names_come_from_one_table(key, shown):
    assert names.metric_name(key) == shown


def test_a_new_metric_needs_one_entry(monkeypatch):
    """Adding a metric is one line in METRIC_NAMES; its per-class form follows."""
    monkeypatch.setitem(names.METRIC_NAMES, "log_loss", "log loss")
    assert names.metric_name("log_loss[MALIGNANT]") == "log loss, MALIGNANT"


@pytest.mark.parametrize(
    "value, kwargs, text",
    [
        (50.0, {"count": True}, "50"),
        (1546, {"count": True}, "1,546"),
        (0.697531, {"share": True}, "69.8%"),
        (1.4e-7, {}, "1.4e-07"),
        (0.0, {}, "0.000"),
        (0.73456, {}, "0.735"),
        (math.nan, {}, "—"),
        (None, {"count": True}, "—"),
    ],
)
def test_numbers_read_as_counts_shares_or_scientific(value, kwargs, text):
    assert names.number(value, **kwargs) == text


def test_tables_show_counts_as_integers_metric_names_and_small_values():
    """In a rendered table: a float column of whole counts has no decimals, metric ids read as words,
    a share column is a percentage and a tiny step size is in scientific notation."""
    df = pd.DataFrame(
        {
            "metric": ["auc_pooled", "auc[BENIGN]"],
            "value": [0.71234, 0.5],
            "n_rois": [50.0, 326.0],
            "share excluded": [0.697531, 0.1],
            "first step": [1.4e-7, 2e-4],
        }
    )
    html = styling.table_html(df, "demo")
    assert "AUC (pooled, as the paper)" in html and "AUC, BENIGN" in html
    assert ">50<" in html and "50.000" not in html and ">326<" in html
    assert "69.8%" in html and "0.697531" not in html
    assert "1.4e-07" in html and "0.712" in html
    assert "auc_pooled" not in html and "n_rois" not in html
    gappy = pd.DataFrame({"sensitivity": [0.96, None, 0.85]}, dtype=object)
    html = styling.table_html(gappy, "demo")
    assert "0.960" in html and "0.960000" not in html and "—" in html


def test_the_data_dictionary_describes_every_column_of_the_shipped_tables():
    """Each column of the official calc tables has a description, distinct values counted on both splits."""
    from mcalc.evaluate import metadata

    tables = metadata.shipped_tables()
    dictionary = names.data_dictionary(tables)
    header = pd.read_csv(next(iter(tables.values())), nrows=0).columns
    assert list(dictionary.index) == list(header)
    assert not dictionary["what it records"].str.contains("not described").any()
    assert dictionary.loc["pathology", "distinct values"] == 3
    assert "BENIGN" in dictionary.loc["pathology", "most frequent"]
    assert dictionary.loc["cropped image file path", "most frequent"] == "(one per record)"
    assert (
        dictionary.loc["patient_id", "most frequent"] == "(too many to list)"
    )  # several per patient
