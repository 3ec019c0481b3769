"""Grid files (mcalc.run.grid): malformed files, every value checked against the template, bounded expansion."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from mcalc.errors import DataError
from mcalc.run.cli import main
from mcalc.run.grid import GridSpec, read_grid
from mcalc.run.points import expand
from mcalc.run.profiles import get_profile
from tests.run.helpers import ROOT, fake_spec, make_fake


@pytest.fixture
def fake(tmp_path):
    """(notebook folder holding the fake template, a profile whose results folder is in tmp_path)."""
    return make_fake(tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: a\ngrid: [1, 2\n", "not valid YAML"),
        ("- just\n- a list\n", "a grid file is a mapping"),
        ("name: a\ngird: {seed: [0]}\n", "unknown key"),
        ("name: ../up\ngrid: {seed: [0]}\n", "'name' must be a plain name"),
        ("name: a\ngrid: {seed: 3}\n", "non-empty list"),
        ("name: a\n", "no points"),
        ("name: a\ngrid: {seed: [0]}\ninputs: [../../etc/passwd]\n", "inside the results folder"),
    ],
)
def test_a_bad_grid_file_is_one_clear_error(tmp_path, text, message):
    """Malformed YAML or a malformed grid raises DataError naming the file and the problem."""
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as exc:
        read_grid(path)
    assert str(path) in str(exc.value)


def test_cli_sweep_with_a_bad_grid_exits_2_without_a_traceback(tmp_path, capsys):
    """`mcalc sweep` on a missing or malformed grid file: exit 2 and one line on stderr."""
    assert main(["sweep", str(tmp_path / "absent.yaml"), "--quiet"]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: a\ngrid: {seed: 3}\n")
    assert main(["sweep", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("mcalc sweep:") == 2 and "Traceback" not in err


def test_an_axis_the_template_does_not_declare_is_refused(fake):
    """papermill would ignore an unknown parameter: the sweep refuses it before running anything."""
    notebooks, profile = fake
    with pytest.raises(DataError, match="'learning_rat' is not a parameter of fake"):
        expand(fake_spec(grid={"learning_rat": [1e-3]}), profile, notebooks)


OPTIMIZER_TEMPLATE = ROOT / "notebooks"


def _optimizer_spec(**kw) -> GridSpec:
    """A grid of the optimizer template without study inputs (expansion only)."""
    return replace(GridSpec.from_dict({"name": "bad", **kw}), inputs=())


@pytest.mark.parametrize(
    "axis, value, accepted",
    [
        ("learning_rate", float("inf"), "a finite value"),
        ("learning_rate", float("nan"), "a finite value"),
        ("learning_rate", -1e-3, "a finite number > 0"),
        ("learning_rate", "fast", "a finite number > 0"),
        ("epochs", 2.5, "an integer >= 1"),
        ("epochs", 0, "an integer >= 1"),
        ("image_size", 0, "an integer >= 75 and <= 2048"),
        ("seed", True, "an integer >= 0"),
        ("optimizer", "sgd", "one of adam, adagrad, adadelta, rmsprop"),
        ("train_backbone", "half", "one of none, top, all"),
        ("validation_size", 1.5, "a count of ROIs (an integer >= 1) or a fraction"),
        ("batch_size", [32, 64], "a single value"),
        ("split_seed", -1, "an integer >= 0"),
    ],
)
def test_every_grid_value_is_checked_against_the_template(axis, value, accepted):
    """A value of the wrong type or out of range: DataError naming the parameter, the value and what it takes."""
    profile = get_profile("ci")
    where_ = ({"grid": {axis: [value]}}, {"grid": {"n_boot": [0]}, "fixed": {axis: value}})
    for where in (*where_, {"points": [{axis: value}]}):
        with pytest.raises(DataError, match=f"{axis} = .* is refused: give {re.escape(accepted)}"):
            expand(_optimizer_spec(**where), profile, OPTIMIZER_TEMPLATE)


def test_grid_values_are_taken_as_the_template_takes_them():
    """YAML's 1e-4 (text) is the number; 2.0 epochs are 2; null is the split seed's default; a fraction hold-out."""
    profile = get_profile("ci")
    spec = _optimizer_spec(
        grid={"learning_rate": ["1e-4"], "epochs": [2.0]},
        fixed={"split_seed": None, "validation_size": 0.25},
    )
    (point,) = expand(spec, profile, OPTIMIZER_TEMPLATE)
    assert point.axes == {"learning_rate": 1e-4, "epochs": 2}
    assert isinstance(point.parameters["epochs"], int)
    assert point.parameters["split_seed"] is None and point.parameters["validation_size"] == 0.25


def test_an_unknown_parameter_is_checked_by_its_default_type(fake):
    """A parameter mcalc has no range for takes its default's type: x (an int) refuses text and 1.5."""
    notebooks, profile = fake
    for bad in ("one", 1.5, float("inf")):
        with pytest.raises(DataError, match="x = .* is refused"):
            expand(fake_spec(grid={"x": [bad]}), profile, notebooks)
    with pytest.raises(DataError, match="fail = 'yes' is refused: give true or false"):
        expand(fake_spec(grid={"fail": ["yes"]}), profile, notebooks)


def test_a_grid_of_too_many_points_is_refused_before_it_expands(tmp_path):
    """A million points: one line naming the count and the cap, at once (nothing is expanded)."""
    path = tmp_path / "huge.yaml"
    path.write_text(
        "name: huge\ngrid:\n  seed: [" + ", ".join(map(str, range(1000))) + "]\n"
        "  split_seed: [" + ", ".join(map(str, range(1000))) + "]\n"
    )
    with pytest.raises(DataError, match=r"expands to 1,000,000 points, more than the 10,000"):
        read_grid(path)


def test_a_yaml_alias_bomb_is_refused(tmp_path):
    """Aliases nested to expand to 10^9 values: refused as soon as the count passes the budget."""
    lines = ["name: bomb", "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    lines += ["grid:", "  seed: *a8"]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="more than 100,000 values once its YAML aliases"):
        read_grid(path)


def test_a_yaml_error_names_its_line_and_column(tmp_path):
    """The YAML error keeps where it is."""
    path = tmp_path / "grid.yaml"
    path.write_text("name: a\ngrid: {seed: [0}\n")
    with pytest.raises(DataError, match=r"not valid YAML at line 2, column \d+"):
        read_grid(path)


@pytest.mark.parametrize("value", [".inf", ".nan", "-1e-3"])
def test_cli_sweep_with_a_non_finite_learning_rate_exits_2_and_writes_nothing(
    tmp_path, capsys, value
):
    """`learning_rate: .inf` in a grid: exit 2, one line naming it, no sweep folder, nothing run."""
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"name: bad\ngrid:\n  learning_rate: [1e-4, {value}]\n")
    results = tmp_path / "results"
    code = main(["sweep", str(grid), "--profile", "ci", "--results-dir", str(results), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.count("\n") == 1 and "learning_rate = " in err and "is refused" in err
    assert not results.exists()
