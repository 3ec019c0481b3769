"""Execute the study's notebook templates with papermill, under a named profile (default or ci)."""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from mcalc.errors import DataError, NotebookFailed
from mcalc.paper import (
    BATCH_SIZE,
    EPOCHS,
    IMAGE_SIZE,
    LEARNING_RATE,
    OPTIMIZERS,
    PAPER_OPTIMIZER_NAMES,
    SEARCH_LEARNING_RATES,
    VALIDATION_SIZE,
)
from mcalc.records.results import SENSITIVITY_DIR
from mcalc.study import DEFAULT_TASK, N_BOOT, get_task

NOTEBOOK_DIR = Path("notebooks")
FIRST_TEMPLATE = "01_data_curation.py"
SEED_SWEEP = "seed_variance"  # chapter 7's sweep, under <results_dir>/sweeps/
#: What every chapter's "this run" box names about the build, whether or not the chapter reads it.
RUN_BOX_KEYS = ("data_source", "data_root", "phantom_scale", "weights", "seed")
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


@dataclass(frozen=True)
class SweepSection:
    """How a profile runs its sweeps (chapter 7's optimizer × seed grid, ``mcalc sweep``) on Dask."""

    scheduler: str = "local"  # "local": a LocalCluster here; "serial": no Dask; or tcp://HOST:8786
    workers: int = 0  # LocalCluster workers (0: one per core, or one per GPU when there are GPUs)
    shared_fs: bool = (
        False  # workers use this machine's paths instead of receiving inputs through Dask
    )


@dataclass(frozen=True)
class Profile:
    """A consistent set of parameters for every notebook of one book build."""

    name: str
    data_source: str = "phantom"  # "phantom" or "cbis-ddsm"
    data_root: str = "data/phantom"
    phantom_scale: float = 1.0
    seed: int = 0
    task: str = (
        DEFAULT_TASK  # mcalc.study.TASKS: three-class (the paper), binary-merged, binary-biopsied
    )
    image_size: int = IMAGE_SIZE
    weights: str = "auto"
    epochs: int = EPOCHS
    batch_size: int = BATCH_SIZE
    learning_rate: float = LEARNING_RATE
    #: ROIs held out for validation at the real size (an int), or a fraction of the training split (< 1)
    validation_size: int | float = VALIDATION_SIZE
    n_boot: int = N_BOOT
    cv_folds: int = 10
    n_seeds: int = 5
    #: split seeds per scheme of chapter 6's leakage audit (≥ 2 for an interval on the gap)
    n_split_seeds: int = 10
    #: learning rates of chapter 5's test-selection search (the paper's: 1e-2 to 1e-5)
    selection_learning_rates: tuple[float, ...] = SEARCH_LEARNING_RATES
    results_dir: str = "results"
    cache_dir: str = "cache"
    out_dir: str = "book/executed"
    sweep: SweepSection = SweepSection()

    def validation(self) -> int | float:
        """The validation hold-out: a count scales with the phantom (200 ROIs at scale 1, 20 at 0.1); a fraction does not."""
        if self.data_source == "phantom" and self.validation_size >= 1 and self.phantom_scale != 1:
            return max(1, round(self.validation_size * self.phantom_scale))
        return self.validation_size

    def parameters(self) -> dict:
        """Every value this profile gives the notebooks; each execution receives those its template declares."""
        return {
            "data_source": self.data_source,
            "data_root": self.data_root,
            "phantom_scale": self.phantom_scale,
            "seed": self.seed,
            "task": self.task,
            "image_size": self.image_size,
            "weights": self.weights,
            "results_dir": self.results_dir,
            "cache_dir": self.cache_dir,
            "n_boot": self.n_boot,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "validation_size": self.validation(),
            "cv_folds": self.cv_folds,
            "n_seeds": self.n_seeds,
        }


PROFILES = {
    # The book: the phantom at the real size, the paper's settings.
    "default": Profile(name="default"),
    # CI and nbval: a tiny phantom, small images, few epochs. Each notebook runs in seconds.
    "ci": Profile(
        name="ci",
        data_root="build/ci/data/phantom",
        phantom_scale=0.05,
        image_size=75,
        epochs=3,
        validation_size=0.2,
        n_boot=50,
        cv_folds=3,
        n_seeds=2,
        n_split_seeds=2,
        selection_learning_rates=(1e-3, 1e-4),
        results_dir="build/ci/results",
        cache_dir="build/ci/cache",
        out_dir="build/ci/notebooks",
    ),
}


