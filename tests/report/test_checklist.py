"""Tests for mcalc.report.checklist: every item points at a section that exists; the page is generated from the items."""

from __future__ import annotations

from conftest import REPO

from mcalc.report import checklist as C


def test_every_item_points_at_a_section_that_exists() -> None:
    """Each (file, heading) an item names is a heading of that page or chapter template today."""
    assert C.missing_sections(REPO) == []


def test_a_renamed_section_is_caught(tmp_path) -> None:
    """The check fails for a heading that is gone, and for a file that is gone."""
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "methods.md").write_text("# Methods\n\n## Another heading\n")
    items = (
        C.Item(1, "a", (("book/methods.md", "Uncertainty: patients, not ROIs"),)),
        C.Item(2, "b", (("book/gone.md", ""),)),
        C.Item(3, "c", (("book/methods.md", "Another heading"),)),
    )
    assert C.missing_sections(tmp_path, items) == [
        "item 1: book/methods.md § Uncertainty: patients, not ROIs",
        "item 2: book/gone.md (no such file)",
    ]


def test_page_lists_every_item_and_says_why_when_not_reported(tmp_path) -> None:
    """One row per item, numbered 1..N; an item without a place says why; the page is written where
    the book's table of contents expects it."""
    text = C.page()
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [int(r.split("|")[1]) for r in rows] == [i.number for i in C.ITEMS]
    assert [i.number for i in C.ITEMS] == list(range(1, len(C.ITEMS) + 1))
    for item, row in zip(C.ITEMS, rows):
        if not item.where:
            assert item.note.startswith(("not reported", "not applicable")), item.number
            assert "| — |" in row
    assert "[chapter 5](05_comparison.ipynb)" in text and "(../methods.md)" in text
    assert "external" in text and "CLAIM" in text
    path = C.write_page(tmp_path)
    assert path.read_text() == text
    toc = (REPO / "_toc.yml").read_text()
    assert f"file: {C.PAGE.with_suffix('').as_posix()}" in toc
