"""The ``mcalc`` command line: curate a download, generate the phantom, execute the notebooks, build the book."""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

from mcalc.errors import BookBuildError, Busy, DataError, NotebookFailed, WeightsUnavailable
from mcalc.run.commands import (
    book_command,
    compare_command,
    curate_command,
    notebooks_command,
    phantom_command,
    sweep_command,
)

__all__ = ["WEIGHT_NAMES", "WEIGHT_SUFFIXES", "build_parser", "main"]

WEIGHT_NAMES = ("auto", "imagenet", "random")
WEIGHT_SUFFIXES = (".h5", ".hdf5")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (what is wrong, where to look) and exit 2."""

    def error(self, message: str) -> None:
        """Print one line to stderr and exit with status 2."""
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _number(text: str) -> float:
    """A finite number from the command line."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _integer(text: str, least: int) -> int:
    """An integer >= least from the command line."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{value} is too small: give an integer >= {least}")
    return value


def _scale(text: str) -> float:
    """A phantom scale: a finite number in (0, MAX_SCALE]."""
    from mcalc.data.phantom import MAX_SCALE

    value = _number(text)
    if not 0 < value <= MAX_SCALE:
        raise argparse.ArgumentTypeError(
            f"{text} is out of range: give a number > 0 and <= {MAX_SCALE:g} "
            "(1 = the real CBIS-DDSM calc sizes, 0.1 = a tenth)"
        )
    return value


def _seed(text: str) -> int:
    """A random seed: an integer >= 0."""
    return _integer(text, 0)


def _workers(text: str) -> int:
    """A number of worker processes: an integer >= 1."""
    return _integer(text, 1)


def _image_size(text: str) -> int:
    """A backbone input size: an integer >= the smallest InceptionResNetV2 accepts."""
    from mcalc.learn.preprocessing import MIN_IMAGE_SIZE

    return _integer(text, MIN_IMAGE_SIZE)


def _weights(text: str) -> str:
    """A weights spec: auto, imagenet, random, or the path of an existing .h5 / .hdf5 file."""
    if text.strip().lower() in WEIGHT_NAMES:
        return text
    if not text.lower().endswith(WEIGHT_SUFFIXES):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a weights spec: use {', '.join(WEIGHT_NAMES)} or the path of an "
            f"{' / '.join(WEIGHT_SUFFIXES)} file"
        )
    if not Path(text).expanduser().is_file():
        raise argparse.ArgumentTypeError(f"weights file {text} does not exist")
    return text


def _add_profile_args(p: argparse.ArgumentParser) -> None:
    """Options shared by the commands that execute notebooks."""
    from mcalc.learn.backbone import BF16_TOLERANCE, DEFAULT_VARIANT, REDUCED_PRECISION, VARIANTS
    from mcalc.run.profiles import PROFILES
    from mcalc.study import TASKS

    p.add_argument(
        "--profile",
        default="default",
        choices=sorted(PROFILES),
        help="parameter profile: default (the book) or ci (tiny, fast)",
    )
    p.add_argument(
        "--data-source", choices=["phantom", "cbis-ddsm"], help="override the profile's data source"
    )
    p.add_argument(
        "--data-root",
        help="folder of the data: a CBIS-DDSM download (the phantom goes to data/phantom/<layout>-scale<s>-seed<n> unless given)",
    )
    p.add_argument("--scale", type=_scale, help="phantom scale (1 = the real CBIS-DDSM calc sizes)")
    p.add_argument(
        "--task",
        choices=list(TASKS),
        help="classification task: three-class (the paper, default), binary-merged "
        "(BENIGN_WITHOUT_CALLBACK counted as BENIGN) or binary-biopsied (that class left out, reported)",
    )
    p.add_argument(
        "--weights",
        type=_weights,
        help="backbone weights: auto, imagenet, random, or a path to an .h5 file",
    )
    p.add_argument(
        "--image-size", type=_image_size, help="backbone input size (the paper: 299; at least 75)"
    )
    p.add_argument(
        "--backbone",
        choices=VARIANTS,
        help=f"how the frozen backbone runs: {DEFAULT_VARIANT} (the default: float32's features), "
        f"or one of {', '.join(v for v in VARIANTS if v != DEFAULT_VARIANT)}; "
        + ", ".join(
            f"{v} computes in {p} (opt-in: faster where the hardware has it, features within "
            f"{BF16_TOLERANCE:.0%} of float32's, not equal to them)".replace("%", "%%")
            for v, p in REDUCED_PRECISION.items()
        ),
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
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars (never drawn when the output is not a terminal)",
    )


def _jobs(text: str) -> int:
    """A --jobs value: an integer >= 1."""
    return _integer(text, 1)


def _add_build_args(p: argparse.ArgumentParser) -> None:
    """Options of the commands that build the book's notebooks: what to re-run, how many at once."""
    p.add_argument(
        "--force",
        action="store_true",
        help="re-execute every notebook, even those whose template, parameters, code and inputs are unchanged",
    )
    p.add_argument(
        "--jobs",
        type=_jobs,
        help="independent notebooks executed at once (default: two, or one on a one-core machine)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = _Parser(prog="mcalc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "curate",
        help="curate CBIS-DDSM (official CSVs + DICOM tree) into a manifest",
        description=curate_command.__doc__,
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
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar (never drawn when the output is not a terminal)",
    )
    p.set_defaults(func=curate_command)

    p = sub.add_parser(
        "phantom",
        help="generate the offline CBIS-DDSM-shaped phantom",
        description=phantom_command.__doc__,
    )
    p.add_argument("out", help="folder to write (must be empty or a previous phantom)")
    p.add_argument(
        "--scale",
        type=_scale,
        default=1.0,
        help="fraction of the real sizes (1 = 1546 + 326 ROIs; at most 10)",
    )
    p.add_argument("--seed", type=_seed, default=0, help="random seed (an integer >= 0)")
    p.add_argument(
        "--layout",
        default="uid",
        choices=["uid", "nbia", "kaggle-jpeg"],
        help="layout to imitate: the DICOM release's UID or NBIA folders, or the Kaggle JPEG re-release",
    )
    p.add_argument("--workers", type=_workers, default=2, help="processes to render with (>= 1)")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar (never drawn when the output is not a terminal)",
    )
    p.set_defaults(func=phantom_command)

    p = sub.add_parser(
        "notebooks",
        help="execute the notebooks with papermill",
        description=notebooks_command.__doc__,
    )
    _add_profile_args(p)
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="execute only the notebooks whose output name starts with one of these (e.g. 03 05_comparison)",
    )
    _add_build_args(p)
    p.set_defaults(func=notebooks_command)

    p = sub.add_parser(
        "book",
        help="execute the notebooks and build the Jupyter Book",
        description=book_command.__doc__,
    )
    _add_profile_args(p)
    p.add_argument(
        "--no-execute", action="store_true", help="build from the already executed notebooks"
    )
    _add_build_args(p)
    p.set_defaults(func=book_command)

    p = sub.add_parser(
        "sweep",
        help="run a grid of runs on Dask (local or a cluster)",
        description=sweep_command.__doc__,
    )
    p.add_argument("grid", help="grid file (YAML): name, fixed parameters, grid axes or points")
    _add_profile_args(p)
    p.add_argument(
        "--scheduler",
        help="'local' (a Dask LocalCluster, the default), 'serial' (no Dask) or a scheduler address tcp://HOST:8786",
    )
    p.add_argument(
        "--workers",
        type=_workers,
        help="LocalCluster workers (default: one per core, or per GPU)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="run every point again, replacing its records (damaged records are re-run anyway)",
    )
    p.add_argument(
        "--shared-fs",
        action="store_true",
        help="workers read the inputs and write the records at this machine's paths (one machine or a "
        "shared file system); by default they receive and return them through Dask",
    )
    p.add_argument(
        "--fresh-kernels",
        action="store_true",
        help="start a fresh notebook kernel for every point (by default each worker keeps one warm, "
        "reset between points)",
    )
    p.set_defaults(func=sweep_command)

    p = sub.add_parser(
        "compare",
        help="set two runs side by side (results folders or bundles): paired differences, verdicts, provenance",
        description=compare_command.__doc__,
    )
    p.add_argument("run_a", help="run A: a results folder or a results bundle (mcalc-results.zip)")
    p.add_argument("run_b", help="run B, compared with A (differences are B − A)")
    p.add_argument(
        "--n-boot",
        type=lambda t: _integer(t, 0),
        help="bootstrap resamples of the paired differences (default: run A's)",
    )
    p.add_argument("--seed", type=_seed, help="bootstrap seed (default: run A's)")
    p.add_argument("--out", help="folder to write the comparison's tables (CSV) into")
    p.set_defaults(func=compare_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mcalc`` console command."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line(args.command)
            return args.func(args)
    except (DataError, WeightsUnavailable, Busy) as exc:
        print(f"mcalc {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (
        NotebookFailed,
        BookBuildError,
    ) as exc:  # one line: which notebook / cell, or why the build failed
        print(f"mcalc {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:  # the system refused (disk full, permissions): say so, no traceback
        where = f": {exc.filename}" if exc.filename else ""
        print(f"mcalc {args.command}: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mcalc {args.command}: interrupted", file=sys.stderr)
        return 130


def _warning_line(command: str):
    """A ``warnings.showwarning`` that prints one line, 'mcalc COMMAND: warning: ...', without mcalc's source line."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        """Print the warning's message on one line to stderr."""
        print(f"mcalc {command}: warning: {' '.join(str(message).split())}", file=sys.stderr)

    return show


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
