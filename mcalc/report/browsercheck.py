"""Open every page of the built book in headless Chromium, at a laptop's width (1300 px) and a phone's (390 px):
nothing wider than the text column (nor, on the phone, than the screen), no code or parameters shown by
default, a banner of at most two lines, the intro's bottom-line box on its first screen, no run output
that is not a result (a traceback, a /root/ path, "saved:", nan) and every figure image at least twice
its displayed width (sharp on high-density screens); a screenshot of each page at each width is kept.

``python -m mcalc.report.browsercheck HTML_DIR --screenshots DIR`` exits 0 when every page passes (or, with a
reason printed, when no browser can be had), 1 when a page fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BrowserUnavailable",
    "PageReport",
    "find_browser",
    "why_skipped",
    "book_pages",
    "leaks_in",
    "problems_of",
    "phone_problems_of",
    "check_pages",
    "main",
]

VIEWPORT = {"width": 1300, "height": 900}  # a laptop browser window
PHONE = {"width": 390, "height": 844}  # a phone
#: The intro page(s): their bottom-line box (BOTTOM_LINE) must be on the first screen.
INTRO_PAGES = ("intro.html",)
BOTTOM_LINE = ".mcalc-bottom-line"
BANNER = ".bd-header-announcement"
MAX_BANNER_LINES = 2
#: Visible text that is run output, not a result (a regular expression each, with the reason).
LEAKS = {
    r"Traceback \(most recent call last\)": "a Python traceback",
    r"/root/": "a /root/ path",
    r"gaierror": "a network resolver error",
    r"\bsaved:": "a 'saved:' run message",
    r"\bnan\b": "'nan' (a missing number printed raw)",
}
IMAGE_DENSITY = 2.0  # figure images: pixels per displayed (CSS) pixel, at least
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SKIPPED_PAGES = ("genindex.html", "search.html", "py-modindex.html")
TOLERANCE_PX = 1

#: Runs in the page: what sticks out of the article column (outside any scrolling box), and what
#: code / parameters a reader sees without clicking.
PAGE_SCRIPT = """
(tolerance) => {
  const column = document.querySelector('article.bd-article') || document.querySelector('main');
  if (!column) return {column: false, wide: [], inputs: 0, parameters: 0};
  const edge = column.getBoundingClientRect();
  const scrolls = (el) => ['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(el).overflowX);
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
      (typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  const wide = [];
  for (const el of column.querySelectorAll('*')) {
    if (!el.checkVisibility()) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if (box.right <= edge.right + tolerance && box.left >= edge.left - tolerance) continue;
    let clipped = false;
    for (let up = el.parentElement; up && up !== column; up = up.parentElement) {
      if (scrolls(up) && up.getBoundingClientRect().right <= edge.right + tolerance) { clipped = true; break; }
    }
    if (!clipped && !(scrolls(el) && el.clientWidth <= edge.width + tolerance)) {
      wide.push(`${name(el)} (${Math.round(box.width)} px; the column is ${Math.round(edge.width)} px)`);
    }
  }
  const visible = (sel) => [...document.querySelectorAll(sel)].filter((el) => el.checkVisibility()).length;
  const injected = [...document.querySelectorAll('.cell_input pre, .highlight pre')]
      .filter((el) => el.checkVisibility() && /^# Parameters\\b/m.test(el.textContent)).length;
  const lines = (el) => {
    if (!el || !el.checkVisibility()) return 0;
    const range = document.createRange();
    range.selectNodeContents(el);
    const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.bottom)));
    return tops.size;
  };
  const beyond = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (beyond.length >= 5 || !el.checkVisibility()) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= window.innerWidth + tolerance) continue;
    if ([...el.children].some((c) => c.getBoundingClientRect().right > window.innerWidth + tolerance)) continue;
    let clipped = false;
    for (let up = el.parentElement; up; up = up.parentElement) {
      if (scrolls(up) && up.getBoundingClientRect().right <= window.innerWidth + tolerance) { clipped = true; break; }
    }
    if (!clipped) beyond.push(`${name(el)} (right edge at ${Math.round(box.right)} px)`);
  }
  const bottom = document.querySelector('BOTTOM_LINE');
  const images = [...column.querySelectorAll('img')].filter((img) => img.checkVisibility() && img.clientWidth > 0)
      .map((img) => ({src: (img.getAttribute('src') || '').split('/').pop().slice(0, 40),
                      natural: img.naturalWidth, shown: img.clientWidth}));
  return {
    column: true,
    wide: wide.slice(0, 10),
    inputs: visible('.cell_input'),
    parameters: visible('.tag_injected-parameters, .tag_parameters') + injected,
    banner_lines: lines(document.querySelector('BANNER')),
    bottom_line_top: bottom && bottom.checkVisibility() ? bottom.getBoundingClientRect().top + window.scrollY : null,
    viewport: {width: window.innerWidth, height: window.innerHeight},
    page_width: document.documentElement.scrollWidth,
    beyond: beyond,
    text: document.body.innerText,
    images: images,
  };
}
""".replace("BOTTOM_LINE", BOTTOM_LINE).replace("BANNER", BANNER)


class BrowserUnavailable(RuntimeError):
    """The browser was found but would not start (missing libraries, no display support)."""


@dataclass
class PageReport:
    """What the browser found on one page."""

    page: str
    screenshot: str = ""
    problems: list[str] = field(default_factory=list)


def find_browser() -> str | None:
    """A Chromium executable: $MCALC_CHROMIUM, else the first of BROWSERS on the PATH (None when none)."""
    named = os.environ.get("MCALC_CHROMIUM")
    if named:
        return named if Path(named).is_file() else None
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def why_skipped() -> str | None:
    """Why the check cannot run here (no browser, no playwright), or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if find_browser() is None:
        return f"no Chromium found (looked for {', '.join(BROWSERS)}; apt-get install chromium)"
    return None


