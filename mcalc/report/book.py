"""Build the Jupyter Book from the executed notebooks and check that every table and figure of the paper is in it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Protocol

from mcalc.errors import BookBuildError
from mcalc.records.fsio import LOCK_NAME, exclusive
from mcalc.records.provenance import write_provenance
from mcalc.records.results import PROVENANCE, read_results_provenance
from mcalc.report.checklist import write_page as write_checklist

__all__ = [
    "PAPER_ITEMS",
    "EXECUTED",
    "BOTTOM_LINE",
    "Profile",
    "write_bundle",
    "assemble",
    "missing_items",
    "build_book",
]

#: Captions the book must show, one per table and figure of the paper ("Table 3 — ...").
PAPER_ITEMS = tuple([f"Table {i}" for i in range(1, 6)] + [f"Figure {i}" for i in range(1, 8)])
BOOK_FILES = ("_config.yml", "_toc.yml", "_static", "book", "benchmarks/RESULTS.md")
EXECUTED = Path("book/executed")
BUNDLE = "mcalc-results.zip"  # in EXECUTED; the intro links it
BOTTOM_LINE = (
    "bottom_line.txt"  # in EXECUTED: chapter 5's verdicts, included at the top of the intro
)
RECORD_SUFFIXES = (".json", ".csv")  # the run records and tables under the results folder


class Profile(Protocol):
    """What a book build needs of a run profile (:class:`mcalc.run.profiles.Profile` has it)."""

    name: str  # the build's folder under build/
    out_dir: Path | str  # the executed notebooks
    results_dir: Path | str  # the run records, provenance and bottom line


def _slug(text: str) -> str:
    """A file-name-safe short form of a caption."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "table"


def _notebook_tables(executed: Path) -> dict[str, str]:
    """Every table the executed notebooks displayed (``mcalc.table`` output metadata): archive name → CSV."""
    import nbformat

    tables = {}
    for path in sorted(Path(executed).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                table = out.get("metadata", {}).get("mcalc", {}).get("table")
                if table:
                    caption = table["caption"].split(" — ")[0]
                    name = f"tables/{path.stem}/{_slug(caption)}.csv"
                    tables[name] = f"# {table['caption']}\n# {table['provenance']}\n" + table["csv"]
    return tables


def write_bundle(executed: Path, results_dir: Path) -> Path:
    """Zip every displayed table as CSV plus the run records (JSON / CSV under the results folder)."""
    import zipfile

    target = Path(executed) / BUNDLE
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in _notebook_tables(executed).items():
            archive.writestr(name, text)
        results = Path(results_dir)
        if results.is_dir():
            for path in sorted(results.rglob("*")):
                if path.is_file() and path.suffix in RECORD_SUFFIXES:
                    archive.write(path, f"records/{path.relative_to(results)}")
    return target


def assemble(profile: Profile, target: Path) -> Path:
    """Copy the book's sources and the profile's executed notebooks into ``target`` (for builds outside the repo root)."""
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in BOOK_FILES:
        src = Path(name)
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target / name, ignore=shutil.ignore_patterns("executed", "_build"))
        else:
            shutil.copy2(src, target / name)
    shutil.copytree(profile.out_dir, target / EXECUTED, ignore=shutil.ignore_patterns(LOCK_NAME))
    return target


def missing_items(html_dir: Path, items: tuple[str, ...] = PAPER_ITEMS) -> list[str]:
    """The paper's tables/figures whose caption ("Table N —" / "Figure N —") appears on no page of the built HTML."""
    text = "\n".join(p.read_text(errors="replace") for p in Path(html_dir).rglob("*.html"))
    text = re.sub(r"<[^>]+>", "", text).replace("&#8212;", "—")
    return [item for item in items if not re.search(rf"{item}\s*(—|&mdash;)", text)]


def build_book(profile: Profile, source: Path | None = None) -> Path:
    """Build the book with jupyter-book (no execution), fail on a missing page or paper item; return index.html.

    One build at a time per build tree and notebook folder (mcalc.records.fsio.exclusive): a second is
    refused with Busy, never left to delete the first one's tree mid-build.
    """
    tree = Path("build") / profile.name if source is None else Path(source)
    if source is None and Path(profile.out_dir) == EXECUTED:
        tree = Path("build")  # the repository root's own _build
    with (
        exclusive(tree, f"the book's build folder {tree}", wait=False),
        exclusive(Path(profile.out_dir), f"the notebook folder {profile.out_dir}", wait=False),
    ):
        return _build_book(profile, source)


def _build_book(profile: Profile, source: Path | None) -> Path:
    """:func:`build_book` with its folders held."""
    if source is None:
        source = (
            Path(".")
            if Path(profile.out_dir) == EXECUTED
            else assemble(profile, Path("build") / profile.name / "book")
        )
    source = Path(source)
    if (Path(profile.results_dir) / PROVENANCE).is_file():  # as the results read it (the banner's)
        write_provenance(
            read_results_provenance(profile.results_dir), source / EXECUTED / PROVENANCE
        )
    write_bundle(source / EXECUTED, Path(profile.results_dir))
    bottom = source / EXECUTED / BOTTOM_LINE
    if not bottom.is_file():  # the intro includes it; chapter 5 writes it
        bottom.write_text(
            "```{admonition} Bottom line\n:class: mcalc-bottom-line\nChapter 5 has not run in this build: no verdict yet.\n```\n"
        )
    write_checklist(
        source
    )  # the reporting-checklist appendix, generated from mcalc.report.checklist
    jb = Path(sys.executable).with_name("jupyter-book")
    # -W --keep-going: any Sphinx warning (a missing page, include or citation) fails the build, after reporting all.
    cmd = [
        str(jb) if jb.exists() else "jupyter-book",
        "build",
        str(source),
        "--all",
        "-W",
        "--keep-going",
    ]
    completed = subprocess.run(cmd, check=False)
    if completed.returncode != 0:
        raise BookBuildError(
            f"jupyter-book build failed (exit {completed.returncode}); see its output above"
        )
    index = source / "_build" / "html" / "index.html"
    if not index.is_file():
        raise BookBuildError(f"the book build wrote no {index}")
    missing = missing_items(index.parent)
    if missing:
        raise BookBuildError(f"the built book lacks these items of the paper: {', '.join(missing)}")
    return index
