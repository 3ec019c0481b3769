"""Sweeps: a grid of one notebook template's parameters, one papermill execution per point, on Dask.

A grid file (YAML) names the sweep, the template (``03_optimizer`` by default), the parameters every
point shares (``fixed``) and the grid: every combination of the ``grid`` axes is one point, and
``points`` adds explicit ones. Every value is checked against the template's parameters (its type, and
the range of the parameters mcalc knows: a positive learning rate, whole epochs, ...) before anything
runs, and a grid is capped at :data:`MAX_POINTS` points. Each point is one task on Dask distributed (a
``LocalCluster`` by default, or a running scheduler ``tcp://HOST:8786``), or runs here
(``scheduler='serial'``). Layout under ``<results_dir>/sweeps/<name>/``:

- ``records/<key>.json`` the record of a finished point: its parameters, the run the template saved,
  the executed notebook's path and a digest of its own content (a damaged or edited record is not a
  finished point: it runs again and is replaced). ``records/<key>.failed.json``: a point that failed
  twice (Dask retries a task once), with its error.
- ``runs/<key>.json`` the run record the template wrote (``run_record``), ``notebooks/<key>.ipynb``
  the executed notebook (its figures inside), ``files/<key>/`` any other file the point wrote.
- ``sweep.json`` the points of the latest run of the grid, in grid order: what readers show (older
  records stay, so changing the grid back resumes them).

**No shared file system needed** (the default): the client ships a point's template, parameters and
the files of the results folder it reads (``inputs``: the manifest, provenance and cached features;
one copy scattered to every worker, not one per point) through Dask; the worker writes them to its own
scratch folder, executes the notebook there and returns the run record, the executed notebook and any
file the point wrote as data, which the client writes under its own results folder. With
``shared_fs=True`` (``mcalc sweep --shared-fs``) workers instead read the inputs and write the records
at the client's paths (one machine, or a shared file system).

A point's key is the hash of mcalc's source files (:func:`mcalc.records.cache.source_digest`, as for the
book's notebooks), of the template's text, of its parameters (paths aside) and of the bytes of the
study inputs it reads, from the results folder that point reads (a grid overriding ``results_dir``
keys its points by that folder's files), so re-running a sweep skips the points already recorded (an
interrupted sweep resumes) and a changed template, parameter, input or edit of mcalc's code runs again
(``force=True``, ``mcalc sweep --force``, runs every point again and replaces its records).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import itertools
import json
import logging
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mcalc.errors import DataError
from mcalc.records import cache
from mcalc.records.cache import cache_key, file_digest
from mcalc.records.fsio import write_bytes, write_text
from mcalc.records.results import FEATURES, FEATURES_META, MANIFEST, PROVENANCE
from mcalc.records.sweeps import (
    INDEX,
    finished,
    read_record,
    record_path,
    store_record,
    sweep_dir,
    write_replace,
)
from mcalc.run.pipeline import (
    KERNEL_LOG,
    KERNELSPEC,
    Profile,
    find_notebook_dir,
    logged_kernel,
    run_profile,
    template_to_ipynb,
)

DEFAULT_TEMPLATE = "03_optimizer"
RECORD_PARAMETER = "run_record"  # the template parameter naming where it saves its run's JSON
PATH_PARAMETERS = ("data_root", "results_dir", "cache_dir")
# What the optimizer template reads from the results folder (notebooks 01 and 02 write them).
STUDY_INPUTS = (MANIFEST, PROVENANCE, FEATURES, FEATURES_META)
#: The most points one grid may expand to (a day of points at ~10 s each): split a larger study.
MAX_POINTS = 10_000
#: The most values a grid file may hold once its YAML aliases are expanded (an alias bomb is refused).
MAX_GRID_VALUES = 100_000
MAX_GRID_BYTES = 1 << 20  # a grid file is a few lines; a larger one is not a grid
#: The Dask worker resource a point that fine-tunes the backbone asks for (``dask worker --resources GPU=1``).
GPU_RESOURCE = "GPU"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_GRID_KEYS = {"name", "template", "fixed", "grid", "points", "inputs"}
_SCALARS = (type(None), bool, int, float, str)


def count_values(obj: object, budget: int = MAX_GRID_VALUES) -> int:
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
            count_values(d)
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


def parameter_checks() -> dict[str, Callable[[object], object]]:
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


def check_value(
    name: str,
    value: object,
    default: object,
    source: str,
    checks: dict[str, Callable[[object], object]] | None = None,
) -> object:
    """A grid value as the template takes it, checked; DataError naming the parameter and what it accepts.

    YAML reads ``1e-4`` as text: a parameter whose default is a number takes such text as the number
    it spells. Non-finite numbers (``.inf``, ``.nan``) and lists or mappings are refused for every
    parameter; a parameter mcalc knows is checked against its range (:func:`parameter_checks`).
    """
    checks = parameter_checks() if checks is None else checks
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


@dataclass(frozen=True)
class SweepPoint:
    """One task: the template's text, every parameter (paths absolute), and where the records go."""

    key: str
    axes: dict  # the values that make this point (grid axes and explicit point)
    parameters: dict
    template: str
    notebook_json: str  # the template converted to .ipynb
    out_dir: str  # absolute: <results_dir>/sweeps/<name>
    gpus: int = 0  # on a LocalCluster with GPUs: one GPU per worker
    inputs: str = ""  # the key of the input files it reads (one bundle shipped per distinct key)
    input_files: tuple[str, ...] = ()  # those files, relative to its results_dir
    sources: str = (
        ""  # the digest of the client's mcalc sources (its key's): a worker must run the same
    )

    @property
    def needs_gpu(self) -> bool:
        """A point that fine-tunes the backbone (``train_backbone`` other than none): a GPU worker's."""
        return self.parameters.get("train_backbone", "none") not in (None, "none")


