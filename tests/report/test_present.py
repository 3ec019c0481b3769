"""Executed notebooks as a reader sees them (mcalc.report.present) and a failing notebook as a user sees it."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import displayed

from mcalc.errors import NotebookFailed
from mcalc.records.provenance import Provenance
from mcalc.report import items
from mcalc.report.present import ITEM_TAG, RUN_BOX_TAG, RUN_LOG_TAG, myst_escape, present, run_box
from mcalc.run import profiles, runner

PARAMS = {"data_source": "phantom", "data_root": "../data", "seed": 3, "optimizer": "adam"}


def _executed(tmp_path: Path) -> Path:
    """An executed-notebook lookalike: title, the template's and papermill's parameters cells, two code cells."""
    cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("seed = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "# Parameters\nseed = 3", metadata={"tags": ["injected-parameters"]}
        ),
        nbformat.v4.new_code_cell("items.show_table(df, 'Table 1 — x')"),
        nbformat.v4.new_code_cell("hidden()", metadata={"tags": ["remove-input"]}),
        nbformat.v4.new_code_cell(
            "items.glue_numbers(n=3)",
            outputs=[
                nbformat.v4.new_output(
                    "display_data",
                    data={"application/papermill.record/text/plain": "3"},
                    metadata={"scrapbook": {"name": "n"}},
                )
            ],
        ),
    ]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_parameters_become_one_box_and_code_hides(tmp_path: Path) -> None:
    path = _executed(tmp_path)
    present(path, PARAMS, commit="abc1234")
    present(path, PARAMS, commit="abc1234")  # twice: still one box
    cells = nbformat.read(path, as_version=4).cells
    boxes = [c for c in cells if RUN_BOX_TAG in c.metadata.get("tags", [])]
    assert len(boxes) == 1 and cells.index(boxes[0]) == 1  # where the parameters were
    assert "abc1234" in boxes[0].source and "optimizer `adam`" in boxes[0].source
    tags = [c.metadata.get("tags", []) for c in cells if c.cell_type == "code"]
    assert "remove-cell" in tags[0] and "remove-cell" in tags[1]
    assert "hide-input" in tags[2] and "remove-cell" not in tags[2]
    assert tags[3] == ["remove-input"]
    assert tags[4] == ["remove-input"]  # a cell that only glues numbers has nothing to toggle


def test_run_box_names_data_weights_seed_versions() -> None:
    params = {**PARAMS, "weights": "auto", "task": "binary-merged"}
    box = run_box(params, "abc1234", {"Python": "3.11.9", "mcalc": "0.1"})
    assert box.startswith(":::{admonition} This run")
    first = box.splitlines()[2]
    assert "**task** `binary-merged`" in first and "This chapter" not in first
    for text in ("phantom", "`../data`", "`auto`", "`3`", "Python 3.11.9", "`abc1234`"):
        assert text in box
    assert "data_root" not in box  # the shared parameters are not repeated as the chapter's own


TRICKY = "Table 4 — ours_vs *paper* [95% CI] {ref}`x` $1 <b> #2 | a\\b"


def _with_items(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An executed notebook whose cells show: a numbered table (and a warning), an unnumbered figure,
    a table beside a printed line, and a number glued for the prose."""
    import matplotlib.pyplot as plt

    prov = Provenance(data="phantom")
    df = pd.DataFrame({"a": [1.0, 2.0]})
    table = displayed(monkeypatch, items.show_table, df, TRICKY, prov)
    warning = nbformat.v4.new_output("stream", name="stderr", text="UserWarning: x\n")
    figure = displayed(monkeypatch, items.show_figure, plt.subplots()[0], "ROC curves — demo", prov)
    mixed = displayed(monkeypatch, items.show_table, df, "Table 3 — beside a print", prov)
    printed = nbformat.v4.new_output("stream", name="stdout", text="runs found: adam\n")
    cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("seed = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("items.show_table(...)", outputs=[warning, *table]),
        nbformat.v4.new_code_cell("items.show_figure(...)", outputs=figure),
        nbformat.v4.new_code_cell("print(); items.show_table(...)", outputs=[printed, *mixed]),
        nbformat.v4.new_markdown_cell("## The end"),
    ]
    path = tmp_path / "05_comparison.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def _code_outputs(path: Path) -> list[str]:
    """Every code cell's outputs, serialised as written."""
    cells = json.loads(path.read_text())["cells"]
    return [json.dumps(c["outputs"], sort_keys=True) for c in cells if c["cell_type"] == "code"]


def test_captioned_items_become_labelled_glue_figures(tmp_path, monkeypatch) -> None:
    path = _with_items(tmp_path, monkeypatch)
    before = _code_outputs(path)
    present(path, PARAMS, commit="abc1234")
    assert _code_outputs(path) == before  # outputs untouched, byte for byte (nbval compares them)
    cells = nbformat.read(path, as_version=4).cells
    kinds = [(c.cell_type, c.metadata.get("tags", [])) for c in cells]
    assert kinds == [
        ("markdown", []),
        ("markdown", [RUN_BOX_TAG]),
        ("code", ["parameters", "remove-cell"]),
        ("code", ["hide-input", "remove-output"]),
        ("markdown", [ITEM_TAG]),
        ("code", ["hide-input", "remove-output"]),
        ("markdown", [ITEM_TAG]),
        ("code", ["hide-input"]),  # a printed line beside the table: left as it was
        ("markdown", []),
    ]
    table, figure = cells[4].source, cells[6].source
    lines = table.splitlines()
    assert lines[:3] == [
        "```{glue:figure} table-4",
        ":name: 05_comparison-table-4",
        f":figclass: {ITEM_TAG}",
    ]
    assert lines[-1] == "```" and lines[3] == "" and lines[5] == ""
    assert lines[4] == "**Table 4 —** " + myst_escape(TRICKY.split(" — ", 1)[1])
    assert lines[6] == f"*{myst_escape(Provenance(data='phantom').label())}*"
    key = items.item_key("ROC curves — demo")
    assert figure.startswith(f"```{{glue:figure}} {key}\n:name: 05_comparison-{key}\n")
    assert "\n**Figure S5\\.1 —** ROC curves — demo\n" in figure  # the study's own number


