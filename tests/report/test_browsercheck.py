"""The real-browser check of the built book (mcalc.report.browsercheck), on small hand-made pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcalc.report import browsercheck as bc

PAGE = """<html><body style="margin:0"><main><article class="bd-article" style="max-width:600px">
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


def test_leaks_are_found_in_visible_text() -> None:
    """Tracebacks, /root/ paths, resolver errors, 'saved:' and a raw nan are run output; ordinary words are not."""
    text = "Traceback (most recent call last):\n  File /root/x.py\nsocket.gaierror\nsaved: cnn.json\nAUC nan"
    kinds = " ".join(bc.leaks_in(text))
    for what in ("traceback", "/root/", "resolver", "saved:", "nan"):
        assert what in kinds
    assert bc.leaks_in("Nancy's finance: the savings were not saved here; nanometre") == []


def test_banner_lines_bottom_line_and_image_density_rules() -> None:
    """More than two banner lines, a blurry image and a missing or low bottom-line box are problems."""
    ok = {
        "column": True,
        "wide": [],
        "inputs": 0,
        "parameters": 0,
        "banner_lines": 2,
        "text": "results",
        "images": [{"src": "a.png", "natural": 1400, "shown": 700}],
        "bottom_line_top": 300,
        "viewport": {"width": 1300, "height": 900},
    }
    assert bc.problems_of(ok, intro=True) == []
    assert any("banner" in p for p in bc.problems_of({**ok, "banner_lines": 3}))
    blurry = {**ok, "images": [{"src": "a.png", "natural": 700, "shown": 700}]}
    assert any("2×" in p for p in bc.problems_of(blurry))
    assert any("bottom-line" in p for p in bc.problems_of({**ok, "bottom_line_top": None}, True))
    assert any(
        "below the first screen" in p for p in bc.problems_of({**ok, "bottom_line_top": 950}, True)
    )
    assert bc.problems_of({**ok, "bottom_line_top": None}) == []  # only the intro needs one
    phone = {**ok, "viewport": {"width": 390, "height": 844}, "page_width": 563}
    assert any("563 px wide" in p for p in bc.phone_problems_of(phone))
    assert bc.phone_problems_of({**phone, "page_width": 390}) == []


@pytest.mark.skipif(bc.why_skipped() is not None, reason=str(bc.why_skipped()))
def test_browser_applies_the_phone_banner_leak_and_image_rules(tmp_path: Path) -> None:
    """On real pages: a long unbreakable word widens the phone page, a 4-line banner, leaks, a 1x image, and the intro's box."""
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(4, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    png = base64.b64encode(buffer.getvalue()).decode()
    banner = (
        '<aside class="bd-header-announcement" style="width:300px">' + "word " * 60 + "</aside>"
    )
    long_word = "<p>inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop_and_more.h5</p>"
    bad = (
        banner
        + long_word
        + "<pre>Traceback (most recent call last):</pre><p>saved: x.json</p>"
        + f'<img src="data:image/png;base64,{png}" style="width:400px">'
    )
    box = '<div class="mcalc-bottom-line">The answer.</div>'
    good = box + f'<img src="data:image/png;base64,{png}" style="width:200px">'
    page = PAGE  # a column of at most 600 px, narrower on the phone
    paths = []
    for name, body in (("bad/intro.html", bad), ("good/intro.html", good)):
        path = tmp_path / "html" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page.format(body=body))
        paths.append(path)
    bad_report, good_report = bc.check_pages(
        paths, tmp_path / "shots", bc.find_browser(), root=tmp_path / "html"
    )
    text = " | ".join(bad_report.problems)
    for expected in (
        "banner takes",
        "traceback",
        "saved:",
        "2× needed",
        "bottom-line box",
        "px wide (sideways",
    ):
        assert expected in text, (expected, text)
    assert good_report.problems == []
    assert (tmp_path / "shots" / "good__intro-390px.png").stat().st_size > 0
