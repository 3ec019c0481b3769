"""Tables as the book shows them: deterministic HTML, readable names, intervals on one line (mcalc.report.styling)."""

from __future__ import annotations

import re

import pandas as pd

from mcalc.report import styling


def test_table_html_is_deterministic_without_its_caption():
    """The same table renders to the same HTML (stable under nbval); the caption is not inside it."""
    df = pd.DataFrame({"a": [1.23456, 2.0]}, index=["x", "y"])
    one = styling.table_html(df, "Table 9 — demo")
    assert one == styling.table_html(df, "Table 9 — demo") and "1.235" in one
    assert one != styling.table_html(df, "Table 8 — demo")  # element ids differ between tables
    assert "demo" not in one and "<strong>" not in one  # the caption is not inside the table


def test_tables_read_as_a_reader_expects():
    """Readable names, no bare 0..n index, long text given a width, wrapped to scroll inside itself."""
    df = pd.DataFrame({"task_and_data": ["x" * 120, "short"], "ci_low": [0.12345, 0.2]})
    html = styling.table_html(df, "Table 9 — demo")
    assert "task and data" in html and "CI low" in html and "task_and_data" not in html
    assert "row_heading" not in html  # the RangeIndex is hidden
    assert "<div class='mcalc-table'>" in html and "min-width: 24em" in html
    assert "0.123" in html and "0.12345" not in html
    named = styling.table_html(df.set_index(pd.Index(["a", "b"], name="model")), "Table 9 — demo")
    assert "row_heading" in named and ">model<" in named  # a meaningful index stays


def test_interval_cells_never_wrap_and_other_cells_may():
    """A "[0.333, 0.467]" cell under a "95% CI" header (two-level or not) is kept on one line."""
    cols = pd.MultiIndex.from_tuples([("accuracy", "ours"), ("accuracy", "95% CI")])
    df = pd.DataFrame([[0.4, "[0.333, 0.467]"]], columns=cols, index=["svm"])
    html = styling.table_html(df, "Table 9 — demo")
    nowrap = re.findall(r"#(T_\w+) \{\s*white-space: nowrap", html)
    assert len(nowrap) == 1 and nowrap[0].endswith("_row0_col1")  # the interval cell, only it
    assert "white-space: nowrap" not in styling.table_html(df.iloc[:, :1], "Table 9 — demo")
