"""Sweeps: a grid of one notebook template's parameters, one papermill execution per point, on Dask.

The grid file and its checks are :mod:`mcalc.run.grid`; a point's key, execution and records,
:mod:`mcalc.run.points`. Each point is one task on Dask distributed (a ``LocalCluster`` by default,
or a running scheduler ``tcp://HOST:8786``; on GPUs, a point that fine-tunes the backbone goes to a
worker declaring the GPU resource), or runs here (``scheduler='serial'``). Layout under
``<results_dir>/sweeps/<name>/``:

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
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mcalc.errors import DataError
from mcalc.records.sweeps import INDEX, finished, read_record, record_path, sweep_dir, write_replace
from mcalc.run.grid import STUDY_INPUTS, GridSpec, validate
from mcalc.run.points import (
    SweepPoint,
    execute_point,
    expand,
    input_bundle,
    record_failure,
    run_point,
    store_result,
)
from mcalc.run.profiles import Profile

__all__ = ["GPU_RESOURCE", "SweepSummary", "show_progress", "run_sweep"]

#: The Dask worker resource a point that fine-tunes the backbone asks for (``dask worker --resources GPU=1``).
GPU_RESOURCE = "GPU"


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


def _gpu_count() -> int:
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


def _default_workers() -> tuple[int, int]:
    """(workers, GPUs) of a LocalCluster: one worker per GPU when there are GPUs, else one per core."""
    gpus = _gpu_count()
    if gpus:
        return gpus, gpus
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(), 0


@contextmanager
def _dask_client(
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


def _gpu_workers(client: object) -> int:
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


def _pending(points: list[SweepPoint]) -> tuple[list[SweepPoint], list[str]]:
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
    prepare: Callable[[Profile, bool], object] | None = None,
) -> SweepSummary:
    """Run every point not yet recorded (every point with ``force``): on Dask (a LocalCluster or
    ``tcp://HOST:8786``) or, with ``scheduler='serial'``, here.

    On Dask, the workers receive each point's inputs through Dask and return its outputs, which this
    process writes (no shared file system needed); ``shared_fs`` lets workers use the client's paths.
    With ``warm``, each worker (or this process) keeps its notebook kernel from point to point, reset
    between points (:mod:`mcalc.run.warm`); otherwise every point starts a fresh kernel.
    Study inputs missing from the results folder are made first by ``prepare(profile, progress)``
    (:func:`mcalc.run.pipeline.prepare_inputs`: notebooks 01 and 02) when it is given; without it, a
    missing input is a DataError naming it.
    """
    validate(spec, notebook_dir)  # a bad grid fails here: nothing run, no folder made
    results_dir = Path(profile.results_dir)
    if (
        prepare is not None
        and set(STUDY_INPUTS) & set(spec.inputs)
        and not all((results_dir / name).is_file() for name in spec.inputs)
    ):
        print(
            f"[mcalc] preparing the sweep's inputs in {results_dir}: notebooks 01 and 02",
            flush=True,
        )
        prepare(profile, progress)
    gpus = 0
    if scheduler == "local" and not workers:
        workers, gpus = _default_workers()
    points = expand(spec, profile, notebook_dir, gpus=gpus)
    todo, done = (list(points), []) if force else _pending(points)
    _write_index(spec, points, sweep_dir(results_dir, spec.name))
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

    with _dask_client(scheduler, workers, dashboard, gpus) as client:
        if progress and dashboard and client.dashboard_link:
            print(f"[mcalc] Dask dashboard: {client.dashboard_link}", flush=True)
        route_gpu = _gpu_workers(client) > 0
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


def _write_index(spec: GridSpec, points: list[SweepPoint], out_dir: Path) -> Path:
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
