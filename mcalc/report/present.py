"""Make an executed notebook read like a chapter: code behind a toggle, its parameters as one "this run" box,
each captioned table and figure a numbered, citable figure (myst-nb ``glue:figure`` with a Sphinx label)."""

from __future__ import annotations

import platform
import re
from importlib import metadata
from pathlib import Path

from mcalc.records.provenance import git_commit

__all__ = [
    "RUN_BOX_TAG",
    "RUN_LOG_TAG",
    "ITEM_TAG",
    "versions",
    "run_box",
    "myst_escape",
    "chapter_number",
    "own_lead",
    "present",
]

INJECTED_TAG = "injected-parameters"  # papermill's tag on the cell it inserts
PARAMETERS_TAG = "parameters"  # the template's defaults cell
RUN_BOX_TAG = "mcalc-this-run"
RUN_LOG_TAG = "mcalc-run-log"  # the collapsed "run log" present() appends: what the cells printed
ITEM_TAG = (
    "mcalc-item"  # the glue:figure cells present() inserts (and the figures' class in the book)
)
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


def _item(output) -> dict | None:
    """The caption record of a captioned table / figure output (:func:`mcalc.report.items.item_metadata`), else None."""
    return output.get("metadata", {}).get("mcalc", {}).get("item")


def _caption_of(output) -> str | None:
    """The key of the item whose caption this output is (:func:`mcalc.report.items.caption_metadata`), else None."""
    return output.get("metadata", {}).get("mcalc", {}).get("caption_of")


def _stderr(output) -> bool:
    """True for a stderr stream (warnings: the book never shows them)."""
    return output.get("output_type") == "stream" and output.get("name") == "stderr"


def _display_items(cell) -> list[dict]:
    """The captioned items of a code cell whose outputs are only items and their captions (stderr aside),
    each with its kind ("Table" or "Figure"); else []."""
    outputs = [o for o in cell.get("outputs", []) if not _stderr(o)]
    items = [item | {"kind": _kind(o)} for o in outputs if (item := _item(o)) is not None]
    keys = {item["key"] for item in items}
    if items and all(_item(o) is not None or _caption_of(o) in keys for o in outputs):
        return items
    return []


def _stdout(output) -> bool:
    """True for a stdout stream (a print: a run message, kept in the chapter's run log)."""
    return output.get("output_type") == "stream" and output.get("name") == "stdout"


def _printed_only(cell) -> str:
    """What a code cell printed, when its only outputs (stderr aside) are prints; else ''."""
    outputs = [o for o in cell.get("outputs", []) if not _stderr(o)]
    if outputs and all(_stdout(o) for o in outputs):
        return "".join(o.get("text", "") for o in outputs)
    return ""


def _run_log(texts: list[str]) -> str:
    """The chapter's run log: what its cells printed, collapsed (closed until clicked; not a result)."""
    import html

    body = "\n".join(t.rstrip("\n") for t in texts if t.strip())
    lines = html.escape(body).replace("\n", "&#10;")  # one HTML block: a blank line would end it
    return (
        f'<details class="{RUN_LOG_TAG}"><summary>Run log: what the chapter\'s cells printed</summary>'
        f"<pre>{lines}</pre></details>"
    )


def myst_escape(text: str) -> str:
    """Text that MyST renders as itself: every ASCII punctuation character backslash-escaped, one line."""
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", " ".join(text.split()))


def _item_label(stem: str, key: str) -> str:
    """The Sphinx label of an item of a notebook: '05_comparison-table-4'."""
    return f"{stem}-{key}"


def chapter_number(stem: str) -> str:
    """The chapter number of an executed notebook as the table of contents numbers it: '5' for
    05_comparison, '3.2' for 03_optimizer_adagrad (the paper's optimizer order); '' when it has none."""
    from mcalc.paper import OPTIMIZERS

    found = re.match(r"^0*(\d+)_", stem)
    if not found:
        return ""
    if stem.startswith("03_optimizer_") and stem.removeprefix("03_optimizer_") in OPTIMIZERS:
        return f"{found[1]}.{OPTIMIZERS.index(stem.removeprefix('03_optimizer_')) + 1}"
    if stem.startswith("05_sensitivity_"):
        return f"{found[1]}.{_sensitivity_letter(stem.removeprefix('05_sensitivity_'))}"
    return found[1]