@dataclass
class SweepSummary:
    """What a sweep did: points run now, points already recorded, and the failed ones with their errors."""

    name: str
    out_dir: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """A few lines: counts, then one line per failed point."""
        total = len(self.ran) + len(self.skipped) + len(self.failed)
        lines = [
            f"sweep {self.name}: {total} points, {len(self.ran)} run, "
            f"{len(self.skipped)} already done, {len(self.failed)} failed -> {self.out_dir}"
        ]
        lines += [f"  failed {key[:12]}: {error}" for key, error in self.failed.items()]
        return "\n".join(lines)


def template_parameters(notebook: Path) -> dict:
    """The parameters a converted template declares (papermill's own reading), with their literal defaults."""
    import papermill

    declared = {}
    for name, spec in papermill.inspect_notebook(str(notebook)).items():
        try:
            declared[name] = ast.literal_eval(spec.get("default") or "None")
        except (ValueError, SyntaxError):
            declared[name] = None
    return declared


def grid_points(spec: GridSpec) -> list[dict]:
    """Every combination of the grid's axes, then the explicit points (duplicates kept)."""
    axes = list(spec.grid)
    combos = [dict(zip(axes, values)) for values in itertools.product(*spec.grid.values())]
    return ([] if not axes else combos) + [dict(p) for p in spec.points]


def point_key(template_text: str, parameters: dict, input_digests: dict, sources: str) -> str:
    """The content key of a point: mcalc's sources digest, template text, parameters (paths aside), input digests."""
    keyed = {k: v for k, v in parameters.items() if k not in PATH_PARAMETERS}
    return cache_key(
        sources,
        template_text,
        json.dumps(keyed, sort_keys=True, default=str),
        json.dumps(input_digests, sort_keys=True),
    )


def input_digests(spec: GridSpec, results_dir: Path) -> dict[str, str]:
    """sha256 of each input file of the results folder; a missing one raises DataError."""
    missing = [name for name in spec.inputs if not (results_dir / name).is_file()]
    if missing:
        raise DataError(
            f"the sweep's inputs {missing} are not in {results_dir}: run notebooks 01 and 02 first"
        )
    return {name: file_digest(results_dir / name) for name in spec.inputs}


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
        declared = template_parameters(ipynb)
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
    checks = parameter_checks()

    def check(name: str, value: object) -> object:
        return check_value(name, value, declared[name], source, checks)

    fixed = {k: check(k, v) for k, v in spec.fixed.items()}
    grid = {axis: [check(axis, v) for v in values] for axis, values in spec.grid.items()}
    points = [{k: check(k, v) for k, v in p.items()} for p in spec.points]
    checked = GridSpec(spec.name, grid, tuple(points), fixed, spec.template, spec.inputs)
    return [(axes, fixed) for axes in grid_points(checked)]