@pytest.mark.parametrize(
    "stem, number",
    [
        ("01_data_curation", "1"),
        ("05_comparison", "5"),
        ("03_optimizer_adam", "3.1"),
        ("03_optimizer_rmsprop", "3.4"),
        ("05_sensitivity_adadelta_lr1e-3", "5.A"),  # never chapter 5's own S5.n
        ("05_sensitivity_adadelta_lr1", "5.B"),
        ("intro", ""),
    ],
)
def test_own_items_are_numbered_by_chapter_as_the_contents_number_it(stem, number) -> None:
    """Items that are not the paper's are numbered 'Table S<chapter>.<n>'; the optimizer chapters 3.1–3.4."""
    from mcalc.report.present import chapter_number, own_lead

    assert chapter_number(stem) == number
    assert own_lead("Table", number, 2) == (f"Table S{number}.2 —" if number else "Table S2 —")


def test_present_twice_gives_the_same_notebook(tmp_path, monkeypatch) -> None:
    path = _with_items(tmp_path, monkeypatch)
    present(path, PARAMS, commit="abc1234")
    once = [(c.cell_type, c.source, c.metadata) for c in nbformat.read(path, as_version=4).cells]
    present(path, PARAMS, commit="abc1234")
    twice = [(c.cell_type, c.source, c.metadata) for c in nbformat.read(path, as_version=4).cells]
    assert twice == once


def test_myst_escape_renders_the_text_as_it_is() -> None:
    """Escaped, a caption full of Markdown / MyST syntax renders as its own text, nothing more."""
    import html

    from markdown_it import MarkdownIt

    for text in (TRICKY, "1. not a list", "- nor this", "# nor a heading", "*provenance*: x_y"):
        rendered = MarkdownIt("commonmark").render(myst_escape(text))
        assert rendered == f"<p>{html.escape(text, quote=False)}</p>\n"


@pytest.mark.slow
def test_a_failing_cell_is_one_line_and_the_kernel_log_is_kept(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "x.py").write_text(
        "# %% [markdown]\n# # X\n\n# %% tags=['parameters']\nseed = 0\n\n"
        "# %%\nimport sys\nprint('to the log', file=sys.stderr)\n\n"
        "# %%\nfrom mcalc.errors import DataError\nraise DataError('class MALIGNANT has no ROI\\n in the test split')\n"
    )
    profile = profiles.get_profile("ci", out_dir=str(tmp_path / "out"))
    with pytest.raises(NotebookFailed) as failed:
        runner.execute(runner.NotebookRun("x", "x"), profile, notebook_dir=templates)
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith("notebook x failed in cell [")
    assert "DataError: class MALIGNANT has no ROI in the test split" in message
    assert str(tmp_path / "out" / "x.ipynb") in message
    assert (tmp_path / "out" / "x.ipynb").is_file()
    assert (tmp_path / "out" / runner.KERNEL_LOG).is_file()


def test_the_parameter_check_is_removed_with_the_parameters(tmp_path: Path) -> None:
    """The cell checking the parameters (right after them) shows nothing in the book: no empty toggle."""
    cells = [
        nbformat.v4.new_code_cell("seed = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("seed = 3", metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell(
            "from mcalc.run.parameters import check_parameters\n\ncheck_parameters(globals())"
        ),
        nbformat.v4.new_code_cell("work()"),
    ]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    present(path, PARAMS, commit="abc1234")
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert ["remove-cell" in c.metadata.get("tags", []) for c in code] == [True, True, True, False]


def test_printed_run_messages_go_to_one_collapsed_run_log(tmp_path: Path) -> None:
    """Cells that only print are hidden in place and their text gathered, once, in a closed run log at the end."""
    stream = nbformat.v4.new_output
    cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell(
            "print(run.describe())",
            outputs=[
                stream("stream", name="stderr", text="oneDNN notice\n"),
                stream("stream", name="stdout", text="ADAM: head trained in 23.5 s\n"),
            ],
        ),
        nbformat.v4.new_code_cell(
            "print(saved)", outputs=[stream("stream", name="stdout", text="saved: cnn_adam.json\n")]
        ),
        nbformat.v4.new_code_cell(
            "x", outputs=[stream("execute_result", data={"text/plain": "3"}, execution_count=1)]
        ),
    ]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    present(path, PARAMS, commit="abc1234")
    present(path, PARAMS, commit="abc1234")
    cells = nbformat.read(path, as_version=4).cells
    logs = [c for c in cells if RUN_LOG_TAG in c.metadata.get("tags", [])]
    assert len(logs) == 1 and cells[-1] is logs[0]
    assert logs[0].source.startswith("<details") and "<details open" not in logs[0].source
    assert "head trained in 23.5 s" in logs[0].source and "saved: cnn_adam.json" in logs[0].source
    assert "\n" not in logs[0].source  # one HTML block, whatever was printed
    assert "oneDNN" not in logs[0].source  # stderr stays in the kernel log
    code = [c for c in cells if c.cell_type == "code"]
    assert "remove-output" in code[0].metadata.tags and "remove-output" in code[1].metadata.tags
    assert "remove-output" not in code[2].metadata.get("tags", [])  # a result is shown
    assert code[1].outputs[0]["text"] == "saved: cnn_adam.json\n"  # outputs untouched (nbval)
