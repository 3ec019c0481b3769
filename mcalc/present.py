"""Make an executed notebook read like a chapter: code behind a toggle, its parameters as one "this run" box."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

INJECTED_TAG = "injected-parameters"  # papermill's tag on the cell it inserts
PARAMETERS_TAG = "parameters"  # the template's defaults cell
RUN_BOX_TAG = "mcalc-this-run"
#: Parameters every chapter shares; the rest are the chapter's own (its "task").
COMMON_KEYS = (
    "task",
    "data_source",
    "data_root",
    "phantom_scale",
    "seed",
    "image_size",
    "weights",
    "results_dir",
    "cache_dir",
    "n_boot",
)
VERSIONED = ("mcalc", "tensorflow", "tensorflow-cpu", "keras", "scikit-learn", "numpy", "pandas")


def versions() -> dict[str, str]:
    """Python's and the key packages' versions (those installed)."""
    found = {"Python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def git_commit(where: Path) -> str:
    """The short commit of the checkout holding ``where`` ("+ changes" when dirty), or "unknown"."""
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} + uncommitted changes" if dirty else head


def _value(value: object) -> str:
    """A parameter value as the reader should see it."""
    return "—" if value in (None, "") else f"`{value}`"


def run_box(parameters: dict, commit: str, found_versions: dict[str, str]) -> str:
    """A compact MyST admonition naming this run's data, weights, seed, own parameters, versions and commit."""
    data = f"{parameters.get('data_source', '?')} ({_value(parameters.get('data_root'))}"
    if parameters.get("data_source", "phantom") == "phantom":
        data += f", scale {parameters.get('phantom_scale', 1)}"
    data += ")"
    task = ", ".join(f"{k} {_value(v)}" for k, v in parameters.items() if k not in COMMON_KEYS)
    shared = ", ".join(
        f"{k.replace('_', ' ')} {_value(parameters[k])}"
        for k in ("image_size", "n_boot")
        if k in parameters
    )
    lines = [
        f"**Data** {data} · "
        + (f"**task** {_value(parameters['task'])} · " if "task" in parameters else "")
        + f"**weights** {_value(parameters.get('weights'))} · "
        f"**seed** {_value(parameters.get('seed'))}" + (f" · {shared}" if shared else ""),
        f"**This chapter** {task or '—'}",
        "**Versions** "
        + ", ".join(f"{k} {v}" for k, v in found_versions.items())
        + f" · **commit** `{commit}`",
    ]
    body = "  \n".join(lines)
    return f":::{{admonition}} This run\n:class: mcalc-run\n{body}\n:::"


def _tags(cell) -> list:
    """The cell's tag list (created when absent)."""
    return cell.setdefault("metadata", {}).setdefault("tags", [])


def _add(tags: list, tag: str) -> None:
    """Add a tag once."""
    if tag not in tags:
        tags.append(tag)


def _glued(output) -> bool:
    """True for a myst-nb glue output (a value kept for the prose, shown nowhere by itself)."""
    return "scrapbook" in output.get("metadata", {})


def present(path: Path, parameters: dict, commit: str | None = None) -> None:
    """Rewrite an executed notebook in place for the book: both parameters cells removed, one "this run" box in
    their place, every other code cell's input behind a toggle (outputs untouched, nothing re-executed)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if RUN_BOX_TAG not in c.get("metadata", {}).get("tags", [])]
    first_param = None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = _tags(cell)
        if INJECTED_TAG in tags or PARAMETERS_TAG in tags:
            _add(tags, "remove-cell")
            first_param = i if first_param is None else first_param
        elif {"remove-cell", "remove-input"} & set(tags):
            continue
        elif cell.get("outputs") and all(_glued(o) for o in cell.outputs):
            _add(
                tags, "remove-input"
            )  # only glues numbers for the prose: nothing to show or toggle
        else:
            _add(tags, "hide-input")
    if first_param is not None:
        box = nbformat.v4.new_markdown_cell(
            run_box(parameters, commit or git_commit(Path(path).parent), versions())
        )
        box.metadata["tags"] = [RUN_BOX_TAG]
        nb.cells.insert(first_param, box)
    nbformat.write(nb, path)