@dataclass(frozen=True)
class NotebookRun:
    """One papermill execution: which template, the executed notebook's name, its own parameters."""

    template: str
    output: str
    parameters: dict = field(default_factory=dict)
    title: str | None = None  # replaces the template's first heading in the executed notebook
    sweep: dict | None = None  # a grid (as in a GRID.yaml) run on Dask before the notebook reads it
    reads: tuple[
        str, ...
    ] = ()  # glob patterns under results_dir of the files it reads (its build key)
    writes: tuple[
        str, ...
    ] = ()  # glob patterns under results_dir it must leave (else it runs again)
    wave: int = 0  # executions of one wave are independent of each other: they may run concurrently


def sweep_reads(name: str) -> tuple[str, ...]:
    """The files of a sweep its readers depend on (under results_dir): its index and its points' records."""
    from mcalc.records.sweeps import INDEX, SWEEPS, record_path

    return (f"{SWEEPS}/{name}/{INDEX}", record_path(f"{SWEEPS}/{name}", "*").as_posix())


def plan(profile: Profile) -> list[NotebookRun]:
    """The executions that make the book, in order; the optimizer template runs once per optimizer.

    Each names the files under results_dir it reads (its build key) and writes; its wave says what
    must have run before it (01, then 02, then the chapters reading only their outputs, then 05).
    A run's own parameters (the optimizer, …) go beside the profile's (:meth:`Profile.parameters`);
    each execution receives, of both, those its template declares (:func:`notebook_parameters`).
    """
    from mcalc.records.results import FEATURES, FEATURES_META, MANIFEST, PROVENANCE, RUNS

    manifests = (
        MANIFEST.replace(".csv", "*.csv"),
    )  # the manifest, its exclusions and swaps tables
    study = (*manifests, PROVENANCE, FEATURES, FEATURES_META)
    baselines = f"{RUNS}/baseline_*.json"
    cnn = {opt: f"{RUNS}/cnn_{opt}.json" for opt in OPTIMIZERS}
    runs = [
        NotebookRun("01_data_curation", "01_data_curation", writes=(*manifests, PROVENANCE)),
        NotebookRun(
            "02_preprocessing",
            "02_preprocessing",
            reads=manifests,
            writes=(FEATURES, FEATURES_META),
            wave=1,
        ),
    ]
    runs += [
        NotebookRun(
            "03_optimizer",
            f"03_optimizer_{opt}",
            {"optimizer": opt},
            title=f"InceptionResNetV2 with {PAPER_OPTIMIZER_NAMES[opt]} (Section 3.{i}, Figure {3 + i})",
            reads=study,
            writes=(cnn[opt],),
            wave=2,
        )
        for i, opt in enumerate(OPTIMIZERS, start=1)
    ]
    runs += sensitivity_runs(profile, study)
    runs += [
        NotebookRun(
            "04_glcm_baselines",
            "04_glcm_baselines",
            reads=study,
            writes=(baselines,),
            wave=2,
        ),
        NotebookRun(
            "05_comparison",
            "05_comparison",
            {
                "n_seeds": min(profile.n_seeds, 3),
                "sweep_name": SEED_SWEEP,
                "selection_learning_rates": list(profile.selection_learning_rates),
            },
            sweep=seed_sweep(profile),
            reads=(
                *study,
                *cnn.values(),
                baselines,
                f"{SENSITIVITY_DIR}/*.json",
                *sweep_reads(SEED_SWEEP),
            ),
            wave=3,
        ),
        NotebookRun(
            "06_leakage_audit",
            "06_leakage_audit",
            {"n_split_seeds": profile.n_split_seeds},
            reads=study,
            wave=2,
        ),
        NotebookRun(
            "07_seed_variance",
            "07_seed_variance",
            {"sweep_name": SEED_SWEEP},
            sweep=seed_sweep(profile),
            reads=(*study, *sweep_reads(SEED_SWEEP)),
            wave=2,
        ),
        copies_run(profile),
    ]
    return runs


