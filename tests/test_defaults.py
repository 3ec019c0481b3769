"""The notebooks' parameters cells against the one home of every default.

A template's ``parameters`` cell must hold literals (papermill replaces them by name), so its numbers
cannot import mcalc.paper. What it can do is agree with it: every literal that has a counterpart in
the Python sources must equal it: the paper's settings (:mod:`mcalc.paper`), the study's bootstrap
count (:data:`mcalc.study.N_BOOT`), the default profile (what ``mcalc book`` gives each execution,
its per-run parameters included) and a few function defaults. A parameter without a counterpart
is listed in :data:`NO_COUNTERPART` with the reason, so a new one cannot slip through unchecked.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

from mcalc import paper, study
from mcalc.run import pipeline, profiles, runner

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TEMPLATES = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.py"))

#: Parameters whose literal is the paper's setting, by the constant that holds it.
PAPER = {
    "learning_rate": "LEARNING_RATE",
    "batch_size": "BATCH_SIZE",
    "epochs": "EPOCHS",
    "image_size": "IMAGE_SIZE",
    "validation_size": "VALIDATION_SIZE",
    "selection_learning_rates": "SEARCH_LEARNING_RATES",
}
#: Parameters no profile passes whose default lives in a Python object: "module:attribute.path"
#: (an attribute path ending in a function's parameter reads that parameter's default).
PYTHON_DEFAULTS = {
    "optimizer": "mcalc.learn.model:TrainConfig.optimizer",
    "resize_antialias": "mcalc.learn.preprocessing:PreprocessConfig.antialias",
    "glcm_levels": "mcalc.learn.glcm:GLCM_LEVELS",
    "train_backbone": "mcalc.chapters.training:run_optimizer.train_backbone",
    "split_seed": "mcalc.chapters.inputs:StepInputs.split_seed",
}
#: Parameters with no counterpart anywhere, and why.
NO_COUNTERPART = {
    "run_record": "a path the build sets per run (empty: the template's own default path)",
}


def parameters_cell(text: str) -> dict[str, object]:
    """The names and literal values of a jupytext percent file's cell tagged ``parameters``.

    A statement other than ``name = <literal>`` raises ValueError (papermill needs literals).
    """
    cells = re.split(r"^# %%", text, flags=re.MULTILINE)
    tagged = [c for c in cells if re.match(r"[^\n]*tags=\[[^\]]*\"parameters\"", c)]
    if len(tagged) != 1:
        raise ValueError(f"{len(tagged)} cells tagged parameters (one expected)")
    values = {}
    for node in ast.parse(tagged[0].split("\n", 1)[1]).body:
        if not (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            raise ValueError(f"line {node.lineno}: not `name = literal`: {ast.unparse(node)}")
        try:
            values[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise ValueError(
                f"{node.targets[0].id} = {ast.unparse(node.value)} is not a literal"
            ) from None
    return values


def _class_field_default(where: str) -> object:
    """``module:Class.field``'s default, read from the dataclass's fields (no instance needed)."""
    import dataclasses

    module, _, path = where.partition(":")
    cls_name, field_name = path.split(".")
    cls = getattr(importlib.import_module(module), cls_name)
    return {f.name: f.default for f in dataclasses.fields(cls)}[field_name]


def counterpart(where: str) -> object:
    """The default a ``module:attribute[.parameter]`` names (a dataclass field, a function parameter, a constant)."""
    module, _, path = where.partition(":")
    head, _, tail = path.partition(".")
    obj = getattr(importlib.import_module(module), head)
    if not tail:
        return obj
    if isinstance(obj, type):
        return _class_field_default(where)
    return inspect.signature(obj).parameters[tail].default


def expected(template: str) -> dict[str, list[tuple[object, str]]]:
    """For each parameter a template may declare: the values it must equal, each with where it lives."""
    profile = profiles.get_profile("default")
    runs = [r for r in pipeline.plan(profile) if r.template == template]
    run = (
        runs[0] if runs else None
    )  # the first in the plan: the chapter itself, not a sensitivity run
    out: dict[str, list[tuple[object, str]]] = {}
    for name, value in profile.parameters().items():
        out.setdefault(name, []).append((value, f"the default profile's {name}"))
    # the profile gives the phantom's folder it derives; the notebook's literal is the field's default
    out["data_root"] = [
        (profile.data_root, "the default profile's data_root (empty: the phantom's folder)")
    ]
    for name, value in (run.parameters if run else {}).items():
        out[name] = [(value, f"the default build's run {run.output} (mcalc.run.pipeline.plan)")]
    overridden = set(run.parameters) if run else set()
    for name, constant in PAPER.items():
        if name not in overridden:
            out.setdefault(name, []).append((getattr(paper, constant), f"mcalc.paper.{constant}"))
    if "n_boot" not in overridden:
        out.setdefault("n_boot", []).append((study.N_BOOT, "mcalc.study.N_BOOT"))
    for name, where in PYTHON_DEFAULTS.items():
        if name not in overridden:
            out.setdefault(name, []).append((counterpart(where), where))
    return out


def _same(a: object, b: object) -> bool:
    """Equal as the notebook would use them (a tuple and a list of the same items are the same; a bool is no number)."""
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return list(a) == list(b)
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def mismatches(template: str, text: str) -> list[str]:
    """One line per literal of ``text``'s parameters cell that differs from a counterpart (or has none)."""
    try:
        literals = parameters_cell(text)
    except ValueError as exc:
        return [f"notebooks/{template}.py: parameters cell: {exc}"]
    sources = expected(template)
    problems = []
    for name, value in literals.items():
        if name not in sources:
            if name not in NO_COUNTERPART:
                problems.append(
                    f"notebooks/{template}.py: parameter {name} = {value!r} has no counterpart: "
                    "give it one in tests/test_defaults.py (PAPER, PYTHON_DEFAULTS) or say why "
                    "it has none (NO_COUNTERPART)"
                )
            continue
        for want, where in sources[name]:
            if not _same(value, want):
                problems.append(
                    f"notebooks/{template}.py: parameter {name} = {value!r}, but {where} is {want!r}"
                )
    return problems


