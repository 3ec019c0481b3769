"""Sweeps: a grid of one notebook template's parameters, one papermill execution per point, on Dask.

A grid file (YAML) names the sweep, the template (``03_optimizer`` by default), the parameters every
point shares (``fixed``) and the grid: every combination of the ``grid`` axes is one point, and
``points`` adds explicit ones. Each point is submitted as one task to Dask distributed (a
``LocalCluster`` by default, or a running scheduler); the task executes the template with papermill
and writes the point's record. Layout under ``<results_dir>/sweeps/<name>/``:

- ``records/<key>.json`` the record of a finished point: its parameters, the run the template saved
  and the executed notebook's path; written atomically, the first writer wins (concurrent tasks of
  the same key cannot clobber each other). ``records/<key>.failed.json``: a point that failed twice
  (Dask retries a task once), with its error.
- ``runs/<key>.json`` the run record the template wrote (``run_record``), ``notebooks/<key>.ipynb``
  the executed notebook.
- ``sweep.json`` the points of the latest run of the grid, in grid order: what readers show (older
  records stay, so changing the grid back resumes them).

A point's key is the hash of mcalc's source files (:func:`mcalc.rebuild.source_digest`, as for the
book's notebooks), of the template's text, of its parameters (paths aside) and of the bytes of the
study inputs it reads, so re-running a sweep skips the points already recorded (an interrupted sweep
resumes) and a changed template, parameter, input or edit of mcalc's code runs again (remove the
sweep's folder to run it afresh anyway). Workers must see the repository and the results folder at
the same paths (one machine, or a shared file system).
"""

from __future__ import annotations

import ast
import itertools
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mcalc import paper, rebuild
from mcalc.cache import cache_key, file_digest
from mcalc.errors import DataError
from mcalc.fsio import atomic_write, write_new
from mcalc.pipeline import (
    KERNEL_LOG,
    KERNELSPEC,
    Profile,
    find_notebook_dir,
    logged_kernel,
    run_profile,
    template_to_ipynb,
)
from mcalc.results import FEATURES, FEATURES_META, MANIFEST, PROVENANCE

