"""The real-browser check of the built book (mcalc.browsercheck), on small hand-made pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcalc import browsercheck as bc

PAGE = """<html><body style="margin:0"><main><article class="bd-article" style="width:600px">
<p>text</p>{body}</article></main></body></html>"""


def _page(tmp_path: Path, name: str, body: str) -> Path:
    """Write one page into the fake book."""
    path = tmp_path / "html" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PAGE.format(body=body))
    return path


def test_findings_become_problems() -> None:
    found = {"column": True, "wide": ["table (900 px)"], "inputs": 2, "parameters": 1}
    problems = bc.problems_of(found)
    assert len(problems) == 3
    assert "table (900 px)" in problems[0]
    assert bc.problems_of({**found, "wide": [], "inputs": 0, "parameters": 0}) == []
    assert bc.problems_of({"column": False}) == ["no article column found on the page"]


def test_pages_skip_the_index_and_static(tmp_path: Path) -> None:
    _page(tmp_path, "a.html", "")
    _page(tmp_path, "search.html", "")
    _page(tmp_path, "_static/x.html", "")
    assert [p.name for p in bc.book_pages(tmp_path / "html")] == ["a.html"]


@pytest.mark.skipif(bc.why_skipped() is not None, reason=str(bc.why_skipped()))
def test_browser_finds_overflow_code_and_parameters(tmp_path: Path) -> None:
    wide = '<table style="width:900px"><tr><td>wide</td></tr></table>'
    scrolled = f'<div style="overflow-x:auto">{wide}</div>'
    code = '<div class="cell_input"><pre># Parameters\nx = 1</pre></div>'
    hidden = f"<details><summary>show</summary>{code}</details>"
    pages = [
        _page(tmp_path, "bad.html", wide + code),
        _page(tmp_path, "good.html", scrolled + hidden),
    ]
    reports = bc.check_pages(pages, tmp_path / "shots", bc.find_browser())
    bad, good = reports
    assert any("wider than the text column" in p for p in bad.problems)
    assert any("code input" in p for p in bad.problems)
    assert any("parameters" in p for p in bad.problems)
    assert good.problems == []
    assert Path(good.screenshot).stat().st_size > 0


def test_main_skips_with_a_reason_without_a_browser(tmp_path, monkeypatch, capsys) -> None:
    _page(tmp_path, "a.html", "")
    monkeypatch.setenv("MCALC_CHROMIUM", str(tmp_path / "no-such-browser"))
    assert bc.main([str(tmp_path / "html"), "--screenshots", str(tmp_path / "s")]) == 0
    assert "SKIPPED" in capsys.readouterr().out


def test_main_fails_on_an_empty_folder(tmp_path: Path) -> None:
    assert bc.main([str(tmp_path), "--screenshots", str(tmp_path / "s")]) == 1


@pytest.mark.skipif(bc.why_skipped() is not None, reason=str(bc.why_skipped()))
def test_a_browser_that_will_not_start_is_a_skip_with_its_reason(tmp_path, monkeypatch, capsys):
    _page(tmp_path, "a.html", "")
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\necho 'missing libnss3.so' >&2\nexit 127\n")
    fake.chmod(0o755)
    monkeypatch.setenv("MCALC_CHROMIUM", str(fake))
    assert bc.main([str(tmp_path / "html"), "--screenshots", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "SKIPPED" in out and "would not start" in out