def book_pages(html_dir: Path) -> list[Path]:
    """The book's content pages, in a stable order."""
    return sorted(
        p
        for p in Path(html_dir).rglob("*.html")
        if p.name not in SKIPPED_PAGES and "_static" not in p.parts and "_sources" not in p.parts
    )


def leaks_in(text: str) -> list[str]:
    """What in a page's visible text is run output rather than a result (one entry per kind, with an excerpt)."""
    import re

    found = []
    for pattern, what in LEAKS.items():
        hit = re.search(pattern, text)
        if hit:
            excerpt = " ".join(text[max(0, hit.start() - 30) : hit.end() + 30].split())
            found.append(f"{what}: “…{excerpt}…”")
    return found


def problems_of(found: dict, intro: bool = False) -> list[str]:
    """Problems, in words, from the page script's findings at the laptop width (``intro``: the intro page)."""
    if not found["column"]:
        return ["no article column found on the page"]
    problems = [f"wider than the text column: {w}" for w in found["wide"]]
    if found["inputs"]:
        problems.append(f"{found['inputs']} code input(s) shown by default")
    if found["parameters"]:
        problems.append(f"{found['parameters']} parameters cell(s) shown")
    if found.get("banner_lines", 0) > MAX_BANNER_LINES:
        problems.append(
            f"the banner takes {found['banner_lines']} lines (at most {MAX_BANNER_LINES})"
        )
    problems += [f"visible run output: {leak}" for leak in leaks_in(found.get("text", ""))]
    for img in found.get("images", []):
        if img["natural"] < IMAGE_DENSITY * img["shown"] - 1:
            problems.append(
                f"figure image {img['src']} is {img['natural']} px wide, shown at {img['shown']} px "
                f"(at least {IMAGE_DENSITY:g}× needed)"
            )
    if intro:
        problems += _bottom_line_problems(found)
    return problems