def copies_run(profile: Profile) -> NotebookRun:
    """Chapter 8: its own phantom, written in both layouts, at the profile's phantom scale or the book's
    copies scale (the smaller), its validation hold-out scaled to it; it reads nothing of the other chapters."""
    from mcalc.chapters.copies import BOOK_SCALE, COPIES_FOLDER

    scale = min(profile.phantom_scale, BOOK_SCALE)
    validation = replace(profile, data_source="phantom", phantom_scale=scale).validation()
    return NotebookRun(
        "08_copies",
        "08_copies",
        {"copies_scale": scale, "validation_size": validation},
        writes=(f"{COPIES_FOLDER}/*/runs/baseline_svm.json",),
        wave=2,
    )


def sensitivity_runs(profile: Profile, reads: tuple[str, ...]) -> list[NotebookRun]:
    """The analysis plan's sensitivity analyses that need a run of their own: the optimizer template, other parameters.

    Each saves its record under ``<results_dir>/runs/sensitivity/`` (beside, not among, the four
    primary runs); chapter 5 reports them under their own heading, beside the primary verdict.
    """
    from mcalc.evaluate.plan import SENSITIVITY_ANALYSES

    out = []
    for key, parameters, title in [a for a in SENSITIVITY_ANALYSES if a[1]]:
        record = f"{SENSITIVITY_DIR}/cnn_{key}.json"
        out.append(
            NotebookRun(
                "03_optimizer",
                f"05_sensitivity_{key}",
                {
                    **parameters,
                    "run_record": relative_to_output(
                        str(Path(profile.results_dir) / record), profile.out_dir
                    ),
                },
                title=f"Sensitivity analysis: {title}",
                reads=reads,
                writes=(record,),
                wave=2,
            )
        )
    return out


def seed_sweep(profile: Profile) -> dict:
    """Chapter 7's grid: every optimizer × ``n_seeds`` seeds, all on the profile's one validation split."""
    return {
        "name": SEED_SWEEP,
        "fixed": {"split_seed": profile.seed},
        "grid": {
            "optimizer": list(OPTIMIZERS),
            "seed": [profile.seed + s for s in range(profile.n_seeds)],
        },
    }


def find_notebook_dir() -> Path:
    """The notebook templates' folder: beside the mcalc package (a source checkout), else ./notebooks."""
    beside = Path(__file__).resolve().parents[2] / NOTEBOOK_DIR
    for candidate in (beside, NOTEBOOK_DIR):
        if (candidate / FIRST_TEMPLATE).is_file():
            return candidate
    raise DataError(
        f"notebook templates not found in {beside} nor in {NOTEBOOK_DIR.resolve()}: run mcalc from "
        "a source checkout of the repository (the templates are not part of the installed package)"
    )


def declared(template: str, notebook_dir: Path | None = None) -> set[str]:
    """The names a template's parameters cell declares (lines ``name = ...``; papermill reads the same)."""
    text = (Path(notebook_dir or find_notebook_dir()) / f"{template}.py").read_text()
    cell = text.split('tags=["parameters"]', 1)[-1].split("# %%", 1)[0]
    return set(re.findall(r"^([A-Za-z_]\w*)\s*=", cell, re.MULTILINE))


def relative_to_output(path: str, out_dir: str) -> str:
    """Express a repo-relative path relative to the executed notebook's folder (its kernel's working directory)."""
    return os.path.relpath(path, out_dir)


def notebook_parameters(
    profile: Profile, run: NotebookRun, names: Iterable[str] | None = None
) -> dict:
    """What one execution receives: the profile's and the run's parameters its template declares
    (or those ``names``), paths rewritten for the kernel's working directory."""
    names = declared(run.template) if names is None else set(names)
    params = {k: v for k, v in {**profile.parameters(), **run.parameters}.items() if k in names}
    for key in ("data_root", "results_dir", "cache_dir"):
        if key in params:
            params[key] = relative_to_output(params[key], profile.out_dir)
    return params


def template_to_ipynb(template: Path, target: Path) -> Path:
    """Convert a jupytext percent file to an .ipynb papermill can run (kernel set to this Python)."""
    import jupytext

    nb = jupytext.read(template)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("jupytext", {}).pop("formats", None)
    jupytext.write(nb, target, fmt="ipynb")
    return target