def validate(spec: GridSpec, notebook_dir: Path | None = None) -> Template:
    """Check a grid against its template (names, types, ranges) before anything is run or written."""
    template = load_template(spec, notebook_dir)
    checked_points(spec, template)
    return template


def expand(
    spec: GridSpec,
    profile: Profile,
    notebook_dir: Path | None = None,
    gpus: int = 0,
) -> list[SweepPoint]:
    """The sweep's distinct points (a duplicate grid point is one point), checked against the template.

    Each point is keyed by the input files of the results folder it reads: the profile's, or the
    one a grid's ``results_dir`` names (so a point on other data is another point).
    """
    template = load_template(spec, notebook_dir)
    base = {k: v for k, v in profile.parameters().items() if k in template.declared}
    sources = cache.source_digest()
    out_dir = sweep_dir(profile.results_dir, spec.name).resolve()
    digests: dict[Path, tuple[str, dict]] = {}
    points: dict[str, SweepPoint] = {}
    for axes, fixed in checked_points(spec, template):
        params = {**base, **fixed, **axes}
        for name in PATH_PARAMETERS:
            if name in params:
                params[name] = str(Path(params[name]).resolve())
        reads = Path(params.get("results_dir", profile.results_dir)).resolve()
        if reads not in digests:
            files = input_digests(spec, reads)
            digests[reads] = (cache_key(json.dumps(files, sort_keys=True)), files)
        inputs_key, files = digests[reads]
        key = point_key(template.text, params, files, sources)
        points.setdefault(
            key,
            SweepPoint(
                key,
                axes,
                params,
                spec.template,
                template.notebook_json,
                str(out_dir),
                gpus,
                inputs_key,
                tuple(spec.inputs),
                sources,
            ),
        )
    return list(points.values())


@contextmanager
def _visible_gpu(point: SweepPoint) -> Iterator[None]:
    """On a LocalCluster with GPUs, show the kernel only its worker's GPU (one task per worker)."""
    if not point.gpus:
        yield
        return
    from distributed import get_worker

    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = str(int(get_worker().name) % point.gpus)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


def input_bundle(point: SweepPoint) -> dict:
    """What a worker without the client's files needs of a point's results folder: its input files' bytes."""
    results_dir = Path(point.parameters.get("results_dir", "."))
    return {
        "key": point.inputs,
        "files": {name: (results_dir / name).read_bytes() for name in point.input_files},
    }


