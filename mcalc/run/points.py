"""A sweep's points: each keyed by content, executed with papermill (on a Dask worker or here), its outputs stored.

A point's key is the hash of mcalc's source files (:func:`mcalc.records.cache.source_digest`, as for the
book's notebooks), of the template's text, of its parameters (paths aside) and of the bytes of the
study inputs it reads, from the results folder that point reads (a grid overriding ``results_dir``
keys its points by that folder's files), so re-running a sweep skips the points already recorded (an
interrupted sweep resumes) and a changed template, parameter, input or edit of mcalc's code runs again
(``force=True``, ``mcalc sweep --force``, runs every point again and replaces its records).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mcalc.errors import DataError
from mcalc.records import cache
from mcalc.records.cache import cache_key, file_digest
from mcalc.records.fsio import write_bytes, write_text
from mcalc.records.sweeps import (
    finished,
    read_record,
    record_path,
    store_record,
    sweep_dir,
    write_replace,
)
from mcalc.run.grid import RECORD_PARAMETER, GridSpec, checked_points, load_template
from mcalc.run.profiles import Profile
from mcalc.run.runner import KERNEL_LOG, KERNELSPEC, logged_kernel

__all__ = [
    "PATH_PARAMETERS",
    "SweepPoint",
    "expand",
    "input_bundle",
    "check_sources",
    "execute_point",
    "store_result",
    "run_point",
    "record_failure",
]

PATH_PARAMETERS = ("data_root", "results_dir", "cache_dir")


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


def _point_key(template_text: str, parameters: dict, _input_digests: dict, sources: str) -> str:
    """The content key of a point: mcalc's sources digest, template text, parameters (paths aside), input digests."""
    keyed = {k: v for k, v in parameters.items() if k not in PATH_PARAMETERS}
    return cache_key(
        sources,
        template_text,
        json.dumps(keyed, sort_keys=True, default=str),
        json.dumps(_input_digests, sort_keys=True),
    )


def _input_digests(spec: GridSpec, results_dir: Path) -> dict[str, str]:
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
            files = _input_digests(spec, reads)
            digests[reads] = (cache_key(json.dumps(files, sort_keys=True)), files)
        inputs_key, files = digests[reads]
        key = _point_key(template.text, params, files, sources)
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


def _scratch_dir() -> Path:
    """A folder of this worker's own (its Dask local directory; the system's temporary folder elsewhere)."""
    worker = _worker()
    folder = Path(worker.local_directory if worker is not None else tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _materialise(bundle: dict) -> Path:
    """A worker-local results folder holding a bundle's files, written once per worker and bundle."""
    folder = _scratch_dir() / "mcalc-inputs" / bundle["key"]
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
def _own_sources() -> str:
    """This process's mcalc source digest (computed once per process)."""
    return cache.source_digest()


def check_sources(point: SweepPoint) -> None:
    """DataError when this process's mcalc is not the client's (its record would claim the wrong code)."""
    if not point.sources:
        return
    mine = _own_sources()
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
def _point_kernel(
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
        params["results_dir"] = str(_materialise(bundle))
        if "cache_dir" in params:
            params["cache_dir"] = str(_scratch_dir() / "mcalc-cache")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mcalc-point-", dir=_scratch_dir()) as tmp:
        work = Path(tmp)
        run_file, output = work / "run.json", work / "executed.ipynb"
        params[RECORD_PARAMETER] = str(run_file)
        source = work / "template.ipynb"
        source.write_text(point.notebook_json)
        outputs = work / "outputs"  # the kernel's working folder: what else the point writes
        outputs.mkdir()
        pool = pool if pool is not None else _worker_pool()
        with _visible_gpu(point), _point_kernel(pool, work, outputs) as (km, read_log, before):
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


def _error_text(exc: BaseException) -> str:
    """One line naming a task's error (a notebook's own exception when papermill reports one)."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    text = f"{ename}: {evalue}" if ename else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]


def record_failure(point: SweepPoint, exc: BaseException) -> str:
    """Write a failed point's record (replacing an older failure); returns its error line."""
    error = _error_text(exc)
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