def retitle(path: Path, title: str) -> None:
    """Replace the first markdown heading of an executed notebook (one template, several chapters)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            first, _, rest = cell.source.lstrip().partition("\n")
            cell.source = f"# {title}\n{rest}"
            break
    nbformat.write(nb, path)


KERNEL_LOG = "kernel.log"  # beside the executed notebooks: the kernels' stdout / stderr (TensorFlow, absl, ipykernel)


def kernel_manager(log: Path, cwd: Path | None = None):
    """A kernel manager whose kernel writes its stdout and stderr to ``log`` (appended), run in ``cwd`` if given.

    The kernel's working directory is set at its launch, not by changing this process's (papermill's
    ``cwd``), so that notebooks may execute concurrently in threads.
    """
    from jupyter_client.manager import AsyncKernelManager

    class _LoggingKernelManager(AsyncKernelManager):
        """Launches the kernel with its output streams sent to the log file."""

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            """Launch as usual, the child's stdout / stderr appended to the log."""
            with open(log, "ab") as stream:
                kw.update(stdout=stream, stderr=stream)
                if cwd is not None:
                    kw["cwd"] = str(cwd)
                await super()._async_launch_kernel(kernel_cmd, **kw)

    return _LoggingKernelManager(kernel_name=KERNELSPEC["name"])


@contextmanager
def logged_kernel(log: Path, cwd: Path | None = None) -> Iterator:
    """A :func:`kernel_manager` for one papermill execution, its kernel shut down afterwards.

    papermill leaves running the kernel of a manager it is given: without this, every execution
    would leave a live kernel (TensorFlow loaded, GPU memory held) until this process ends.
    """
    from jupyter_core.utils import run_sync

    km = kernel_manager(log, cwd)
    try:
        yield km
    finally:
        if km.has_kernel:
            run_sync(km.shutdown_kernel)(now=True)


def failure_message(run: NotebookRun, exc: Exception, output: Path, log: Path) -> str:
    """One line for a notebook that failed: which notebook and cell, the error's own message, where to look."""
    cell = getattr(exc, "exec_count", None) or getattr(exc, "cell_index", "?")
    error = getattr(exc, "ename", type(exc).__name__)
    message = " ".join(str(getattr(exc, "evalue", exc)).split())
    return (
        f"notebook {run.output} failed in cell [{cell}]: {error}: {message} "
        f"(executed notebook: {output}; kernel log: {log})"
    )


