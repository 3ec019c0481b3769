"""How a table reads in the book: readable names, number formats, and its deterministic HTML."""

from __future__ import annotations

import functools
import hashlib
import re

import numpy as np
import pandas as pd

from mcalc import names

__all__ = [
    "meaningless_index",
    "table_html",
]


def _readable(name: object) -> object:
    """A column or index name as a reader should see it ("task_and_data" → "task and data", "auc_pooled" →
    its display name from :data:`mcalc.names.METRIC_NAMES`)."""
    return names.column_name(name)


def _for_reader(df: pd.DataFrame) -> pd.DataFrame:
    """The table with readable column / index names, and metric identifiers (in a "metric" column or
    index) as their display names (the numbers untouched)."""
    out = df.rename(columns=_readable)
    if "metric" in df.columns and not pd.api.types.is_numeric_dtype(df["metric"]):
        out["metric"] = df["metric"].map(names.metric_name)
    if df.index.nlevels == 1 and not pd.api.types.is_numeric_dtype(df.index):
        out.index = df.index.map(names.metric_name)
    elif "metric" in df.index.names:
        out = out.rename(index=names.metric_name, level="metric")
    out.index = out.index.set_names([_readable(n) for n in out.index.names])
    return out


def _is_number(value: object) -> bool:
    """True for an int or float (not a bool, not a string)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _number_formats(df: pd.DataFrame, precision: int = 3) -> dict:
    """Per numeric column, how its cells are written (:func:`mcalc.names.number`): counts as integers,
    shares as percentages, small values in scientific notation."""
    formats = {}
    for col in df.columns:
        values = df[col]
        if pd.api.types.is_bool_dtype(values):
            continue
        if not pd.api.types.is_numeric_dtype(
            values
        ):  # numbers with gaps (None) in an object column
            present = values.dropna()
            if present.empty or not present.map(_is_number).all():
                continue
        count = pd.api.types.is_integer_dtype(values) or names.integral(values.tolist())
        share = not count and names.is_share(col)
        formats[col] = functools.partial(
            names.number, precision=precision, count=count, share=share
        )
    return formats


def meaningless_index(df: pd.DataFrame) -> bool:
    """True for an unnamed 0..n-1 index (nothing a reader needs)."""
    return isinstance(df.index, pd.RangeIndex) and df.index.name is None


def _is_interval(column: object) -> bool:
    """A column of confidence intervals ("95% CI", or a two-level header ending in it)."""
    last = column[-1] if isinstance(column, tuple) else column
    return isinstance(last, str) and re.search(r"\bCI\b", last) is not None


def _text_widths(df: pd.DataFrame, long: int = 40) -> dict:
    """Columns of long text → a minimum width in em (about a quarter of their longest entry, at most 24)."""
    widths = {}
    for col in df.columns:
        if df[col].dtype == object or pd.api.types.is_string_dtype(df[col]):
            longest = df[col].map(lambda v: len(str(v))).max()
            if longest > long:
                widths[_readable(col)] = min(24, max(10, round(longest / 4)))
    return widths


def table_html(df: pd.DataFrame, caption: str, precision: int = 3) -> str:
    """A deterministic HTML rendering of a table (stable for nbval; its element ids from the caption).

    Readable column names, no bare 0..n index, numbers to ``precision`` decimals, and a wrapper that
    scrolls a wide table inside itself instead of overflowing the page.
    """
    uid = hashlib.sha1(caption.encode()).hexdigest()[:8]
    shown = _for_reader(df)
    formats = _number_formats(shown, precision)
    styler = shown.style.format(precision=precision, na_rep="—").set_uuid(uid)
    if formats:
        styler = styler.format(formats, na_rep="—")
    if meaningless_index(df):
        styler = styler.hide(axis="index")
    widths = _text_widths(df)
    intervals = [c for c in styler.data.columns if _is_interval(c)]
    if intervals:  # "[0.333, 0.467]" reads as one value: never broken over two lines
        styler = styler.set_properties(subset=intervals, **{"white-space": "nowrap"})
    if widths:  # long text gets a reading width (the table scrolls) rather than a one-word column
        styler = styler.set_table_styles(
            {col: [{"selector": "", "props": f"min-width: {em}em"}] for col, em in widths.items()},
            overwrite=False,
        )
    return f"<div class='mcalc-table'>{styler.to_html()}</div>"
