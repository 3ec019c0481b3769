"""Sphinx extension: a provenance banner on every page when the results came from the phantom or random weights."""

from __future__ import annotations

import html
from pathlib import Path

from mcalc.provenance import read_provenance

PROVENANCE_FILE = Path("book/executed/provenance.json")


def banner_html(srcdir: Path) -> str:
    """The announcement HTML for the book in ``srcdir`` (a warning when no results are present)."""
    prov = read_provenance(Path(srcdir) / PROVENANCE_FILE)
    if prov is None:
        return "No executed results were found when this book was built: its tables and figures may be missing."
    text = prov.banner()
    return html.escape(f"{text} ({prov.label()})") if text else ""


def _on_config_inited(app, config) -> None:
    """Set the theme's announcement from the results' provenance."""
    text = banner_html(Path(app.srcdir))
    if text:
        options = dict(config.html_theme_options or {})
        options["announcement"] = text
        config.html_theme_options = options


def setup(app) -> dict:
    """Register the extension."""
    app.connect("config-inited", _on_config_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
