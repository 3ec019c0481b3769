"""The notebook runner: one template executed with papermill in a logged kernel, its parameters injected."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mcalc.errors import DataError, NotebookFailed
from mcalc.run.profiles import Profile

__all__ = [
    "NOTEBOOK_DIR",
    "FIRST_TEMPLATE",
    "RUN_BOX_KEYS",
    "KERNELSPEC",
    "NotebookRun",
    "find_notebook_dir",
    "declared",
    "relative_to_output",
    "notebook_parameters",
    "template_to_ipynb",
    "retitle",
    "KERNEL_LOG",
    "kernel_manager",
    "logged_kernel",
    "execute",
]

NOTEBOOK_DIR = Path("notebooks")
FIRST_TEMPLATE = "01_data_curation.py"
#: What every chapter's "this run" box names about the build, whether or not the chapter reads it.
RUN_BOX_KEYS = ("data_source", "data_root", "phantom_scale", "weights", "seed")
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


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
    long: bool = False  # among the longest of its wave: started before the others, so that no long one runs alone at the end
    apart: bool = False  # reads nothing of the data root nor of other executions, and none reads its outputs: it starts with its wave and no later wave waits for it


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
        if params.get(key):  # "" (the phantom's own folder, a data root not given) stays ""
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


def _failure_message(run: NotebookRun, exc: Exception, output: Path, log: Path) -> str:
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
            raise NotebookFailed(_failure_message(run, exc, output, log)) from None
    if run.title:
        retitle(output, run.title)
    # the "this run" box names the build's data, weights and seed in every chapter, then the chapter's own
    shown = notebook_parameters(profile, run, set(parameters) | set(RUN_BOX_KEYS))
    present(output, shown, git_commit(templates))
    return output
