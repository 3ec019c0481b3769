"""Sphinx extension: a one-line provenance banner on every page when the results came from the phantom or
random weights, linking the intro's "what produced these pages"."""

from __future__ import annotations

import html
from pathlib import Path

from mcalc.provenance import read_provenance

PROVENANCE_FILE = Path("book/executed/provenance.json")
#: The page and label of the section that says what produced the book (the banner's link).
PROVENANCE_PAGE = "book/intro"
PROVENANCE_ANCHOR = "what-produced-these-pages"
LINK_TEXT = "What produced these pages"


def banner_html(srcdir: Path, link: str = f"#{PROVENANCE_ANCHOR}") -> str:
    """The banner's HTML for the book in ``srcdir``: one line and a link to ``link`` (empty when all is real)."""
    prov = read_provenance(Path(srcdir) / PROVENANCE_FILE)
    if prov is None:
        text = "No executed results were found when this book was built: its tables and figures may be missing."
    else:
        text = prov.headline()
    if not text:
        return ""
    return (
        f"<span class='mcalc-banner'>{html.escape(text)} "
        f"<a href='{html.escape(link)}'>{LINK_TEXT}</a></span>"
    )


def _on_config_inited(app, config) -> None:
    """Turn the theme's announcement on when there is something to announce (each page fills in its own link)."""
    text = banner_html(Path(app.srcdir))
    if text:
        options = dict(config.html_theme_options or {})
        options["announcement"] = text
        config.html_theme_options = options


def _on_page_context(app, pagename, templatename, context, doctree) -> None:
    """The banner of one page, its link relative to that page."""
    if not context.get("theme_announcement"):
        return
    uri = app.builder.get_relative_uri(pagename, PROVENANCE_PAGE)
    context["theme_announcement"] = banner_html(Path(app.srcdir), f"{uri}#{PROVENANCE_ANCHOR}")


def setup(app) -> dict:
    """Register the extension."""
    app.connect("config-inited", _on_config_inited)
    app.connect("html-page-context", _on_page_context)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
