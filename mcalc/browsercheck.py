"""Open every page of the built book in headless Chromium: nothing wider than the text column, no code or
parameters shown by default; a full-page screenshot of each page is kept.

``python -m mcalc.browsercheck HTML_DIR --screenshots DIR`` exits 0 when every page passes (or, with a
reason printed, when no browser can be had), 1 when a page fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

VIEWPORT = {"width": 1300, "height": 900}  # a laptop browser window
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
  return {
    column: true,
    wide: wide.slice(0, 10),
    inputs: visible('.cell_input'),
    parameters: visible('.tag_injected-parameters, .tag_parameters') + injected,
  };
}
"""


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


def problems_of(found: dict) -> list[str]:
    """Problems, in words, from the page script's findings."""
    if not found["column"]:
        return ["no article column found on the page"]
    problems = [f"wider than the text column: {w}" for w in found["wide"]]
    if found["inputs"]:
        problems.append(f"{found['inputs']} code input(s) shown by default")
    if found["parameters"]:
        problems.append(f"{found['parameters']} parameters cell(s) shown")
    return problems


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
        for path in pages:
            name = str(path.relative_to(root)) if root else path.name
            page.goto(path.resolve().as_uri(), wait_until="load")
            shot = screenshots / (name.replace(os.sep, "__").removesuffix(".html") + ".png")
            page.screenshot(path=str(shot), full_page=True)
            found = page.evaluate(PAGE_SCRIPT, TOLERANCE_PX)
            reports.append(PageReport(name, str(shot), problems_of(found)))
        chromium.close()
    return reports


def main(argv: list[str] | None = None) -> int:
    """Check a built book's pages; 0 when all pass or the check cannot run here (reason printed), else 1."""
    parser = argparse.ArgumentParser(prog="python -m mcalc.browsercheck", description=__doc__)
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
