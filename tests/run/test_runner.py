"""The notebook runner (mcalc.run.runner) and the notebook templates it executes."""

from __future__ import annotations

import ast
from pathlib import Path

import jupytext
import nbformat
import pytest

from mcalc.run import runner
from mcalc.run.pipeline import plan
from mcalc.run.profiles import PROFILES, get_profile
from mcalc.run.runner import NotebookRun, execute, find_notebook_dir, notebook_parameters
from tests.run.helpers import ROOT, TEMPLATES, parameters_cell, template_defaults


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_each_execution_gets_exactly_the_parameters_its_template_declares(profile):
    """The profile's values reach every template that declares them; nothing undeclared is injected."""
    prof = PROFILES[profile]
    for run in plan(prof):
        declared = template_defaults(run.template)
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

    from mcalc.run.runner import template_to_ipynb

    declared = {}
    exec(parameters_cell(template).source, {}, declared)
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
    params = notebook_parameters(prof, first, template_defaults(first.template))
    out = ROOT / prof.out_dir
    assert (out / params["results_dir"]).resolve() == (ROOT / prof.results_dir).resolve()
    assert not Path(params["data_root"]).is_absolute()


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

    from mcalc.run.runner import retitle

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

    at_root = [r.template for r in pl.plan(get_profile("default"))]
    monkeypatch.chdir(tmp_path)
    assert [r.template for r in pl.plan(get_profile("default"))] == at_root
    assert (find_notebook_dir() / "01_data_curation.py").is_file()


@pytest.mark.slow
def test_concurrent_executions_run_each_kernel_in_the_output_folder(tmp_path, monkeypatch):
    """Two notebooks at once (threads) with a relative output folder: each kernel starts there and
    this process's working directory never moves (papermill's cwd would change it for both)."""
    from concurrent.futures import ThreadPoolExecutor

    templates = tmp_path / "templates"
    templates.mkdir()
    for name in ("a", "b"):
        (templates / f"{name}.py").write_text(
            '# %% [markdown]\n# # T\n\n# %% tags=["parameters"]\nseed = 0\n\n'
            "# %%\nimport os\nprint(seed, os.getcwd())\n"
        )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "find_notebook_dir", lambda: templates)
    profile = get_profile("ci", out_dir="out/nested")
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(execute, NotebookRun(n, n, {"seed": i}), profile, templates)
            for i, n in enumerate("ab")
        ]
        paths = [f.result() for f in futures]
    assert Path.cwd() == tmp_path
    for i, path in enumerate(paths):
        nb = nbformat.read(tmp_path / path, as_version=4)
        printed = [o.text for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        assert printed == [f"{i} {tmp_path / 'out' / 'nested'}\n"]
