"""The notebooks' parameters (mcalc.run.parameters): one spec per parameter, checked when a template starts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mcalc.errors import DataError
from mcalc.run import runner
from mcalc.run.parameters import SPECS, check_parameters, parameter_problem

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9]*.py"))


def _defaults(template: str) -> dict:
    """The values a template's parameters cell sets."""
    import jupytext

    nb = jupytext.read(ROOT / "notebooks" / f"{template}.py")
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values: dict = {}
    exec(cell.source, {}, values)
    return values


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_checks_its_parameters_right_after_the_parameters_cell(template):
    """Each declared parameter has a spec; the template's defaults pass it; the cell after the
    parameters cell is the one check (papermill injects the given values between the two)."""
    import jupytext

    declared = runner.declared(template, ROOT / "notebooks")
    assert declared and declared <= set(SPECS), declared - set(SPECS)
    check_parameters(_defaults(template))
    nb = jupytext.read(ROOT / "notebooks" / f"{template}.py")
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    assert "check_parameters(globals())" in nb.cells[at + 1].source


@pytest.mark.parametrize(
    "name, value, needle",
    [
        ("epochs", "abc", "parameter epochs = 'abc' is not a number: give an integer >= 1"),
        ("epochs", 2.5, "not an integer"),
        ("epochs", 0, "too small"),
        ("learning_rate", math.nan, "parameter learning_rate = nan is not finite"),
        ("learning_rate", math.inf, "not finite"),
        ("learning_rate", -1e-4, "not > 0"),
        ("batch_size", True, "a flag, not a number"),
        ("optimizer", "sgd", "give one of adam, adagrad, adadelta, rmsprop"),
        ("task", "four-class", "three-class, binary-merged, binary-biopsied"),
        ("image_size", 10, "give an integer >= 75"),
        ("validation_size", 1.5, "neither a count >= 1 nor a fraction"),
        ("seed", -1, "too small"),
        ("weights", "weights.txt", "not a weights spec"),
        ("phantom_scale", 0, "not > 0"),
        ("resize_antialias", "yes", "True or False"),
        ("results_dir", "", "not a non-empty text"),
        ("selection_learning_rates", [], "not a non-empty list"),
        ("selection_learning_rates", "1e-3", "not a non-empty list"),
        ("selection_learning_rates", [1e-3, math.nan], "not finite at nan"),
        ("selection_learning_rates", [1e-3, -1e-2], "not > 0 at -0.01"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_parameter_and_what_is_accepted(name, value, needle):
    """Issue 27.12: the type and range of every parameter, said in one line."""
    with pytest.raises(DataError) as info:
        check_parameters({name: value, "unrelated": object()})
    assert needle in str(info.value) and f"parameter {name} = " in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "name, value",
    [
        ("epochs", 3),
        ("learning_rate", 1),
        ("validation_size", 0.2),
        ("validation_size", 200),
        ("optimizer", "RMSprop"),
        ("split_seed", None),
        ("run_record", ""),
        ("weights", "my/weights.h5"),
        ("n_boot", 0),
        ("selection_learning_rates", [1e-2, 1e-3, 1e-4, 1e-5]),
        ("selection_learning_rates", (1e-3,)),
    ],
)
def test_good_values_pass(name, value):
    """What the templates and profiles use, and what users give (an int learning rate, a case)."""
    assert parameter_problem(name, value) is None


def test_a_data_error_in_a_notebook_shows_one_line_not_a_traceback():
    """IPython shows a DataError's ``_render_traceback_`` (its one line) instead of a traceback."""
    exc = DataError("parameter epochs = 'abc' is not a number:\n give an integer >= 1")
    assert exc._render_traceback_() == [
        "DataError: parameter epochs = 'abc' is not a number: give an integer >= 1"
    ]


def test_papermill_with_a_bad_parameter_stops_at_the_check_naming_it(tmp_path):
    """`papermill -p cv_folds abc`: the execution stops in the check cell, its error names cv_folds,
    and the notebook shows one line instead of a traceback."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = runner.template_to_ipynb(
        ROOT / "notebooks" / "04_glcm_baselines.py", tmp_path / "04.ipynb"
    )
    with pytest.raises(PapermillExecutionError) as info:
        papermill.execute_notebook(
            str(source),
            str(tmp_path / "out.ipynb"),
            parameters={"cv_folds": "abc", "results_dir": str(tmp_path / "absent")},
            kernel_name=runner.KERNELSPEC["name"],
            progress_bar=False,
            cwd=str(tmp_path),
        )
    assert info.value.ename == "DataError"
    assert "parameter cv_folds = 'abc' is not a number: give an integer >= 2" in info.value.evalue
    assert info.value.traceback == [f"DataError: {info.value.evalue}"]