SWEEPS = "sweeps"
INDEX = "sweep.json"  # the points of the sweep's latest run, in grid order
DEFAULT_TEMPLATE = "03_optimizer"
RECORD_PARAMETER = "run_record"  # the template parameter naming where it saves its run's JSON
PATH_PARAMETERS = ("data_root", "results_dir", "cache_dir")
# What the optimizer template reads from the results folder (notebooks 01 and 02 write them).
STUDY_INPUTS = (MANIFEST, PROVENANCE, FEATURES, FEATURES_META)
TEST_METRICS = {
    "accuracy": "accuracy",
    "AUC": "auc_pooled",  # the paper's AUC: Keras' pooled (micro) AUC
    "sensitivity at specificity 0.8": "sensitivity_at_spec80",
    "loss": "loss_kl",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_GRID_KEYS = {"name", "template", "fixed", "grid", "points", "inputs"}


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
        unknown = set(d) - _GRID_KEYS
        if unknown:
            raise DataError(
                f"{source}: unknown key(s) {sorted(unknown)}; a grid file has {sorted(_GRID_KEYS)}"
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
    """Read and validate a grid file (YAML); a missing or malformed file raises DataError."""
    import yaml

    from mcalc.errors import yaml_message

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"cannot read the grid file {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataError(yaml_message(path, exc)) from exc  # keeps the line and column
    return GridSpec.from_dict(data, source=str(path))


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


def sweep_dir(results_dir: str | Path, name: str) -> Path:
    """The folder of one sweep's records, runs and executed notebooks."""
    return Path(results_dir) / SWEEPS / name


def record_path(out_dir: str | Path, key: str, failed: bool = False) -> Path:
    """The record of one point (``<key>.failed.json`` for a failed one)."""
    return Path(out_dir) / "records" / f"{key}{'.failed' if failed else ''}.json"


def write_first(obj: dict, path: Path) -> bool:
    """Write JSON atomically unless ``path`` exists (the first writer wins); True when this call wrote it."""
    return write_new(path, lambda fh: json.dump(obj, fh, indent=1, allow_nan=False))


def write_replace(obj: dict, path: Path) -> None:
    """Write JSON atomically, replacing any earlier file."""
    atomic_write(path, lambda fh: json.dump(obj, fh, indent=1, allow_nan=False))


def read_record(path: Path) -> dict | None:
    """A record, or None when absent or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


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


def coerce(name: str, value: object, default: object, source: str) -> object:
    """A grid value as the template takes it: YAML reads 1e-4 as text, the template wants a number."""
    numeric = isinstance(default, int | float) and not isinstance(default, bool)
    if not (numeric and isinstance(value, str)):
        return value
    try:
        return float(value)
    except ValueError:
        raise DataError(f"{source}: {name} must be a number, got {value!r}") from None


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


def expand(
    spec: GridSpec,
    profile: Profile,
    notebook_dir: Path | None = None,
    gpus: int = 0,
) -> list[SweepPoint]:
    """The sweep's distinct points (a duplicate grid point is one point), checked against the template."""
    template_file = Path(notebook_dir or find_notebook_dir()) / f"{spec.template}.py"
    if not template_file.is_file():
        raise DataError(f"sweep {spec.name}: no template {template_file}")
    template_text = template_file.read_text()
    with tempfile.TemporaryDirectory() as tmp:
        ipynb = template_to_ipynb(template_file, Path(tmp) / f"{spec.template}.ipynb")
        declared = template_parameters(ipynb)
        notebook_json = ipynb.read_text()
    if RECORD_PARAMETER not in declared:
        raise DataError(
            f"template {spec.template} declares no {RECORD_PARAMETER!r}: it cannot run in a sweep"
        )
    base = {k: v for k, v in profile.parameters().items() if k in declared}
    for name in [*spec.fixed, *spec.grid, *(k for p in spec.points for k in p)]:
        if name not in declared or name == RECORD_PARAMETER:
            raise DataError(
                f"sweep {spec.name}: {name!r} is not a parameter of {spec.template} "
                f"(its parameters: {', '.join(sorted(set(declared) - {RECORD_PARAMETER}))})"
            )
    results_dir = Path(profile.results_dir)
    digests = input_digests(spec, results_dir)
    sources = rebuild.source_digest()
    out_dir = sweep_dir(results_dir, spec.name).resolve()
    points: dict[str, SweepPoint] = {}
    for axes in grid_points(spec):
        axes = {k: coerce(k, v, declared[k], f"sweep {spec.name}") for k, v in axes.items()}
        fixed = {k: coerce(k, v, declared[k], f"sweep {spec.name}") for k, v in spec.fixed.items()}
        params = {**base, **fixed, **axes}
        for name in PATH_PARAMETERS:
            if name in params:
                params[name] = str(Path(params[name]).resolve())
        key = point_key(template_text, params, digests, sources)
        points.setdefault(
            key,
            SweepPoint(key, axes, params, spec.template, notebook_json, str(out_dir), gpus),
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


def run_point(point: SweepPoint) -> dict:
    """Execute one point's notebook with papermill and write its record (the task each worker runs)."""
    import papermill

    out = Path(point.out_dir)
    done = read_record(record_path(out, point.key))
    if done is not None and done.get("status") == "ok":
        return done  # another task of the same key finished first
    notebooks, runs = out / "notebooks", out / "runs"
    notebooks.mkdir(parents=True, exist_ok=True)
    runs.mkdir(parents=True, exist_ok=True)
    run_file = runs / f"{point.key}.json"
    params = dict(point.parameters)
    for name in PATH_PARAMETERS:
        if name in params:
            params[name] = os.path.relpath(params[name], notebooks)
    params[RECORD_PARAMETER] = os.path.relpath(run_file, notebooks)
    start = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as tmp,
        _visible_gpu(point),
        logged_kernel(
            (notebooks / KERNEL_LOG).resolve()
        ) as km,  # TensorFlow's lines, not the terminal's
    ):
        source = Path(tmp) / f"{point.template}.ipynb"
        source.write_text(point.notebook_json)
        papermill.execute_notebook(
            str(source),
            str(notebooks / f"{point.key}.ipynb"),
            parameters=params,
            kernel_name=KERNELSPEC["name"],
            cwd=str(notebooks),
            progress_bar=False,
            log_output=False,
            km=km,
        )
    run = read_record(run_file)
    if run is None:
        raise DataError(f"{point.template} did not write its run record {run_file.name}")
    record = {
        "key": point.key,
        "status": "ok",
        "template": point.template,
        "axes": point.axes,
        "parameters": {k: v for k, v in point.parameters.items() if k not in PATH_PARAMETERS},
        "notebook": f"notebooks/{point.key}.ipynb",
        "run": run,
        "host": socket.gethostname(),
        "elapsed_s": round(time.perf_counter() - start, 3),
    }
    write_first(record, record_path(out, point.key))
    record_path(out, point.key, failed=True).unlink(missing_ok=True)
    return read_record(record_path(out, point.key)) or record


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
            "notebook": f"notebooks/{point.key}.ipynb",
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
def dask_client(scheduler: str, workers: int = 0, dashboard: bool = True) -> Iterator:
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
            dashboard_address=":8787" if dashboard else None,
            silence_logs=logging.CRITICAL,  # a task's error is in its record; no shutdown chatter
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _attempt_serially(point: SweepPoint, retries: int) -> dict:
    """Run a point in this process, retrying a failure ``retries`` times (as Dask does)."""
    for attempt in range(retries + 1):
        try:
            return run_point(point)
        except Exception:
            if attempt == retries:
                raise
    raise AssertionError("unreachable")


def pending(points: list[SweepPoint]) -> tuple[list[SweepPoint], list[str]]:
    """The points without a finished record, and the keys of those with one."""
    todo, done = [], []
    for point in points:
        record = read_record(record_path(point.out_dir, point.key))
        if record is not None and record.get("status") == "ok":
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
) -> SweepSummary:
    """Run every point not yet recorded: on Dask (a LocalCluster or ``tcp://HOST:8786``) or, with ``scheduler='serial'``, here."""
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
    todo, done = pending(points)
    write_index(spec, points, sweep_dir(results_dir, spec.name))
    summary = SweepSummary(spec.name, sweep_dir(results_dir, spec.name), skipped=done)
    if progress:
        print(
            f"[mcalc] sweep {spec.name}: {len(points)} points, {len(done)} already done", flush=True
        )
    if not todo:
        return summary
    if scheduler == "serial":
        for point in todo:
            try:
                _attempt_serially(point, retries)
                summary.ran.append(point.key)
            except Exception as exc:
                summary.failed[point.key] = record_failure(point, exc)
        return summary
    from distributed import wait

    with dask_client(scheduler, workers, dashboard) as client:
        if progress and dashboard and client.dashboard_link:
            print(f"[mcalc] Dask dashboard: {client.dashboard_link}", flush=True)
        futures = [
            client.submit(run_point, p, key=f"mcalc-sweep-{p.key}", retries=retries) for p in todo
        ]
        if progress:
            show_progress(futures)
        wait(futures)
        for point, future in zip(todo, futures):
            if future.status == "finished":
                summary.ran.append(point.key)
            else:
                summary.failed[point.key] = record_failure(point, future.exception())
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


def load_sweep(results_dir: str | Path, name: str) -> tuple[list[dict], list[dict]]:
    """The finished records of a sweep's current points (grid order), and the failed or missing ones."""
    out_dir = sweep_dir(results_dir, name)
    index = read_record(out_dir / INDEX)
    if index is None:
        raise DataError(f"no sweep {name!r} in {out_dir.parent}: run it first (mcalc sweep)")
    done, missing = [], []
    for point in index["points"]:
        record = read_record(record_path(out_dir, point["key"]))
        if record is not None and record.get("status") == "ok":
            done.append(record)
        else:
            failed = read_record(record_path(out_dir, point["key"], failed=True))
            missing.append(failed or {**point, "status": "not run", "error": "not run"})
    return done, missing


def load_runs(results_dir: str | Path, name: str, allow_missing: bool = False) -> pd.DataFrame:
    """One row per point of a sweep: its axes (optimizer as the paper spells it) and test metrics."""
    done, missing = load_sweep(results_dir, name)
    if missing and not allow_missing:
        errors = "; ".join(f"{r['axes']}: {r['error']}" for r in missing[:3])
        raise DataError(f"sweep {name}: {len(missing)} point(s) failed or not run ({errors})")
    if not done:
        raise DataError(f"sweep {name}: no point has finished yet")
    rows = []
    for record in done:
        row = dict(record["axes"])
        if "optimizer" in row:
            row["optimizer"] = paper.PAPER_OPTIMIZER_NAMES.get(row["optimizer"], row["optimizer"])
        test = record["run"]["test"]
        for label, field_ in TEST_METRICS.items():
            low, high = test.get("ci", {}).get(field_) or (None, None)
            row.update({label: test[field_], f"{label} low": low, f"{label} high": high})
        rows.append(row)
    return pd.DataFrame(rows).astype({m: float for m in metric_columns()})


def metric_columns() -> list[str]:
    """The metric columns of :func:`load_runs`: each test metric and its interval's bounds."""
    return [c for m in TEST_METRICS for c in (m, f"{m} low", f"{m} high")]


def grid_axes(runs: pd.DataFrame) -> list[str]:
    """The axes of a :func:`load_runs` frame that take more than one value."""
    return [c for c in runs.columns if c not in metric_columns() and runs[c].nunique() > 1]


def runs_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per point, indexed by its axes: each test metric as 'value [low, high]' (the bootstrap's 95% CI)."""

    def cell(value: float, low: float, high: float) -> str:
        if pd.isna(value):
            return "—"
        return f"{value:.3f}" if pd.isna(low) else f"{value:.3f} [{low:.3f}, {high:.3f}]"

    axes = [c for c in runs.columns if c not in metric_columns()]
    table = pd.DataFrame(
        {m: [cell(*r) for r in runs[[m, f"{m} low", f"{m} high"]].to_numpy()] for m in TEST_METRICS}
    )
    table.index = pd.MultiIndex.from_frame(runs[axes]) if len(axes) > 1 else runs[axes[0]]
    return table