def _sensitivity_letter(key: str) -> str:
    """A sensitivity analysis' letter (A, B, … in the plan's order): its items never share chapter 5's numbers."""
    from mcalc.evaluate.plan import SENSITIVITY_ANALYSES

    keys = [k for k, parameters, _ in SENSITIVITY_ANALYSES if parameters]
    return chr(ord("A") + keys.index(key)) if key in keys else "X"


def own_lead(kind: str, chapter: str, count: int) -> str:
    """The number of a table / figure that is not the paper's: 'Table S5.2 —' (S: the study's own)."""
    return f"{kind} S{chapter}.{count} —" if chapter else f"{kind} S{count} —"


def _kind(output) -> str:
    """'Figure' for an image output, else 'Table'."""
    return "Figure" if "image/png" in output.get("data", {}) else "Table"


def _glue_figure(item: dict, label: str) -> str:
    """A ``glue:figure`` of a glued item: its label, and its caption (bold paper number, or the study's own
    number in ``item["number"]``) and provenance under it."""
    from mcalc.report.items import split_lead

    lead, rest = split_lead(item["caption"])
    if not lead and item.get("number"):
        lead = item["number"]
    caption = f"**{myst_escape(lead)}** {myst_escape(rest)}" if lead else myst_escape(rest)
    body = [caption] + ([f"*{myst_escape(item['provenance'])}*"] if item["provenance"] else [])
    return (
        f"```{{glue:figure}} {item['key']}\n:name: {label}\n:figclass: {ITEM_TAG}\n\n"
        + "\n\n".join(body)
        + "\n```"
    )


#: The call every template makes right after its parameters cell (mcalc.run.parameters).
CHECK_CALL = "check_parameters(globals())"


def present(path: Path, parameters: dict, commit: str | None = None) -> None:
    """Rewrite an executed notebook in place for the book: both parameters cells removed, one "this run" box in
    their place, every other code cell's input behind a toggle, and after each cell that only shows captioned
    tables / figures one labelled ``glue:figure`` per item, its outputs hidden, and what cells only printed
    (run messages) hidden in place and gathered into one collapsed run log at the end (outputs untouched,
    nothing re-executed; running it again gives the same notebook)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    inserted = {RUN_BOX_TAG, ITEM_TAG, RUN_LOG_TAG}
    cells = [c for c in nb.cells if not inserted & set(c.get("metadata", {}).get("tags", []))]
    from mcalc.report.items import split_lead

    nb.cells, first_param, printed = [], None, []
    chapter, counts = chapter_number(Path(path).stem), {}
    for cell in cells:
        nb.cells.append(cell)
        if cell.cell_type != "code":
            continue
        tags = _tags(cell)
        items = _display_items(cell)
        if INJECTED_TAG in tags or PARAMETERS_TAG in tags or CHECK_CALL in cell.source:
            _add(
                tags, "remove-cell"
            )  # the parameters and their check: the "this run" box says them
            first_param = len(nb.cells) - 1 if first_param is None else first_param
        elif {"remove-cell", "remove-input"} & set(tags):
            continue
        elif items:  # shown by the glue:figure cells below it, captioned and citable
            _add(tags, "hide-input")
            _add(tags, "remove-output")
            for item in items:
                if not split_lead(item["caption"])[
                    0
                ]:  # not one of the paper's: the study's own number
                    counts[item["kind"]] = counts.get(item["kind"], 0) + 1
                    item["number"] = own_lead(item["kind"], chapter, counts[item["kind"]])
                figure = nbformat.v4.new_markdown_cell(
                    _glue_figure(item, _item_label(Path(path).stem, item["key"]))
                )
                figure.metadata["tags"] = [ITEM_TAG]
                nb.cells.append(figure)
        elif text := _printed_only(
            cell
        ):  # a run message: into the run log, the code still a click away
            printed.append(text)
            _add(tags, "hide-input")
            _add(tags, "remove-output")
        elif cell.get("outputs") and all(_glued(o) for o in cell.outputs):
            _add(
                tags, "remove-input"
            )  # only glues numbers for the prose: nothing to show or toggle
        else:
            _add(tags, "hide-input")
    if printed:
        log = nbformat.v4.new_markdown_cell(_run_log(printed))
        log.metadata["tags"] = [RUN_LOG_TAG]
        nb.cells.append(log)
    if first_param is not None:
        box = nbformat.v4.new_markdown_cell(
            run_box(parameters, commit or git_commit(Path(path).parent), versions())
        )
        box.metadata["tags"] = [RUN_BOX_TAG]
        nb.cells.insert(first_param, box)
    nbformat.write(nb, path)
