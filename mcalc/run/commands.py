"""What each ``mcalc`` subcommand does, given its parsed arguments (the parser is :mod:`mcalc.run.cli`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mcalc.errors import DataError

__all__ = [
    "curate_command",
    "phantom_command",
    "notebooks_command",
    "book_command",
    "sweep_command",
    "compare_command",
]


def _writable_file(path: Path) -> str | None:
    """Why path cannot be written as a file (None when it can); creates nothing that stays."""
    from mcalc.records.fsio import name_problem

    if path.is_dir():
        return f"{path} is a folder: give a file name, e.g. {path / 'manifest.csv'}"
    return name_problem(path) or _creatable(path.parent)


def _creatable(folder: Path) -> str | None:
    """Why files cannot be created in folder, made where absent (None when they can); creates nothing that stays."""
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a folder"
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, so {folder} cannot be created below it"
    try:
        import tempfile

        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return f"cannot write in {probe} ({exc.strerror or exc}): choose a writable place"
    return None


def _check_curate_args(args: argparse.Namespace) -> None:
    """DataError for a root that is not a folder or outputs that cannot be written (nothing written)."""
    from mcalc.data.curation import curation_paths

    root = Path(args.root)
    if not root.is_dir():
        raise DataError(f"data root {root} is not a folder (give the folder holding the tables)")
    for path in curation_paths(Path(args.out)).values():
        problem = _writable_file(path)
        if problem:
            raise DataError(f"--out {args.out}: {problem}")


def curate_command(args: argparse.Namespace) -> int:
    """Curate a CBIS-DDSM download (or a phantom) into a manifest and an exclusion report."""
    from mcalc.data.curation import curate, write_curation

    _check_curate_args(args)
    result = curate(
        Path(args.root),
        abnormality=args.abnormality,
        check_images=not args.no_images,
        progress=_progress(args),
    )
    paths = write_curation(result, Path(args.out))
    if result.layout == "kaggle-jpeg":  # mcalc.data.kaggle.LAYOUT
        from mcalc.records.provenance import KAGGLE_JPEG_LABEL

        print(f"read as the {KAGGLE_JPEG_LABEL}")
    print(result.summary().to_string())
    print(
        f"{len(result.manifest)} ROIs read, {len(result.exclusions)} excluded, {len(result.swaps)} crop/mask swaps corrected"
    )
    for kind, path in paths.items():
        print(f"wrote {kind}: {path}")
    return 0


def phantom_command(args: argparse.Namespace) -> int:
    """Generate the offline CBIS-DDSM-shaped phantom."""
    from mcalc.data.phantom import PhantomConfig, generate_phantom

    problem = _creatable(Path(args.out))
    if problem:
        raise DataError(f"{args.out}: {problem}")
    try:
        config = PhantomConfig(
            scale=args.scale, seed=args.seed, layout=args.layout, workers=args.workers
        )
    except ValueError as exc:
        raise DataError(str(exc)) from None
    summary = generate_phantom(Path(args.out), config, progress=_progress(args))
    print(summary)
    return 0


def _profile_from(args: argparse.Namespace):
    """The profile named on the command line with its overrides."""
    from mcalc.run.profiles import get_profile
    from mcalc.run.runner import find_notebook_dir

    find_notebook_dir()  # DataError up front when the templates cannot be found
    if args.data_source == "cbis-ddsm" and not args.data_root:
        raise DataError("--data-source cbis-ddsm needs --data-root: the folder of your download")
    if args.data_source == "cbis-ddsm" and args.data_root and not Path(args.data_root).is_dir():
        raise DataError(f"--data-root {args.data_root} is not a folder (a CBIS-DDSM download)")
    for flag in ("results_dir", "cache_dir", "out_dir"):
        value = getattr(args, flag)
        if value and Path(value).exists() and not Path(value).is_dir():
            raise DataError(f"--{flag.replace('_', '-')} {value} is a file, not a folder")
    return get_profile(
        args.profile,
        data_source=args.data_source,
        data_root=args.data_root,
        phantom_scale=args.scale,
        weights=args.weights,
        image_size=args.image_size,
        backbone_variant=args.backbone,
        results_dir=args.results_dir,
        cache_dir=args.cache_dir,
        out_dir=args.out_dir,
        task=args.task,
    )


def notebooks_command(args: argparse.Namespace) -> int:
    """Execute the notebook templates with papermill under a profile."""
    from mcalc.run.pipeline import check_only, run_profile

    profile = _profile_from(args)
    check_only(profile, args.only)  # a name matching no notebook: one line, exit 2, nothing run
    run_profile(
        profile,
        only=args.only,
        progress=_progress(args),
        force=args.force,
        jobs=args.jobs,
    )
    return 0


def book_command(args: argparse.Namespace) -> int:
    """Execute the notebooks (unless --no-execute), build the Jupyter Book and check it is complete."""
    from mcalc.report.book import build_book
    from mcalc.run.pipeline import run_profile

    profile = _profile_from(args)
    if not args.no_execute:
        run_profile(profile, progress=_progress(args), force=args.force, jobs=args.jobs)
    index = build_book(profile)
    print(f"book built: {index}")
    return 0


def sweep_command(args: argparse.Namespace) -> int:
    """Run a grid of the optimizer template's parameters on Dask (one papermill execution per point); resumes."""
    from mcalc.run.grid import read_grid
    from mcalc.run.pipeline import prepare_inputs
    from mcalc.run.preflight import preflight
    from mcalc.run.sweep import run_sweep

    profile, _ = preflight(
        _profile_from(args)
    )  # a bad data root fails here; the hold-out fits the data
    try:
        summary = run_sweep(
            read_grid(args.grid),
            profile,
            scheduler=args.scheduler or profile.sweep.scheduler,
            workers=profile.sweep.workers if args.workers is None else args.workers,
            progress=_progress(args),
            force=args.force,
            shared_fs=args.shared_fs or profile.sweep.shared_fs,
            warm=not args.fresh_kernels,
            prepare=prepare_inputs,
        )
    except KeyboardInterrupt:
        print(
            "mcalc sweep: interrupted; the finished points are recorded, the same command resumes",
            file=sys.stderr,
        )
        return 130
    print(summary.describe())
    return 1 if summary.failed else 0


def compare_command(args: argparse.Namespace) -> int:
    """Set two runs side by side: paired patient-level differences, verdicts, provenance."""
    from mcalc.evaluate.compare import compare_runs

    comparison = compare_runs(args.run_a, args.run_b, n_boot=args.n_boot, seed=args.seed)
    print(comparison.report())
    if args.out:
        for path in comparison.write(args.out):
            print(f"wrote {path}")
    return 0


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars unless --quiet, and only on a terminal: a log file gets the one-line messages only."""
    return not args.quiet and sys.stderr.isatty()
