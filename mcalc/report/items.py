"""Captioned tables and figures of the book: caption numbering, provenance line, glue keys (myst-nb)."""

from __future__ import annotations

import hashlib
import html
import re

import matplotlib.pyplot as plt
import pandas as pd

from mcalc.records.provenance import Provenance
from mcalc.report.styling import meaningless_index, table_html

__all__ = [
    "item_key",
    "split_lead",
    "caption_html",
    "item_metadata",
    "caption_metadata",
    "FIGURE_MAX_WIDTH",
    "DISPLAY_DPI",
    "DISPLAY_DENSITY",
    "show_table",
    "log",
    "weights_sentence",
    "show_note",
    "show_figure",
    "glue_numbers",
]

#: A caption's paper number: "Table 4 —", "Table 5b —", "Figure 5 —".
ITEM_LEAD = re.compile(r"^(Table|Figure) (\d+[a-z]?) —")
ITEM_KEY = re.compile(r"^[a-z][a-z0-9-]*$")  # a glue key that is also a readable Sphinx label


def item_key(caption: str, name: str | None = None) -> str:
    """The glue key of a captioned table / figure: ``name`` if given, else 'table-4' from "Table 4 — …", else a short hash of the caption."""
    if name is not None:
        if not ITEM_KEY.match(name):
            raise ValueError(
                f"item name {name!r}: lower-case letters, digits and hyphens, a letter first"
            )
        return name
    lead = ITEM_LEAD.match(caption)
    if lead:
        return f"{lead[1].lower()}-{lead[2]}"
    return "item-" + hashlib.sha1(caption.encode()).hexdigest()[:8]


def split_lead(caption: str) -> tuple[str, str]:
    """("Table 4 —", "the rest") for a numbered caption; ("", caption) otherwise."""
    lead = ITEM_LEAD.match(caption)
    return (lead[0], caption[lead.end() :].lstrip()) if lead else ("", caption)


def caption_html(caption: str, provenance: Provenance | None) -> str:
    """Bold 'Table N —'/'Figure N —' lead, the caption, and the provenance line."""
    lead, rest = split_lead(caption)
    text = (
        f"<strong>{html.escape(lead)}</strong> {html.escape(rest)}" if lead else html.escape(rest)
    )
    prov = f"<br><em>{html.escape(provenance.label())}</em>" if provenance is not None else ""
    return f"<p class='mcalc-caption'>{text}{prov}</p>"


def item_metadata(
    key: str, caption: str, provenance: Provenance | None, table: dict | None = None
) -> dict:
    """An item output's metadata: glued under ``key`` and still displayed (myst-nb), its caption and provenance
    (:mod:`mcalc.report.present` writes them under it in the book) and, for a table, its CSV record (the results bundle)."""
    mcalc = {
        "item": {
            "key": key,
            "caption": caption,
            "provenance": provenance.label() if provenance is not None else "",
        }
    }
    if table is not None:
        mcalc["table"] = table
    return {"scrapbook": {"name": key, "mime_prefix": ""}, "mcalc": mcalc}


def caption_metadata(key: str) -> dict:
    """A caption output's metadata: which item it is the caption of."""
    return {"mcalc": {"caption_of": key}}


FIGURE_MAX_WIDTH = 7.5  # inches: a wider figure is shrunk to this (text keeps its size) to stay legible at page width


DISPLAY_DPI = (
    100  # CSS px per inch a figure is shown at: 7.5 in → 750 px, about the book's text column
)


DISPLAY_DENSITY = 2  # image pixels per CSS px (sharp on high-density screens)


