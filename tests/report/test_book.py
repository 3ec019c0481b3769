"""Building and checking the book: the paper's items found in the HTML, the provenance banner."""

from __future__ import annotations

from mcalc.records.provenance import Provenance, write_provenance
from mcalc.report.book import PAPER_ITEMS, missing_items
from mcalc.report.sphinxext import banner_html


def test_missing_items_finds_captions_in_html(tmp_path):
    """The book check sees 'Table N —' captions in any page and reports the absent ones."""
    (tmp_path / "a.html").write_text(
        "<p><strong>Table 1 —</strong> counts</p><p>Figure 4 &#8212; curves</p>"
    )
    missing = missing_items(tmp_path)
    assert "Table 1" not in missing and "Figure 4" not in missing
    assert "Table 2" in missing and len(missing) == len(PAPER_ITEMS) - 2


def test_banner_html_reads_the_book_provenance(tmp_path):
    """The Sphinx banner warns when results are missing, and names phantom data when present."""
    assert "No executed results" in banner_html(tmp_path)
    write_provenance(Provenance(data="phantom"), tmp_path / "book" / "executed" / "provenance.json")
    assert "phantom" in banner_html(tmp_path)


def test_banner_is_one_short_line_with_a_link(tmp_path):
    """The banner is one sentence (not the long provenance paragraph) and links the intro's provenance section."""
    write_provenance(
        Provenance(data="phantom").with_weights("random"),
        tmp_path / "book" / "executed" / "provenance.json",
    )
    text = banner_html(tmp_path, "../intro.html#what-produced-these-pages")
    assert "href='../intro.html#what-produced-these-pages'" in text
    assert "What produced these pages" in text
    plain = Provenance(data="phantom").with_weights("random").headline()
    assert "phantom images" in plain and "random backbone" in plain
    assert len(plain) < 160 and "\n" not in plain
    write_provenance(
        Provenance(data="cbis-ddsm").with_weights("imagenet"),
        tmp_path / "book" / "executed" / "provenance.json",
    )
    assert banner_html(tmp_path) == ""


def test_a_failed_book_build_is_a_build_error_not_bad_data(tmp_path, monkeypatch, capsys):
    """jupyter-book failing raises BookBuildError (not DataError); `mcalc book` says so in one line, exit 1."""
    import subprocess

    import pytest

    from mcalc.errors import BookBuildError, DataError
    from mcalc.report import book
    from mcalc.run import cli
    from mcalc.run.profiles import get_profile

    monkeypatch.setattr(
        book.subprocess, "run", lambda cmd, check: subprocess.CompletedProcess(cmd, 3)
    )
    profile = get_profile(
        "ci", results_dir=str(tmp_path / "results"), out_dir=str(tmp_path / "notebooks")
    )
    (tmp_path / "src" / book.EXECUTED).mkdir(parents=True)
    with pytest.raises(BookBuildError, match="exit 3") as caught:
        book.build_book(profile, source=tmp_path / "src")
    assert not isinstance(caught.value, DataError)
    monkeypatch.setattr(book, "build_book", lambda profile: (_ for _ in ()).throw(caught.value))
    assert cli.main(["book", "--profile", "ci", "--no-execute"]) == 1
    assert "jupyter-book build failed (exit 3)" in capsys.readouterr().err


def test_the_bundle_collects_every_glued_table_and_no_figure(tmp_path, monkeypatch):
    """write_bundle reads the tables from the glued outputs (mcalc.table), before or after present()."""
    import zipfile

    import matplotlib.pyplot as plt
    import nbformat
    import pandas as pd
    from conftest import displayed

    from mcalc.report import items
    from mcalc.report.book import write_bundle
    from mcalc.report.present import present

    df = pd.DataFrame({"a": [1.5, 2.5]})
    table = displayed(monkeypatch, items.show_table, df, "Table 4 — demo", Provenance("phantom"))
    other = displayed(monkeypatch, items.show_table, df, "Exclusions — none", None)
    figure = displayed(monkeypatch, items.show_figure, plt.subplots()[0], "Figure 1 — x", None)
    cells = [nbformat.v4.new_code_cell("x", outputs=o) for o in (table, other, figure)]
    executed = tmp_path / "executed"
    executed.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=cells), executed / "05_comparison.ipynb")
    present(executed / "05_comparison.ipynb", {}, commit="abc1234")
    with zipfile.ZipFile(write_bundle(executed, tmp_path / "results")) as archive:
        names = sorted(archive.namelist())
        text = archive.read("tables/05_comparison/table-4.csv").decode()
    assert names == ["tables/05_comparison/exclusions.csv", "tables/05_comparison/table-4.csv"]
    assert text.startswith("# Table 4 — demo\n# Data: PHANTOM") and "1.5" in text


def test_the_search_index_sees_no_hidden_code_and_no_run_log():
    """What the search index is fed: the page's text without code-cell inputs or the run log."""
    from docutils import nodes

    from mcalc.report.sphinxext import searchable

    page = nodes.document(None, None)
    page += nodes.paragraph(text="The accuracy of the head is shown.")
    page += nodes.container(
        "", nodes.literal_block(text="import secret_code"), classes=["cell_input"]
    )
    page += nodes.raw(
        text="<details class='mcalc-run-log'><pre>saved: x.json</pre></details>", format="html"
    )
    text = searchable(page).astext()
    assert "accuracy of the head" in text
    assert "secret_code" not in text and "saved:" not in text
    assert "secret_code" in page.astext()  # the page itself keeps its code


def test_the_books_provenance_is_the_results_as_read_naming_the_features_arithmetic(
    tmp_path, monkeypatch
):
    """The banner's record is the results' provenance as every chapter reads it: a provenance.json
    rewritten by notebook 01 (float32) still gives a bfloat16 banner when the features say so."""
    import json
    import subprocess

    import pytest

    from mcalc.errors import BookBuildError
    from mcalc.records.provenance import read_provenance
    from mcalc.report import book
    from mcalc.run.profiles import get_profile

    results = tmp_path / "results"
    write_provenance(Provenance(data="phantom").with_weights("random"), results / "provenance.json")
    (results / "features.json").write_text(json.dumps({"backbone_precision": "bfloat16"}))
    monkeypatch.setattr(
        book.subprocess, "run", lambda cmd, check: subprocess.CompletedProcess(cmd, 3)
    )
    profile = get_profile("ci", results_dir=str(results), out_dir=str(tmp_path / "notebooks"))
    (tmp_path / "src" / book.EXECUTED).mkdir(parents=True)
    with pytest.raises(
        BookBuildError
    ):  # the build itself is stubbed out; the record is written first
        book.build_book(profile, source=tmp_path / "src")
    written = read_provenance(tmp_path / "src" / book.EXECUTED / "provenance.json")
    assert written.backbone_precision == "bfloat16"
    assert "random bfloat16 backbone" in written.headline()