def _bottom_line_problems(found: dict) -> list[str]:
    """The intro's bottom-line box must be on the first screen at this width."""
    top, screen = found.get("bottom_line_top"), found["viewport"]
    if top is None:
        return [f"no visible bottom-line box ({BOTTOM_LINE}) on the intro"]
    if top >= screen["height"]:
        return [
            f"the bottom-line box starts {round(top)} px down, below the first screen "
            f"({screen['width']} × {screen['height']})"
        ]
    return []


def phone_problems_of(found: dict, intro: bool = False) -> list[str]:
    """Problems at the phone's width: the page wider than the screen, the bottom line not on the first screen."""
    problems = []
    if found["page_width"] > found["viewport"]["width"] + TOLERANCE_PX:
        problems.append(
            f"at {found['viewport']['width']} px the page is {found['page_width']} px wide "
            "(sideways scrolling of the whole page)"
            + (f"; sticking out: {', '.join(found['beyond'][:3])}" if found.get("beyond") else "")
        )
    if intro:
        problems += [
            f"at {found['viewport']['width']} px, {p}" for p in _bottom_line_problems(found)
        ]
    return problems


def _is_intro(name: str) -> bool:
    """True for the intro page (by its file name)."""
    return Path(name).name in INTRO_PAGES


def check_pages(
    pages: list[Path], screenshots: Path, browser: str, root: Path | None = None
) -> list[PageReport]:
    """Open each page, run the checks and save a full-page screenshot under ``screenshots``."""
    from playwright.sync_api import Error, sync_playwright

    screenshots = Path(screenshots)
    screenshots.mkdir(parents=True, exist_ok=True)
    reports = []
    with sync_playwright() as pw:
        try:
            chromium = pw.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        except Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise BrowserUnavailable(f"{browser} would not start: {first}") from None
        page = chromium.new_page(viewport=VIEWPORT)
        phone = chromium.new_page(viewport=PHONE)
        for path in pages:
            name = str(path.relative_to(root)) if root else path.name
            stem = name.replace(os.sep, "__").removesuffix(".html")
            page.goto(path.resolve().as_uri(), wait_until="load")
            shot = screenshots / f"{stem}.png"
            page.screenshot(path=str(shot), full_page=True)
            page.screenshot(path=str(screenshots / f"{stem}-first-screen.png"))
            problems = problems_of(page.evaluate(PAGE_SCRIPT, TOLERANCE_PX), _is_intro(name))
            phone.goto(path.resolve().as_uri(), wait_until="load")
            phone.screenshot(
                path=str(screenshots / f"{stem}-{PHONE['width']}px.png"), full_page=True
            )
            found = phone.evaluate(PAGE_SCRIPT, TOLERANCE_PX)
            problems += phone_problems_of(found, _is_intro(name)) if found["column"] else []
            reports.append(PageReport(name, str(shot), problems))
        chromium.close()
    return reports


def main(argv: list[str] | None = None) -> int:
    """Check a built book's pages; 0 when all pass or the check cannot run here (reason printed), else 1."""
    parser = argparse.ArgumentParser(
        prog="python -m mcalc.report.browsercheck", description=__doc__
    )
    parser.add_argument("html_dir", help="the built book's HTML folder (…/_build/html)")
    parser.add_argument("--screenshots", required=True, help="folder for one PNG per page")
    args = parser.parse_args(argv)
    html_dir = Path(args.html_dir)
    pages = book_pages(html_dir) if html_dir.is_dir() else []
    if not pages:
        print(f"browser check: no HTML pages in {html_dir}", file=sys.stderr)
        return 1
    reason = why_skipped()
    if reason:
        print(f"browser check SKIPPED: {reason}")
        return 0
    try:
        reports = check_pages(pages, Path(args.screenshots), find_browser(), root=html_dir)
    except BrowserUnavailable as exc:
        print(f"browser check SKIPPED: {exc}")
        return 0
    failed = [r for r in reports if r.problems]
    for report in failed:
        for problem in report.problems:
            print(f"browser check: {report.page}: {problem}", file=sys.stderr)
    print(
        f"browser check: {len(reports) - len(failed)}/{len(reports)} pages pass; "
        f"screenshots in {args.screenshots}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
