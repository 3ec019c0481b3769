"""The ``mcalc`` command line: curate a download, generate the phantom, execute the notebooks, build the book."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mcalc.errors import DataError, WeightsUnavailable


def _cmd_curate(args: argparse.Namespace) -> int:
    """Curate a CBIS-DDSM download (or a phantom) into a manifest and an exclusion report."""
    from mcalc.curation import curate, write_curation

    result = curate(
        Path(args.root),
        abnormality=args.abnormality,
        check_images=not args.no_images,
        progress=not args.quiet,
    )
    paths = write_curation(result, Path(args.out))
    if result.layout == "kaggle-jpeg":  # mcalc.kaggle.LAYOUT
        from mcalc.provenance import KAGGLE_JPEG_LABEL

        print(f"read as the {KAGGLE_JPEG_LABEL}")
    print(result.summary().to_string())
    print(
        f"{len(result.manifest)} ROIs read, {len(result.exclusions)} excluded, {len(result.swaps)} crop/mask swaps corrected"
    )
    for kind, path in paths.items():
        print(f"wrote {kind}: {path}")
    return 0


def _cmd_phantom(args: argparse.Namespace) -> int:
    """Generate the offline CBIS-DDSM-shaped phantom."""
    from mcalc.phantom import PhantomConfig, generate_phantom

    config = PhantomConfig(
        scale=args.scale, seed=args.seed, layout=args.layout, workers=args.workers
    )
    summary = generate_phantom(Path(args.out), config, progress=not args.quiet)
    print(summary)
    return 0


def _profile_from(args: argparse.Namespace):
    """The profile named on the command line with its overrides."""
    from mcalc.pipeline import get_profile

    return get_profile(
        args.profile,
        data_source=args.data_source,
        data_root=args.data_root,
        phantom_scale=args.scale,
        weights=args.weights,
        image_size=args.image_size,
        results_dir=args.results_dir,
        cache_dir=args.cache_dir,
        out_dir=args.out_dir,
    )


def _cmd_notebooks(args: argparse.Namespace) -> int:
    """Execute the notebook templates with papermill under a profile."""
    from mcalc.pipeline import run_profile

    run_profile(_profile_from(args), only=args.only, progress=not args.quiet)
    return 0


def _cmd_book(args: argparse.Namespace) -> int:
    """Execute the notebooks (unless --no-execute), build the Jupyter Book and check it is complete."""
    from mcalc.book import build_book
    from mcalc.pipeline import run_profile

    profile = _profile_from(args)
    if not args.no_execute:
        run_profile(profile, progress=not args.quiet)
    index = build_book(profile)
    print(f"book built: {index}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    """Run a grid of the optimizer template's parameters on Dask (one papermill execution per point); resumes."""
    from mcalc.sweep import read_grid, run_sweep

    profile = _profile_from(args)
    summary = run_sweep(
        read_grid(args.grid),
        profile,
        scheduler=args.scheduler or profile.sweep.scheduler,
        workers=profile.sweep.workers if args.workers is None else args.workers,
        progress=not args.quiet,
    )
    print(summary.describe())
    return 1 if summary.failed else 0


def _add_profile_args(p: argparse.ArgumentParser) -> None:
    """Options shared by the commands that execute notebooks."""
    p.add_argument(
        "--profile",
        default="default",
        help="parameter profile: default (the book) or ci (tiny, fast)",
    )
    p.add_argument(
        "--data-source", choices=["phantom", "cbis-ddsm"], help="override the profile's data source"
    )
    p.add_argument(
        "--data-root", help="folder of the data (a CBIS-DDSM download, or where the phantom goes)"
    )
    p.add_argument("--scale", type=float, help="phantom scale (1 = the real CBIS-DDSM calc sizes)")
    p.add_argument(
        "--weights", help="backbone weights: auto, imagenet, random, or a path to an .h5 file"
    )
    p.add_argument(
        "--image-size", type=int, help="backbone input size (the paper: 299; at least 75)"
    )
    p.add_argument(
        "--results-dir",
        help="folder for the manifest, features and run records (default: the profile's)",
    )
    p.add_argument(
        "--cache-dir", help="folder for the content-keyed feature caches (default: the profile's)"
    )
    p.add_argument(
        "--out-dir",
        help="folder for the executed notebooks (default: the profile's; book/executed for the book)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="mcalc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "curate",
        help="curate CBIS-DDSM (official CSVs + DICOM tree) into a manifest",
        description=_cmd_curate.__doc__,
    )
    p.add_argument(
        "root",
        help="folder holding the case-description CSVs and the DICOM tree below them "
        "(or the Kaggle JPEG re-release: csv/ with dicom_info.csv, and jpeg/)",
    )
    p.add_argument(
        "--out",
        required=True,
        help="manifest CSV to write (exclusions and swaps are written beside it)",
    )
    p.add_argument("--abnormality", default="calcification", choices=["calcification", "mass"])
    p.add_argument(
        "--no-images", action="store_true", help="parse the CSVs only; do not open any DICOM file"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_curate)

    p = sub.add_parser(
        "phantom",
        help="generate the offline CBIS-DDSM-shaped phantom",
        description=_cmd_phantom.__doc__,
    )
    p.add_argument("out", help="folder to write (must be empty or a previous phantom)")
    p.add_argument(
        "--scale", type=float, default=1.0, help="fraction of the real sizes (1 = 1546 + 326 ROIs)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--layout",
        default="uid",
        choices=["uid", "nbia", "kaggle-jpeg"],
        help="layout to imitate: the DICOM release's UID or NBIA folders, or the Kaggle JPEG re-release",
    )
    p.add_argument("--workers", type=int, default=2, help="processes to render with")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_phantom)

    p = sub.add_parser(
        "notebooks", help="execute the notebooks with papermill", description=_cmd_notebooks.__doc__
    )
    _add_profile_args(p)
    p.add_argument(
        "--only", nargs="*", help="execute only the notebooks whose output name starts with these"
    )
    p.set_defaults(func=_cmd_notebooks)

    p = sub.add_parser(
        "book",
        help="execute the notebooks and build the Jupyter Book",
        description=_cmd_book.__doc__,
    )
    _add_profile_args(p)
    p.add_argument(
        "--no-execute", action="store_true", help="build from the already executed notebooks"
    )
    p.set_defaults(func=_cmd_book)

    p = sub.add_parser(
        "sweep",
        help="run a grid of runs on Dask (local or a cluster)",
        description=_cmd_sweep.__doc__,
    )
    p.add_argument("grid", help="grid file (YAML): name, fixed parameters, grid axes or points")
    _add_profile_args(p)
    p.add_argument(
        "--scheduler",
        help="'local' (a Dask LocalCluster, the default), 'serial' (no Dask) or a scheduler address tcp://HOST:8786",
    )
    p.add_argument(
        "--workers", type=int, help="LocalCluster workers (default: one per core, or per GPU)"
    )
    p.set_defaults(func=_cmd_sweep)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mcalc`` console command."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, WeightsUnavailable) as exc:
        print(f"mcalc {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