def execute(
    run: NotebookRun, profile: Profile, notebook_dir: Path | None = None, progress: bool = False
) -> Path:
    """Run one template with papermill into the profile's output folder, kernel output to the log beside it;
    a failing cell raises NotebookFailed (one line); the result is presented for the book."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from mcalc.records.provenance import git_commit
    from mcalc.report.present import present

    out_dir = Path(profile.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{run.output}.ipynb"
    log = out_dir / KERNEL_LOG
    templates = Path(notebook_dir or find_notebook_dir())
    bar = {"desc": run.output, "unit": "cell", "leave": False} if progress else False
    with tempfile.TemporaryDirectory() as tmp:
        source = template_to_ipynb(
            templates / f"{run.template}.py", Path(tmp) / f"{run.template}.ipynb"
        )
        parameters = notebook_parameters(profile, run, declared(run.template, templates))
        try:
            with logged_kernel(log.resolve(), out_dir.resolve()) as km:
                papermill.execute_notebook(
                    str(source),
                    str(output),
                    parameters=parameters,
                    kernel_name=KERNELSPEC["name"],
                    progress_bar=bar,
                    log_output=False,
                    km=km,
                )
        except PapermillExecutionError as exc:
            raise NotebookFailed(failure_message(run, exc, output, log)) from None
    if run.title:
        retitle(output, run.title)
    # the "this run" box names the build's data, weights and seed in every chapter, then the chapter's own
    shown = notebook_parameters(profile, run, set(parameters) | set(RUN_BOX_KEYS))
    present(output, shown, git_commit(templates))
    return output


def default_jobs() -> int:
    """How many independent notebooks run at once by default: two, or one on a one-core machine."""
    return max(1, min(2, os.cpu_count() or 1))


@dataclass(frozen=True)
class BuildContext:
    """What every execution's build key shares: mcalc's sources and the data root, hashed once per build."""

    sources: str
    data: str


def execution_key(run: NotebookRun, profile: Profile, context: BuildContext) -> str:
    """The content key of one planned execution (see mcalc.run.rebuild), from the files as they are now."""
    from mcalc.run.rebuild import build_key, inputs_digest

    parameters = {**notebook_parameters(profile, run), "title": run.title}
    inputs = inputs_digest(Path(profile.results_dir), run.reads)
    return build_key(
        find_notebook_dir() / f"{run.template}.py",
        parameters,
        context.sources,
        context.data,
        inputs,
    )


def _run_sweeps(
    runs: list[NotebookRun],
    profile: Profile,
    done: set[str],
    say,
    progress: bool,
    force: bool = False,
):
    """Run (resume) each sweep the given executions read, once per build: finished points are skipped
    (every point runs again with ``force``)."""
    from mcalc.run.sweep import GridSpec, run_sweep

    for run in runs:
        if run.sweep is None or json.dumps(run.sweep, sort_keys=True) in done:
            continue
        done.add(json.dumps(run.sweep, sort_keys=True))
        summary = run_sweep(
            GridSpec.from_dict(run.sweep),
            profile,
            scheduler=profile.sweep.scheduler,
            workers=profile.sweep.workers,
            progress=progress,
            force=force,
            shared_fs=profile.sweep.shared_fs,
        )
        say(f"[mcalc] {summary.describe()}")


def owned_outputs(run: NotebookRun) -> tuple[str, ...]:
    """The patterns of the files only this execution writes: their digests are recorded and checked on use
    (the provenance is not one writer's: 02 adds the weights to what 01 wrote)."""
    from mcalc.records.results import PROVENANCE

    return tuple(w for w in run.writes if w != PROVENANCE)


def check_only(profile: Profile, only: list[str] | None) -> None:
    """DataError naming the ``--only`` names that start no planned notebook's output name (and those that exist)."""
    if only is None:
        return
    names = [r.output for r in plan(profile)]
    unknown = [o for o in only if not o or not any(n.startswith(o) for n in names)]
    if unknown or not only:
        raise DataError(
            f"--only {' '.join(unknown) or '(nothing)'} matches no notebook; "
            f"the notebooks are: {', '.join(names)}"
        )


def _repair_phantom(profile: Profile, progress: bool) -> None:
    """A phantom data root that no longer matches its own manifest (damaged, partial) is generated again
    before any key is computed, so that no execution is called up to date on damaged data."""
    from mcalc.data.phantom import PhantomConfig, ensure_phantom, verify_phantom

    root = Path(profile.data_root)
    if profile.data_source != "phantom" or not (root / "phantom.json").is_file():
        return  # chapter 1 generates an absent phantom
    config = PhantomConfig(scale=profile.phantom_scale, seed=profile.seed)
    if verify_phantom(root, config) is not None:
        ensure_phantom(root, config, progress=progress)  # says why it generates it again


def _kernel_log_header(log: Path, profile: Profile) -> None:
    """Start this build's part of the kernel log (appended: a concurrent or earlier run's lines stay)."""
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(
            f"\n===== mcalc build, profile {profile.name}, pid {os.getpid()}, {time.ctime()}\n"
        )


def run_profile(
    profile: Profile,
    only: list[str] | None = None,
    progress: bool = False,
    force: bool = False,
    jobs: int | None = None,
) -> list[tuple[Path, float]]:
    """Execute the planned notebooks (or those whose output name starts with one of ``only``); returns timings.

    An execution whose build key (mcalc.run.rebuild: template, parameters, mcalc's sources, data, the
    results it reads) is unchanged keeps its executed notebook ("up to date"), unless ``force``.
    Executions of one wave (the chapters that depend only on 01-02) run ``jobs`` at a time
    (default: two, or one on one core). A progress bar for the whole book and, one at a time, one
    per notebook; the kernels' own output goes to ``<out_dir>/kernel.log`` (appended), not the
    terminal. One run at a time per ``out_dir`` and ``results_dir`` (mcalc.records.fsio.exclusive): a second
    run writing either is refused (Busy).
    """
    from contextlib import ExitStack

    from mcalc.records.fsio import exclusive

    check_only(profile, only)
    folders = {
        Path(profile.out_dir).resolve(): f"the notebook folder {profile.out_dir}",
        Path(profile.results_dir).resolve(): f"the results folder {profile.results_dir}",
    }  # one lock per folder, also when both are one
    with ExitStack() as held:
        for folder, what in folders.items():
            held.enter_context(exclusive(folder, what, wait=False))
        return _run_profile(profile, only, progress, force, jobs)


def _run_profile(
    profile: Profile,
    only: list[str] | None,
    progress: bool,
    force: bool,
    jobs: int | None,
) -> list[tuple[Path, float]]:
    """:func:`run_profile` with the notebook folder held."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from mcalc.records.cache import source_digest
    from mcalc.run.preflight import preflight
    from mcalc.run.rebuild import (
        damaged_outputs,
        data_digest,
        inputs_digest,
        record_key,
        up_to_date,
    )

    profile, data = preflight(profile)  # a bad data root fails here, in seconds
    runs = [r for r in plan(profile) if not only or any(r.output.startswith(o) for o in only)]
    jobs = max(1, jobs or default_jobs())
    log = Path(profile.out_dir) / KERNEL_LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    _kernel_log_header(log, profile)
    say = tqdm.write if progress else print
    if data is not None:
        say(f"[mcalc] {data.describe()}")
    _repair_phantom(profile, progress)
    sources = source_digest()

    def context() -> BuildContext:
        """The shared part of the keys, now (notebook 01 may create the phantom in the data root)."""
        return BuildContext(sources, data_digest(Path(profile.data_root)))

    timings: dict[str, tuple[Path, float]] = {}
    swept: set[str] = set()
    book = tqdm(total=len(runs), desc="book", unit="notebook", disable=not progress)

    def one(run: NotebookRun, alone: bool) -> tuple[Path, float]:
        """Execute one notebook and record its key; its time."""
        start = time.perf_counter()
        path = execute(run, profile, progress=progress and alone)
        after = execution_key(run, profile, context())
        outputs = inputs_digest(Path(profile.results_dir), owned_outputs(run))  # checked on use
        record_key(
            path, after, outputs
        )  # what a next build computes, the data root as this left it
        return path, time.perf_counter() - start

    for wave in sorted({r.wave for r in runs}):
        batch = [r for r in runs if r.wave == wave]
        _run_sweeps(batch, profile, swept, say, progress, force)
        todo, now = [], context()
        for run in batch:
            key = execution_key(run, profile, now)
            output = Path(profile.out_dir) / f"{run.output}.ipynb"
            damaged = damaged_outputs(output, Path(profile.results_dir), run.writes)
            if damaged and not force:
                say(
                    f"[mcalc] {run.output}: its output {', '.join(damaged)} changed since it was "
                    "written (damaged or edited): re-running it"
                )
            if not force and up_to_date(output, key, Path(profile.results_dir), run.writes):
                say(f"[mcalc] {run.output}: up to date (key {key[:12]}) -> {output}")
                timings[run.output] = (output, 0.0)
                book.update()
            else:
                todo.append(run)
        alone = jobs == 1 or len(todo) == 1
        with ThreadPoolExecutor(max_workers=min(jobs, len(todo) or 1)) as pool:
            futures = {run.output: pool.submit(one, run, alone) for run in todo}
            for name, future in futures.items():
                path, elapsed = future.result()
                book.set_postfix_str(name)
                book.update()
                say(f"[mcalc] {name}: {elapsed:.1f} s -> {path}")
                timings[name] = (path, elapsed)
    book.close()
    if any(elapsed for _, elapsed in timings.values()):
        say(f"[mcalc] kernel output (TensorFlow, absl, ipykernel) in {log}")
    return [timings[r.output] for r in runs]


def get_profile(name: str, **overrides) -> Profile:
    """A named profile, with any fields overridden (``None`` values ignored)."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    if overrides.get("task") is not None:
        get_task(overrides["task"])  # ValueError naming the tasks
    return replace(PROFILES[name], **{k: v for k, v in overrides.items() if v is not None})