def _worker() -> object | None:
    """The Dask worker running this task, or None outside a worker."""
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def scratch_dir() -> Path:
    """A folder of this worker's own (its Dask local directory; the system's temporary folder elsewhere)."""
    worker = _worker()
    folder = Path(worker.local_directory if worker is not None else tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def materialise(bundle: dict) -> Path:
    """A worker-local results folder holding a bundle's files, written once per worker and bundle."""
    folder = scratch_dir() / "mcalc-inputs" / bundle["key"]
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{bundle['key'][:12]}.", dir=folder.parent))
    for name, data in bundle["files"].items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_bytes(data)
    try:
        staging.rename(folder)  # whole, or another task of this worker got there first
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


@functools.cache
def own_sources() -> str:
    """This process's mcalc source digest (computed once per process)."""
    return cache.source_digest()


def check_sources(point: SweepPoint) -> None:
    """DataError when this process's mcalc is not the client's (its record would claim the wrong code)."""
    if not point.sources:
        return
    mine = own_sources()
    if mine != point.sources:
        raise DataError(
            f"the mcalc on {socket.gethostname()} differs from the client's (source digest "
            f"{mine[:12]}, not {point.sources[:12]}): install the same mcalc on every worker"
        )


def _worker_pool() -> object | None:
    """The warm kernels of the Dask worker running this task, when the sweep gave it some."""
    worker = _worker()
    if worker is None:
        return None
    from mcalc.run.warm import KernelPool

    return worker.plugins.get(KernelPool.name)


@contextmanager
def point_kernel(
    pool: object | None, work: Path, cwd: Path
) -> Iterator[tuple[object, Callable, int]]:
    """A kernel for one point working in ``cwd``: a warm one of ``pool``, else a fresh one shut down
    after; with a function giving the kernel's output during the point, and the points it ran before."""
    if pool is None:
        log = work / KERNEL_LOG
        with logged_kernel(log, cwd) as km:
            yield km, lambda: log.read_text(errors="replace") if log.exists() else "", 0
        return
    with pool.kernel(cwd) as (km, log, start, uses):

        def read() -> str:
            with open(log, "rb") as fh:
                fh.seek(start)
                return fh.read().decode(errors="replace")

        yield km, read, uses


def execute_point(
    point: SweepPoint, bundle: dict | None = None, pool: object | None = None
) -> dict:
    """Execute one point's notebook with papermill in a scratch folder; its record and outputs as data.

    With a ``bundle`` (:func:`input_bundle`) the point reads that worker-local copy of its inputs,
    never the client's results folder; without one it reads the paths in its parameters (a shared
    file system, or this machine). It runs in a warm kernel of ``pool`` (or of the Dask worker's
    :class:`mcalc.run.warm.KernelPool`) when there is one, else in a fresh kernel. Returns the record
    (unsealed), the executed notebook's text, the kernel's log and every other file the point wrote
    (``files``: name -> bytes).
    """
    import papermill

    check_sources(point)
    params = dict(point.parameters)
    if bundle is not None:
        if "data_root" in params:
            raise DataError(
                f"template {point.template} reads the data root, which is not shipped to workers: "
                "run this sweep with a shared file system (--shared-fs)"
            )
        params["results_dir"] = str(materialise(bundle))
        if "cache_dir" in params:
            params["cache_dir"] = str(scratch_dir() / "mcalc-cache")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mcalc-point-", dir=scratch_dir()) as tmp:
        work = Path(tmp)
        run_file, output = work / "run.json", work / "executed.ipynb"
        params[RECORD_PARAMETER] = str(run_file)
        source = work / "template.ipynb"
        source.write_text(point.notebook_json)
        outputs = work / "outputs"  # the kernel's working folder: what else the point writes
        outputs.mkdir()
        pool = pool if pool is not None else _worker_pool()
        with _visible_gpu(point), point_kernel(pool, work, outputs) as (km, read_log, before):
            papermill.execute_notebook(
                str(source),
                str(output),
                parameters=params,
                kernel_name=KERNELSPEC["name"],
                progress_bar=False,
                log_output=False,
                km=km,
            )
            kernel_log = read_log()
        run = read_record(run_file)
        if run is None:
            raise DataError(f"{point.template} did not write its run record")
        files = {
            p.relative_to(outputs).as_posix(): p.read_bytes()
            for p in sorted(outputs.rglob("*"))
            if p.is_file()
        }
        notebook = output.read_text()
    worker = _worker()
    record = {
        "key": point.key,
        "status": "ok",
        "template": point.template,
        "axes": point.axes,
        "parameters": {k: v for k, v in point.parameters.items() if k not in PATH_PARAMETERS},
        "notebook": f"notebooks/{point.key}.ipynb",
        "run": run,
        "host": socket.gethostname(),
        "worker": str(worker.name) if worker is not None else "",
        "kernel": {"warm": pool is not None, "points_before": before},
        "elapsed_s": round(time.perf_counter() - start, 3),
    }
    return {"record": record, "notebook": notebook, "log": kernel_log, "files": files}


def store_result(result: dict, out_dir: str | Path, force: bool = False) -> dict:
    """Write what a point produced under the sweep's folder (run, executed notebook, files, then its record)."""
    out = Path(out_dir)
    key = result["record"]["key"]
    write_replace(result["record"]["run"], out / "runs" / f"{key}.json")
    write_text(out / "notebooks" / f"{key}.ipynb", result["notebook"])
    for name, data in result["files"].items():
        target = (out / "files" / key / name).resolve()
        if not target.is_relative_to((out / "files" / key).resolve()):
            raise DataError(f"point {key[:12]} returned a file outside its folder: {name}")
        write_bytes(target, data)
    if result["log"]:
        with open(out / "notebooks" / KERNEL_LOG, "a", encoding="utf-8") as fh:
            fh.write(result["log"])
    return store_record(result["record"], out, force=force)


def run_point(point: SweepPoint, force: bool = False, pool: object | None = None) -> dict:
    """Execute one point and write its outputs at the client's paths (a shared file system, or here)."""
    if not force:
        done = read_record(record_path(point.out_dir, point.key))
        if finished(done, point.key):
            return done  # another task of the same key finished first
    return store_result(execute_point(point, pool=pool), point.out_dir, force=force)


def error_text(exc: BaseException) -> str:
    """One line naming a task's error (a notebook's own exception when papermill reports one)."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    text = f"{ename}: {evalue}" if ename else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]


def record_failure(point: SweepPoint, exc: BaseException) -> str:
    """Write a failed point's record (replacing an older failure); returns its error line."""
    error = error_text(exc)
    write_replace(
        {
            "key": point.key,
            "status": "failed",
            "template": point.template,
            "axes": point.axes,
            "error": error,
        },
        record_path(point.out_dir, point.key, failed=True),
    )
    return error


def gpu_count() -> int:
    """GPUs that ``nvidia-smi`` lists (0 when there is none or no driver)."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def default_workers() -> tuple[int, int]:
    """(workers, GPUs) of a LocalCluster: one worker per GPU when there are GPUs, else one per core."""
    gpus = gpu_count()
    if gpus:
        return gpus, gpus
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(), 0


@contextmanager
def dask_client(
    scheduler: str, workers: int = 0, dashboard: bool = True, gpus: int = 0
) -> Iterator:
    """A Dask client: a new LocalCluster (``scheduler='local'``) or a running scheduler's address."""
    from distributed import Client, LocalCluster

    if scheduler != "local":
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(f"cannot connect to the Dask scheduler {scheduler}: {exc}") from exc
        with client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0"
            if dashboard
            else None,  # a free port: no warning when 8787 is taken
            silence_logs=logging.CRITICAL,  # a task's error is in its record; no shutdown chatter
            resources={GPU_RESOURCE: 1} if gpus else None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def gpu_workers(client: object) -> int:
    """The workers of a Dask cluster that declare the GPU resource."""
    workers = client.scheduler_info().get("workers", {}).values()
    return sum(bool(w.get("resources", {}).get(GPU_RESOURCE)) for w in workers)


def _attempt_serially(
    point: SweepPoint, retries: int, force: bool = False, pool: object | None = None
) -> dict:
    """Run a point in this process, retrying a failure ``retries`` times (as Dask does)."""
    for attempt in range(retries + 1):
        try:
            return run_point(point, force=force, pool=pool)
        except Exception:
            if attempt == retries:
                raise
    raise AssertionError("unreachable")


def pending(points: list[SweepPoint]) -> tuple[list[SweepPoint], list[str]]:
    """The points without a whole record of a finished run, and the keys of those with one."""
    todo, done = [], []
    for point in points:
        if finished(read_record(record_path(point.out_dir, point.key)), point.key):
            done.append(point.key)
        else:
            todo.append(point)
    return todo, done


def show_progress(futures: list) -> None:
    """Dask's text progress bar until the futures finish, on a terminal only: in a log its ticks flood."""
    if not sys.stdout.isatty():
        return
    from distributed import progress as dask_progress

    dask_progress(futures)
    print(flush=True)


def run_sweep(
    spec: GridSpec,
    profile: Profile,
    scheduler: str = "local",
    workers: int = 0,
    progress: bool = True,
    notebook_dir: Path | None = None,
    dashboard: bool = True,
    retries: int = 1,
    force: bool = False,
    shared_fs: bool = False,
    warm: bool = True,
) -> SweepSummary:
    """Run every point not yet recorded (every point with ``force``): on Dask (a LocalCluster or
    ``tcp://HOST:8786``) or, with ``scheduler='serial'``, here.

    On Dask, the workers receive each point's inputs through Dask and return its outputs, which this
    process writes (no shared file system needed); ``shared_fs`` lets workers use the client's paths.
    With ``warm``, each worker (or this process) keeps its notebook kernel from point to point, reset
    between points (:mod:`mcalc.run.warm`); otherwise every point starts a fresh kernel.
    """
    validate(spec, notebook_dir)  # a bad grid fails here: nothing run, no folder made
    results_dir = Path(profile.results_dir)
    if set(STUDY_INPUTS) & set(spec.inputs) and not all(
        (results_dir / name).is_file() for name in spec.inputs
    ):
        print(
            f"[mcalc] preparing the sweep's inputs in {results_dir}: notebooks 01 and 02",
            flush=True,
        )
        run_profile(profile, only=["01_", "02_"], progress=progress)
    gpus = 0
    if scheduler == "local" and not workers:
        workers, gpus = default_workers()
    points = expand(spec, profile, notebook_dir, gpus=gpus)
    todo, done = (list(points), []) if force else pending(points)
    write_index(spec, points, sweep_dir(results_dir, spec.name))
    summary = SweepSummary(spec.name, sweep_dir(results_dir, spec.name), skipped=done)
    if progress:
        print(
            f"[mcalc] sweep {spec.name}: {len(points)} points, {len(done)} already done", flush=True
        )
    if not todo:
        return summary
    if scheduler == "serial":
        with contextlib.ExitStack() as stack:
            pool = None
            if warm:
                from mcalc.run.warm import KernelPool

                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="mcalc-kernels-"))
                pool = stack.enter_context(KernelPool(folder))
            for point in todo:
                try:
                    _attempt_serially(point, retries, force, pool)
                    summary.ran.append(point.key)
                except Exception as exc:
                    summary.failed[point.key] = record_failure(point, exc)
        return summary
    from distributed import as_completed

    with dask_client(scheduler, workers, dashboard, gpus) as client:
        if progress and dashboard and client.dashboard_link:
            print(f"[mcalc] Dask dashboard: {client.dashboard_link}", flush=True)
        route_gpu = gpu_workers(client) > 0
        if warm:
            from mcalc.run.warm import KernelPool

            client.register_plugin(KernelPool())
        futures = {}
        bundles: dict[str, object] = {}
        for p in todo:
            resources = {GPU_RESOURCE: 1} if route_gpu and p.needs_gpu else None
            if shared_fs:
                future = client.submit(
                    run_point,
                    p,
                    force,
                    key=f"mcalc-sweep-{p.key}",
                    retries=retries,
                    resources=resources,
                )
            else:
                if p.inputs not in bundles:  # one copy per worker, not one per point
                    bundles[p.inputs] = client.scatter([input_bundle(p)], broadcast=True)[0]
                future = client.submit(
                    execute_point,
                    p,
                    bundles[p.inputs],
                    key=f"mcalc-sweep-{p.key}",
                    retries=retries,
                    resources=resources,
                )
            futures[future] = p
        if progress:
            show_progress(list(futures))
        for future in as_completed(list(futures)):
            point = futures[future]
            if future.status == "finished":
                if not shared_fs:
                    store_result(future.result(), point.out_dir, force=force)
                summary.ran.append(point.key)
            else:
                summary.failed[point.key] = record_failure(point, future.exception())
        if warm:  # the workers' kernels are shut down, not left holding memory
            with contextlib.suppress(Exception):
                client.unregister_worker_plugin(KernelPool.name)
    order = {p.key: i for i, p in enumerate(points)}
    summary.ran.sort(key=order.get)
    return summary


def write_index(spec: GridSpec, points: list[SweepPoint], out_dir: Path) -> Path:
    """Record which points make the sweep now (in grid order); readers take these, not older records."""
    path = Path(out_dir) / INDEX
    write_replace(
        {
            "name": spec.name,
            "template": spec.template,
            "points": [{"key": p.key, "axes": p.axes} for p in points],
        },
        path,
    )
    return path
