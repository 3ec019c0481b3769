"""Grid files: a sweep's template, fixed parameters, axes and points, read and checked before anything runs.

A grid file (YAML) names the sweep, the template (``03_optimizer`` by default), the parameters every
point shares (``fixed``) and the grid: every combination of the ``grid`` axes is one point, and
``points`` adds explicit ones. Every value is checked against the template's parameters (its type, and
the range of the parameters mcalc knows: a positive learning rate, whole epochs, ...) before anything
runs, and a grid is capped at :data:`MAX_POINTS` points.
"""

from __future__ import annotations

import ast
import itertools
import math
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mcalc.errors import DataError
from mcalc.records.results import FEATURES, FEATURES_META, MANIFEST, PROVENANCE
from mcalc.run.runner import find_notebook_dir, template_to_ipynb

__all__ = [
    "DEFAULT_TEMPLATE",
    "RECORD_PARAMETER",
    "STUDY_INPUTS",
    "MAX_POINTS",
    "MAX_GRID_VALUES",
    "MAX_GRID_BYTES",
    "GridSpec",
    "read_grid",
    "Template",
    "load_template",
    "checked_points",
    "validate",
]

DEFAULT_TEMPLATE = "03_optimizer"
RECORD_PARAMETER = "run_record"  # the template parameter naming where it saves its run's JSON
# What the optimizer template reads from the results folder (notebooks 01 and 02 write them).
STUDY_INPUTS = (MANIFEST, PROVENANCE, FEATURES, FEATURES_META)
#: The most points one grid may expand to (a day of points at ~10 s each): split a larger study.
MAX_POINTS = 10_000
#: The most values a grid file may hold once its YAML aliases are expanded (an alias bomb is refused).
MAX_GRID_VALUES = 100_000
MAX_GRID_BYTES = 1 << 20  # a grid file is a few lines; a larger one is not a grid
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_GRID_KEYS = {"name", "template", "fixed", "grid", "points", "inputs"}
_SCALARS = (type(None), bool, int, float, str)


def _count_values(obj: object, budget: int = MAX_GRID_VALUES) -> int:
    """The values of a parsed grid (mapping keys and leaves, shared references counted each time
    they are used); DataError as soon as there are more than ``budget`` (a YAML alias bomb)."""
    count, stack = 0, [obj]
    while stack:
        item = stack.pop()
        count += 1
        if count > budget:
            raise DataError(
                f"it holds more than {budget:,} values once its YAML aliases are expanded: "
                "write the grid out plainly"
            )
        if isinstance(item, dict):
            count += len(item)
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return count


@dataclass(frozen=True)
class GridSpec:
    """A sweep: the template, the parameters every point shares, the axes and any explicit points."""

    name: str
    grid: dict = field(default_factory=dict)  # axis -> list of values; every combination is a point
    points: tuple = ()  # explicit points (dicts of parameters), added to the grid's
    fixed: dict = field(default_factory=dict)  # parameters of every point (over the profile's)
    template: str = DEFAULT_TEMPLATE
    inputs: tuple[str, ...] = STUDY_INPUTS  # results_dir files whose bytes key the points

    @classmethod
    def from_dict(cls, d: object, source: str = "grid") -> GridSpec:
        """A validated spec from a parsed grid file; a malformed one raises DataError naming ``source``."""
        if not isinstance(d, dict):
            raise DataError(
                f"{source}: a grid file is a mapping with 'name' and 'grid' (or 'points')"
            )
        try:
            _count_values(d)
        except DataError as exc:
            raise DataError(f"{source}: {exc}") from None
        unknown = set(d) - _GRID_KEYS
        if unknown:
            raise DataError(
                f"{source}: unknown key(s) {sorted(map(str, unknown))}; a grid file has {sorted(_GRID_KEYS)}"
            )
        name = d.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise DataError(
                f"{source}: 'name' must be a plain name (letters, digits, '_', '.', '-'), got {name!r}"
            )
        grid, points, fixed = d.get("grid") or {}, d.get("points") or [], d.get("fixed") or {}
        if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
            raise DataError(f"{source}: 'grid' must map each axis to a non-empty list of values")
        if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
            raise DataError(f"{source}: 'points' must be a list of mappings")
        if not isinstance(fixed, dict):
            raise DataError(f"{source}: 'fixed' must be a mapping of parameters")
        if not grid and not points:
            raise DataError(f"{source}: the grid has no points: give 'grid' axes or 'points'")
        n_points = math.prod(len(v) for v in grid.values()) * bool(grid) + len(points)
        if n_points > MAX_POINTS:
            raise DataError(
                f"{source}: the grid expands to {n_points:,} points, more than the {MAX_POINTS:,} "
                "one sweep runs: split it into several grids"
            )
        template = d.get("template", DEFAULT_TEMPLATE)
        if not isinstance(template, str) or not _NAME_RE.match(template):
            raise DataError(f"{source}: 'template' must be a notebook name, got {template!r}")
        inputs = d.get("inputs", list(STUDY_INPUTS))
        if not isinstance(inputs, list) or not all(
            isinstance(i, str) and not Path(i).is_absolute() and ".." not in Path(i).parts
            for i in inputs
        ):
            raise DataError(f"{source}: 'inputs' must list files inside the results folder")
        return cls(
            name=name,
            grid=dict(grid),
            points=tuple(points),
            fixed=dict(fixed),
            template=template,
            inputs=tuple(inputs),
        )