def test_every_template_found() -> None:
    assert len(TEMPLATES) >= 8 and TEMPLATES[0] == runner.FIRST_TEMPLATE.removesuffix(".py")


@pytest.mark.parametrize("template", TEMPLATES)
def test_parameters_cell_agrees_with_the_sources(template: str) -> None:
    problems = mismatches(template, (NOTEBOOKS / f"{template}.py").read_text())
    assert not problems, "\n".join(problems)


def test_the_default_profile_takes_the_papers_settings() -> None:
    """The profile's defaults are the paper's and the study's (the notebooks are checked against both)."""
    profile = profiles.get_profile("default")
    for name, constant in PAPER.items():
        want = getattr(paper, constant)
        got = getattr(profile, name)
        assert _same(got, want), f"Profile {name} = {got!r}, mcalc.paper.{constant} = {want!r}"
    assert profile.n_boot == study.N_BOOT


def test_a_changed_literal_fails_naming_notebook_parameter_value_and_source() -> None:
    text = (NOTEBOOKS / "03_optimizer.py").read_text()
    assert "\nepochs = 20\n" in text
    problems = mismatches("03_optimizer", text.replace("\nepochs = 20\n", "\nepochs = 21\n"))
    assert problems and all(
        "notebooks/03_optimizer.py: parameter epochs = 21" in p for p in problems
    )
    assert any("mcalc.paper.EPOCHS is 20" in p for p in problems)
    assert any("the default profile's epochs is 20" in p for p in problems)

    changed = text.replace("\nn_boot = 1000\n", "\nn_boot = 999\n")
    assert mismatches("03_optimizer", changed) == [
        "notebooks/03_optimizer.py: parameter n_boot = 999, but the default profile's n_boot is 1000",
        "notebooks/03_optimizer.py: parameter n_boot = 999, but mcalc.study.N_BOOT is 1000",
    ]


def test_a_run_parameter_is_checked_against_the_run_not_the_paper() -> None:
    """Chapter 8's hold-out is scaled with its copies: the build's run gives it, not the paper."""
    text = (NOTEBOOKS / "08_copies.py").read_text()
    assert mismatches("08_copies", text) == []
    changed = re.sub(r"^validation_size = 50\b", "validation_size = 200", text, flags=re.M)
    assert mismatches("08_copies", changed) == [
        "notebooks/08_copies.py: parameter validation_size = 200, but the default build's run "
        "08_copies (mcalc.run.pipeline.plan) is 50"
    ]


def test_non_literals_and_unknown_parameters_fail() -> None:
    text = (NOTEBOOKS / "03_optimizer.py").read_text()
    computed = text.replace("\nepochs = 20\n", "\nepochs = 2 * 10\n")
    assert mismatches("03_optimizer", computed) == [
        "notebooks/03_optimizer.py: parameters cell: epochs = 2 * 10 is not a literal"
    ]
    extra = text.replace("\nepochs = 20\n", "\nepochs = 20\nwarmup = 3\n")
    (problem,) = mismatches("03_optimizer", extra)
    assert "parameter warmup = 3 has no counterpart" in problem
