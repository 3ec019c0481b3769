"""Executed notebooks as a reader sees them (mcalc.present) and a failing notebook as a user sees it."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from mcalc import pipeline as pl
from mcalc.errors import NotebookFailed
from mcalc.present import RUN_BOX_TAG, present, run_box

PARAMS = {"data_source": "phantom", "data_root": "../data", "seed": 3, "optimizer": "adam"}


def _executed(tmp_path: Path) -> Path:
    """An executed-notebook lookalike: title, the template's and papermill's parameters cells, two code cells."""
    cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("seed = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "# Parameters\nseed = 3", metadata={"tags": ["injected-parameters"]}
        ),
        nbformat.v4.new_code_cell("plots.show_table(df, 'Table 1 — x')"),
        nbformat.v4.new_code_cell("hidden()", metadata={"tags": ["remove-input"]}),
        nbformat.v4.new_code_cell(
            "plots.glue_numbers(n=3)",
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


@pytest.mark.slow
def test_a_failing_cell_is_one_line_and_the_kernel_log_is_kept(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "x.py").write_text(
        "# %% [markdown]\n# # X\n\n# %% tags=['parameters']\nseed = 0\n\n"
        "# %%\nimport sys\nprint('to the log', file=sys.stderr)\n\n"
        "# %%\nfrom mcalc.errors import DataError\nraise DataError('class MALIGNANT has no ROI\\n in the test split')\n"
    )
    profile = pl.get_profile("ci", out_dir=str(tmp_path / "out"))
    with pytest.raises(NotebookFailed) as failed:
        pl.execute(pl.NotebookRun("x", "x"), profile, notebook_dir=templates)
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith("notebook x failed in cell [")
    assert "DataError: class MALIGNANT has no ROI in the test split" in message
    assert str(tmp_path / "out" / "x.ipynb") in message
    assert (tmp_path / "out" / "x.ipynb").is_file()
    assert (tmp_path / "out" / pl.KERNEL_LOG).is_file()
