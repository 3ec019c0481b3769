"""The notebook runner (mcalc.run.pipeline) and the notebook templates it executes."""

from __future__ import annotations

import ast
from pathlib import Path

import jupytext
import pytest

from mcalc.paper import OPTIMIZERS
from mcalc.run.pipeline import (
    NOTEBOOK_DIR,
    PROFILES,
    get_profile,
    notebook_parameters,
    plan,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "notebooks").glob("*.py"))


def _parameters_cell(path: Path):
    """The cell tagged 'parameters' of a jupytext template."""
    nb = jupytext.read(path)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name} must have exactly one cell tagged 'parameters'"
    return cells[0]


def test_plan_runs_one_optimizer_template_four_times():
    """The four optimizer chapters are one template executed with four different parameters."""
    runs = [r for r in plan(PROFILES["default"]) if r.output.startswith("03_")]
    assert {r.template for r in runs} == {"03_optimizer"}
    assert [r.parameters["optimizer"] for r in runs] == list(OPTIMIZERS)


def _declared(template: str) -> dict:
    """The parameters a template declares, with their defaults."""
    declared = {}
    exec(_parameters_cell(ROOT / NOTEBOOK_DIR / f"{template}.py").source, {}, declared)
    return declared


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_each_execution_gets_exactly_the_parameters_its_template_declares(profile):
    """The profile's values reach every template that declares them; nothing undeclared is injected."""
    prof = PROFILES[profile]
    for run in plan(prof):
        declared = _declared(run.template)
        injected = notebook_parameters(prof, run, declared)
        assert set(injected) <= set(declared)
        assert set(injected) == set(declared) & (set(prof.parameters()) | set(run.parameters))
        # a value the plan gives one run must land: its template has to declare it
        assert set(run.parameters) <= set(declared), f"{run.template} ignores {run.parameters}"
        if "optimizer" in run.parameters:
            assert injected["optimizer"] == run.parameters["optimizer"]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_every_declared_parameter_is_used(template):
    """A parameters cell is short and true: each name it declares is read by a later code cell."""
    nb = jupytext.read(template)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    first = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    declared = {}
    exec(cells[first].source, {}, declared)
    read = {
        node.id
        for cell in cells[first + 1 :]
        for node in ast.walk(ast.parse(cell.source))
        if isinstance(node, ast.Name)
    }
    assert not set(declared) - read, f"{template.name} declares unused {set(declared) - read}"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_papermill_sees_every_declared_parameter(template, tmp_path):
    """papermill's own introspection (--help-notebook) lists every parameter; a comment with '=' hides one."""
    import papermill

    from mcalc.run.pipeline import template_to_ipynb

    declared = {}
    exec(_parameters_cell(template).source, {}, declared)
    seen = papermill.inspect_notebook(
        str(template_to_ipynb(template, tmp_path / f"{template.stem}.ipynb"))
    )
    assert set(seen) == set(declared), (
        f"papermill cannot parse {set(declared) - set(seen)} in {template.name}"
    )


def test_paths_are_rewritten_relative_to_the_executed_notebook():
    """The kernel runs in the output folder, so repo-relative paths are re-expressed from there."""
    prof = get_profile("ci")
    first = plan(prof)[0]
    params = notebook_parameters(prof, first, _declared(first.template))
    out = ROOT / prof.out_dir
    assert (out / params["results_dir"]).resolve() == (ROOT / prof.results_dir).resolve()
    assert not Path(params["data_root"]).is_absolute()


def test_validation_hold_out_scales_with_the_phantom():
    """200 validation ROIs at the real size; a smaller phantom holds out as many in proportion, real data 200."""

    def injected(prof):
        return {
            notebook_parameters(prof, r, _declared(r.template)).get("validation_size")
            for r in plan(prof)
            if r.template != "08_copies"  # its own, smaller phantom: tests/test_compare.py
        } - {None}

    assert injected(get_profile("default")) == {200}
    assert injected(get_profile("default", phantom_scale=0.1)) == {20}
    assert injected(get_profile("default", phantom_scale=0.1, data_source="cbis-ddsm")) == {200}
    assert injected(get_profile("ci")) == {0.2}
    assert injected(get_profile("ci", phantom_scale=0.5)) == {0.2}


def test_get_profile_overrides_and_rejects_unknown():
    """Overrides replace fields (None keeps the profile's value); unknown profiles fail clearly."""
    prof = get_profile("default", weights="random", image_size=None)
    assert prof.weights == "random" and prof.image_size == 299
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("nope")


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_templates_are_thin(template):
    """Notebooks call mcalc: no function or class definitions and no loops in their code cells."""
    nb = jupytext.read(template)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            stripped = line.lstrip()
            assert not stripped.startswith(("def ", "class ", "for ", "while ")), (
                f"{template.name}: {line}"
            )


def test_optimizer_chapters_get_their_own_titles(tmp_path):
    """Each execution of the one template is titled with its optimizer, section and figure."""
    import nbformat

    from mcalc.run.pipeline import retitle

    runs = [r for r in plan(PROFILES["default"]) if r.output.startswith("03_")]
    # no hand-written number: the numbered contents give it 3.3
    assert [r.title for r in runs][2] == "InceptionResNetV2 with ADADelta (Section 3.3, Figure 6)"
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# Template title\n\nLead text.")]
    )
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    retitle(path, "New title")
    assert nbformat.read(path, as_version=4).cells[0].source == "# New title\n\nLead text."


def test_templates_are_found_from_any_working_directory(tmp_path, monkeypatch):
    """`mcalc notebooks` outside the repository root still finds the templates."""
    from mcalc.run import pipeline as pl

    at_root = [r.template for r in pl.plan(pl.get_profile("default"))]
    monkeypatch.chdir(tmp_path)
    assert [r.template for r in pl.plan(pl.get_profile("default"))] == at_root
    assert (pl.find_notebook_dir() / "01_data_curation.py").is_file()