def read_grid(path: str | Path) -> GridSpec:
    """Read and validate a grid file (YAML); a missing, oversized or malformed file raises DataError."""
    import yaml

    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size > MAX_GRID_BYTES:
            raise DataError(
                f"{path}: {path.stat().st_size:,} bytes is not a grid file "
                f"(at most {MAX_GRID_BYTES:,}): list the axes' values, not the points"
            )
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"cannot read the grid file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text file ({exc.reason})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [""])[0]
        raise DataError(f"{path}: not valid YAML{where} ({problem})") from exc
    return GridSpec.from_dict(data, source=str(path))


class _Refused(ValueError):
    """A value a parameter does not accept; the message says what it accepts."""


def _integer(least: int | None) -> Callable[[object], int]:
    """A check: a whole number >= least (any whole number for None; 2.0 is 2, 2.5 is refused, not rounded)."""
    accepted = "a whole number" if least is None else f"a whole number >= {least}"

    def check(value: object) -> int:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and not value.is_integer())
            or (least is not None and int(value) < least)
        ):
            raise _Refused(accepted)
        return int(value)

    return check


def _from_spec(name: str) -> Callable[[object], object]:
    """The check of a parameter with a spec in :mod:`mcalc.run.parameters` (its one definition): a whole
    float (2.0) is the integer it spells where the spec takes integers; 2.5 is refused, not rounded."""
    from mcalc.run.parameters import parameter_spec

    spec = parameter_spec(name)

    def check(value: object) -> object:
        if (
            (
                spec.kind == "int"
                or (spec.kind == "validation" and isinstance(value, float) and value >= 1)
            )
            and isinstance(value, float)
            and value.is_integer()
        ):
            value = int(value)
        if spec.problem(value) is not None:
            raise _Refused(spec.accepted())
        return value

    return check


def _parameter_checks() -> dict[str, Callable[[object], object]]:
    """The check of each notebook parameter mcalc has a spec for (others are checked by their default's type)."""
    from mcalc.run.parameters import SPECS

    return {name: _from_spec(name) for name in SPECS}


def _by_default(default: object) -> Callable[[object], object]:
    """The check of a parameter mcalc has no range for: its default's type (any value for a None default)."""

    def of_type(kinds: tuple[type, ...], accepted: str) -> Callable[[object], object]:
        def check(value: object) -> object:
            if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
                raise _Refused(accepted)
            return value

        return check

    if isinstance(default, bool):
        return of_type((bool,), "true or false")
    if isinstance(default, int):
        return _integer(None)
    if isinstance(default, float):
        return lambda value: float(of_type((int, float), "a finite number")(value))
    if isinstance(default, str):
        return of_type((str,), "a text")
    return lambda value: value