def show_table(
    df: pd.DataFrame,
    caption: str,
    provenance: Provenance | None = None,
    precision: int = 3,
    empty: str = "",
    name: str | None = None,
) -> None:
    """Display a table's caption ("Table N — ...", with the provenance label) and the table; a table without
    rows shows nothing, or only the sentence ``empty`` (never a captioned "(none)").

    The table is one output, glued (myst-nb) under :func:`item_key` and carrying its caption, provenance
    and CSV (``mcalc.table``, for the book's results bundle) in its metadata; the caption is its own
    output. In the book :func:`mcalc.report.present.present` shows them as one numbered, citable figure.
    """
    from IPython.display import HTML, display

    if df is None or len(df) == 0:
        if empty:
            display(HTML(f"<p class='mcalc-empty'>{html.escape(empty)}</p>"))
        return
    key = item_key(caption, name)
    record = {
        "caption": caption,
        "provenance": provenance.label() if provenance is not None else "",
        "csv": df.to_csv(index=not meaningless_index(df)),
    }
    display(HTML(caption_html(caption, provenance)), metadata=caption_metadata(key))
    display(
        HTML(table_html(df, caption, precision)),
        metadata=item_metadata(key, caption, provenance, record),
    )


#: Where the book explains the data and weights behind its results (relative to an executed chapter).
PROVENANCE_SECTION = "../intro.html#what-produced-these-pages"


def log(message: str) -> None:
    """A run message for the kernel's log (stderr), never shown in the book."""
    import sys

    print(message, file=sys.stderr)


def weights_sentence(info, link: str = PROVENANCE_SECTION) -> str:
    """One sentence (HTML) when the backbone is not the ImageNet one that was asked for, else ''."""
    if info.used == "imagenet" or info.requested == "random":
        return ""
    if info.used == "random":
        what = (
            "The ImageNet weights of InceptionResNetV2 were not available on this machine, so the "
            "backbone is randomly initialised (seeded) and its results test the pipeline, not the paper."
        )
    else:
        what = f"The backbone's weights come from {html.escape(info.used.removeprefix('file:'))}."
    return f"{what} <a href='{html.escape(link)}'>How to use the ImageNet weights</a>."


def show_note(text_html: str) -> None:
    """Display one short sentence (HTML) as a note of the chapter; nothing when it is empty."""
    from IPython.display import HTML, display

    if text_html:
        display(HTML(f"<p class='mcalc-note'>{text_html}</p>"))


def _fit_page(fig: plt.Figure, max_width: float = FIGURE_MAX_WIDTH) -> None:
    """Shrink a figure wider than ``max_width`` inches (text keeps its point size, so it reads larger)."""
    import warnings

    width, height = fig.get_size_inches()
    if width <= max_width:
        return
    fig.set_size_inches(max_width, height * max_width / width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tight_layout's "not compatible" notes on special axes
        fig.tight_layout()


def _figure_png(fig: plt.Figure) -> tuple[bytes, int]:
    """The figure as a PNG at DISPLAY_DENSITY × DISPLAY_DPI, and the width (CSS px) to show it at."""
    import io

    from PIL import Image as PILImage

    buffer = io.BytesIO()
    fig.savefig(  # independent of the kernel's matplotlib backend
        buffer, format="png", dpi=DISPLAY_DPI * DISPLAY_DENSITY, bbox_inches="tight"
    )
    data = buffer.getvalue()
    width = PILImage.open(io.BytesIO(data)).size[0]
    return data, int(width // DISPLAY_DENSITY)


def show_figure(
    fig: plt.Figure, caption: str, provenance: Provenance | None = None, name: str | None = None
) -> None:
    """Display a figure, then its caption ("Figure N — ...") with the provenance label; close the figure.

    The image is one output at twice its displayed resolution (sharp on high-density screens), glued
    (myst-nb) under :func:`item_key` with its caption and provenance in its metadata; in the book
    :func:`mcalc.report.present.present` shows them as one numbered, citable figure, the provenance under the
    caption (once: never inside the image).
    """
    from IPython.display import HTML, Image, display

    key = item_key(caption, name)
    _fit_page(fig)
    data, width = _figure_png(fig)
    plt.close(fig)
    display(
        Image(data=data, format="png", width=width),
        metadata=item_metadata(key, caption, provenance),
    )
    display(HTML(caption_html(caption, provenance)), metadata=caption_metadata(key))


def glue_numbers(**values: object) -> None:
    """Glue a chapter's key numbers (myst-nb) for its prose and its "What this chapter found"; nothing shown here."""
    from myst_nb import glue

    for name, value in values.items():
        glue(name, value.item() if hasattr(value, "item") else value, display=False)
