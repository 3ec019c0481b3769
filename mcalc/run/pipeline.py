"""The book's build: the plan of a profile's notebook runs (templates, parameters, what each reads and
writes, in waves, a self-contained chapter apart) and :func:`run_profile`, which executes them, rebuilding
only what changed (keys: :mod:`mcalc.run.rebuild`; one execution: :mod:`mcalc.run.runner`)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from mcalc.errors import DataError
from mcalc.paper import OPTIMIZERS, PAPER_OPTIMIZER_NAMES
from mcalc.records.results import SENSITIVITY_DIR
from mcalc.run.profiles import Profile
from mcalc.run.runner import (
    KERNEL_LOG,
    NotebookRun,
    execute,
    find_notebook_dir,
    notebook_parameters,
    relative_to_output,
)

__all__ = [
    "SEED_SWEEP",
    "plan",
    "copies_run",
    "seed_sweep",
    "BuildContext",
    "execution_key",
    "prepare_inputs",
    "owned_outputs",
    "check_only",
    "run_profile",
]

SEED_SWEEP = "seed_variance"  # chapter 7's sweep, under <results_dir>/sweeps/


def _sweep_reads(name: str) -> tuple[str, ...]:
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
    runs += _sensitivity_runs(profile, study)
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
                *_sweep_reads(SEED_SWEEP),
            ),
            wave=3,
        ),
        NotebookRun(
            "06_leakage_audit",
            "06_leakage_audit",
            {"n_split_seeds": profile.n_split_seeds},
            reads=study,
            wave=2,
            long=True,
        ),
        NotebookRun(
            "07_seed_variance",
            "07_seed_variance",
            {"sweep_name": SEED_SWEEP},
            sweep=seed_sweep(profile),
            reads=(*study, *_sweep_reads(SEED_SWEEP)),
            wave=2,
        ),
        copies_run(profile),
    ]
    return runs


def copies_run(profile: Profile) -> NotebookRun:
    """Chapter 8: its own phantom, written in both layouts, at the profile's phantom scale or the book's
    copies scale (the smaller), its validation hold-out scaled to it; it reads nothing of the data root
    nor of the other chapters, and none reads its records: it runs apart, from the start of its wave."""
    from mcalc.chapters.copies import BOOK_SCALE, COPIES_FOLDER

    scale = min(profile.phantom_scale, BOOK_SCALE)
    validation = replace(profile, data_source="phantom", phantom_scale=scale).validation()
    return NotebookRun(
        "08_copies",
        "08_copies",
        {"copies_scale": scale, "validation_size": validation},
        writes=(f"{COPIES_FOLDER}/*/runs/baseline_svm.json",),
        wave=2,
        long=True,
        apart=True,
    )


def _sensitivity_runs(profile: Profile, reads: tuple[str, ...]) -> list[NotebookRun]:
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


def _default_jobs() -> int:
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
        "" if run.apart else context.data,  # an execution apart reads nothing of the data root
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
    from mcalc.run.grid import GridSpec
    from mcalc.run.sweep import run_sweep

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
            prepare=prepare_inputs,
        )
        say(f"[mcalc] {summary.describe()}")


def prepare_inputs(profile: Profile, progress: bool = False) -> None:
    """Execute notebooks 01 and 02, which write the study inputs a sweep of the optimizer template reads."""
    run_profile(profile, only=["01_", "02_"], progress=progress)


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

    root = Path(profile.data_folder())
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
    jobs = max(1, jobs or _default_jobs())
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
        return BuildContext(sources, data_digest(Path(profile.data_folder())))

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

    def needed(run: NotebookRun, now: BuildContext) -> bool:
        """Whether ``run`` must execute (else it is reported up to date and counted)."""
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
            return False
        return True

    def collect(futures: dict) -> None:
        """Wait for the submitted executions, in order, and report each."""
        for name, future in futures.items():
            path, elapsed = future.result()
            book.set_postfix_str(name)
            book.update()
            say(f"[mcalc] {name}: {elapsed:.1f} s -> {path}")
            timings[name] = (path, elapsed)

    # One pool for the whole build. An execution apart starts with its wave, first, and holds its
    # worker while that wave and the later ones run on the others: no wave waits for it, the build's
    # end does. (It starts with its wave, not before: beside chapter 2 a second backbone would hold
    # its memory too, over the book's 4 GB.)
    beside: dict = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        try:
            for wave in sorted({r.wave for r in runs}):
                batch = [r for r in runs if r.wave == wave]
                _run_sweeps(batch, profile, swept, say, progress, force)
                now = context()
                todo = [r for r in batch if needed(r, now)]
                todo.sort(key=lambda r: (not r.apart, not r.long))  # apart, then long, first
                alone = (jobs == 1 or len(todo) == 1) and not beside
                beside |= {r.output: pool.submit(one, r, False) for r in todo if r.apart}
                collect({r.output: pool.submit(one, r, alone) for r in todo if not r.apart})
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # nothing more starts
            running = [name for name, future in beside.items() if not future.done()]
            if running:
                say(
                    f"[mcalc] stopping: the error follows once {', '.join(running)} (run apart, "
                    "already started) has finished"
                )
            raise
        collect(beside)
    book.close()
    if any(elapsed for _, elapsed in timings.values()):
        say(f"[mcalc] kernel output (TensorFlow, absl, ipykernel) in {log}")
    return [timings[r.output] for r in runs]
