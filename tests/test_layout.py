"""The package's layout: CONTRIBUTING's map is the packages' own account of themselves, and no module outgrows
one concept. Regenerate the map with ``python tests/test_layout.py --write``."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "mcalc"
CONTRIBUTING = REPO / "CONTRIBUTING.md"
BEGIN = (
    "<!-- map: generated from the packages' docstrings (python tests/test_layout.py --write) -->"
)
END = "<!-- end of map -->"
#: The stages bottom to top, as the import contract in pyproject.toml orders them.
STAGES = ("", "records", "data", "learn", "evaluate", "chapters", "report", "run")
MAX_LINES = (
    500  # one concept a module; the phantom (a package of its own) is counted per module too
)
LINE_SLACK = 60  # "about 500": a module may run a little over while it still holds one concept


def summary(path: Path) -> str:
    """The first sentence of a module's docstring (its first paragraph, on one line)."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    match = re.match(r"(.+?(?<!\bal)(?<!\be\.g)(?<!\bi\.e)\.)(\s+[A-Z(`*]|$)", first)
    return (match.group(1) if match else first).rstrip(".")


def modules() -> list[Path]:
    """Every module of mcalc, stage by stage (bottom first), then by name."""
    found = [p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts]
    stage = {s: i for i, s in enumerate(STAGES)}

    def key(p: Path) -> tuple:
        rel = p.relative_to(PACKAGE).parts
        return (stage.get(rel[0] if len(rel) > 1 else "", 0), rel)

    return sorted(found, key=key)


def render_map() -> str:
    """The map's Markdown: one row per module, grouped by stage package, each with its docstring's summary."""
    rows = ["| package | module | what it holds |", "|---|---|---|"]
    for path in modules():
        rel = path.relative_to(PACKAGE)
        if path.name == "__main__.py":
            continue
        package = "mcalc" if len(rel.parts) == 1 else f"mcalc.{'.'.join(rel.parts[:-1])}"
        name = "(package)" if path.name == "__init__.py" else f"`{path.stem}`"
        rows.append(f"| `{package}` | {name} | {summary(path) or '—'} |")
    return "\n".join([BEGIN, "", *rows, "", END])


def current_map() -> str:
    """The map as CONTRIBUTING.md has it now."""
    text = CONTRIBUTING.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end]


def test_contributing_map_is_the_packages_account_of_themselves():
    """Every module is in the map with its docstring's summary, and the map names no module that is gone."""
    assert current_map() == render_map(), (
        "CONTRIBUTING's map is stale: python tests/test_layout.py --write"
    )


def test_every_module_has_a_summary():
    """A newcomer reads the layout from the map: every module (and package) says what it holds."""
    assert [str(p.relative_to(REPO)) for p in modules() if not summary(p)] == []


def test_no_module_outgrows_one_concept():
    """No module of mcalc outside the phantom's package runs past about 500 lines (split it along its seams)."""
    phantom = PACKAGE / "data" / "phantom"
    sizes = {
        str(p.relative_to(REPO)): len(p.read_text().splitlines())
        for p in modules()
        if phantom not in p.parents
    }
    assert {p: n for p, n in sizes.items() if n > MAX_LINES + LINE_SLACK} == {}


def test_the_import_contract_orders_the_stages_as_the_map_does():
    """pyproject's layers contract lists the stage packages top to bottom in the map's order, reversed."""
    import tomllib

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in contracts["contracts"] if c["type"] == "layers")["layers"]
    packages = [layer.removeprefix("mcalc.") for layer in layers if "|" not in layer][:-1]
    assert packages == [s for s in reversed(STAGES) if s]
    on_disk = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert on_disk == set(packages), "a stage package is missing from the import contract"


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    text = CONTRIBUTING.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    CONTRIBUTING.write_text(text[:start] + render_map() + text[end:])
    print(f"wrote the map into {CONTRIBUTING}")
