"""Sphinx extension: a one-line provenance banner on every page when the results came from the phantom,
random weights or a bfloat16 backbone (or the Kaggle JPEG images), linking the intro's "what produced these pages"; and a search index of what a reader
sees (no hidden code, no run log)."""

from __future__ import annotations

import html
from pathlib import Path

from mcalc.records.provenance import read_provenance

__all__ = [
    "banner_html",
    "searchable",
    "setup",
]

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


HIDDEN_CLASSES = (
    "cell_input",
)  # myst-nb's code-cell inputs: behind a toggle, never search results
RUN_LOG_CLASS = "mcalc-run-log"


def searchable(doctree):
    """A copy of a page's doctree without what the reader does not see by default: code-cell inputs and
    the run log (what the search index is fed)."""
    from docutils import nodes

    copy = doctree.deepcopy()

    def hidden(node) -> bool:
        if isinstance(node, nodes.Element) and set(node.get("classes", [])) & set(HIDDEN_CLASSES):
            return True
        return isinstance(node, nodes.raw) and RUN_LOG_CLASS in node.astext()

    for node in list(copy.findall(hidden)):
        if node.parent is not None:
            node.parent.remove(node)
    return copy


def _on_builder_inited(app) -> None:
    """Feed the HTML builder's search index the visible text only."""
    builder = app.builder
    if not hasattr(builder, "index_page"):
        return
    original = builder.index_page

    def index_page(pagename, doctree, title):
        return original(pagename, searchable(doctree), title)

    builder.index_page = index_page


def setup(app) -> dict:
    """Register the extension."""
    app.connect("config-inited", _on_config_inited)
    app.connect("html-page-context", _on_page_context)
    app.connect("builder-inited", _on_builder_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