def _check_value(
    name: str,
    value: object,
    default: object,
    source: str,
    checks: dict[str, Callable[[object], object]] | None = None,
) -> object:
    """A grid value as the template takes it, checked; DataError naming the parameter and what it accepts.

    YAML reads ``1e-4`` as text: a parameter whose default is a number takes such text as the number
    it spells. Non-finite numbers (``.inf``, ``.nan``) and lists or mappings are refused for every
    parameter; a parameter mcalc knows is checked against its range (:func:`_parameter_checks`).
    """
    checks = _parameter_checks() if checks is None else checks
    check = checks.get(name, _by_default(default))
    if (
        isinstance(value, str)
        and isinstance(default, int | float)
        and not isinstance(default, bool)
    ):
        try:
            value = float(value)
        except ValueError:
            pass  # refused below, by the check
    try:
        if not isinstance(value, _SCALARS):
            raise _Refused("a single value (not a list or a mapping)")
        if isinstance(value, float) and not math.isfinite(value):
            raise _Refused("a finite value")
        return check(value)
    except _Refused as exc:
        raise DataError(f"{source}: {name} = {value!r} is refused: give {exc}") from None


def _template_parameters(notebook: Path) -> dict:
    """The parameters a converted template declares (papermill's own reading), with their literal defaults."""
    import papermill

    declared = {}
    for name, spec in papermill.inspect_notebook(str(notebook)).items():
        try:
            declared[name] = ast.literal_eval(spec.get("default") or "None")
        except (ValueError, SyntaxError):
            declared[name] = None
    return declared


def _grid_points(spec: GridSpec) -> list[dict]:
    """Every combination of the grid's axes, then the explicit points (duplicates kept)."""
    axes = list(spec.grid)
    combos = [dict(zip(axes, values)) for values in itertools.product(*spec.grid.values())]
    return ([] if not axes else combos) + [dict(p) for p in spec.points]


@dataclass(frozen=True)
class Template:
    """A template as a sweep runs it: its text, its .ipynb and its declared parameters with defaults."""

    name: str
    text: str
    notebook_json: str
    declared: dict


def load_template(spec: GridSpec, notebook_dir: Path | None = None) -> Template:
    """The sweep's template, converted; DataError when absent or without a run record parameter."""
    template_file = Path(notebook_dir or find_notebook_dir()) / f"{spec.template}.py"
    if not template_file.is_file():
        raise DataError(f"sweep {spec.name}: no template {template_file}")
    with tempfile.TemporaryDirectory() as tmp:
        ipynb = template_to_ipynb(template_file, Path(tmp) / f"{spec.template}.ipynb")
        declared = _template_parameters(ipynb)
        notebook_json = ipynb.read_text()
    if RECORD_PARAMETER not in declared:
        raise DataError(
            f"template {spec.template} declares no {RECORD_PARAMETER!r}: it cannot run in a sweep"
        )
    return Template(spec.template, template_file.read_text(), notebook_json, declared)


def checked_points(spec: GridSpec, template: Template) -> list[tuple[dict, dict]]:
    """Every point's grid values (axes, then the fixed parameters), each checked against the template."""
    declared, source = template.declared, f"sweep {spec.name}"
    for name in [*spec.fixed, *spec.grid, *(k for p in spec.points for k in p)]:
        if name not in declared or name == RECORD_PARAMETER:
            raise DataError(
                f"{source}: {name!r} is not a parameter of {spec.template} "
                f"(its parameters: {', '.join(sorted(set(declared) - {RECORD_PARAMETER}))})"
            )
    checks = _parameter_checks()

    def check(name: str, value: object) -> object:
        return _check_value(name, value, declared[name], source, checks)

    fixed = {k: check(k, v) for k, v in spec.fixed.items()}
    grid = {axis: [check(axis, v) for v in values] for axis, values in spec.grid.items()}
    points = [{k: check(k, v) for k, v in p.items()} for p in spec.points]
    checked = GridSpec(spec.name, grid, tuple(points), fixed, spec.template, spec.inputs)
    return [(axes, fixed) for axes in _grid_points(checked)]


def validate(spec: GridSpec, notebook_dir: Path | None = None) -> Template:
    """Check a grid against its template (names, types, ranges) before anything is run or written."""
    template = load_template(spec, notebook_dir)
    checked_points(spec, template)
    return template
