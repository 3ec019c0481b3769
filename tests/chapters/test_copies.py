"""Chapter 8 executed on a tiny phantom: every number it shows is what mcalc.evaluate.compare computes on its two copies."""

from __future__ import annotations

import ast
import io
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from conftest import ci_executed

from mcalc.evaluate import compare
from mcalc.evaluate.shift import feature_shift, shift_sentence

ROOT = Path(__file__).resolve().parents[2]


def _outputs(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The executed notebook's tables (caption → CSV) and glued values (name → text)."""
    import nbformat

    tables, glued = {}, {}
    for cell in nbformat.read(path, as_version=4).cells:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {})
            table = meta.get("mcalc", {}).get("table")
            if table:
                tables[table["caption"]] = table["csv"]
            name = meta.get("scrapbook", {}).get("name")
            record = out.get("data", {}).get("application/papermill.record/text/plain")
            if name and record is not None:
                glued[name] = ast.literal_eval(record)
    return tables, glued


@pytest.fixture(scope="module")
def chapter8(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Chapter 8 executed on a tiny phantom: (executed notebook, results folder).

    The CI build's execution (make notebooks-ci, which make test runs first) when it is up to date
    with the sources; else the chapter is executed here, on the CI profile with fewer epochs.
    """
    from mcalc.run.pipeline import copies_run
    from mcalc.run.profiles import get_profile
    from mcalc.run.runner import execute

    notebook, results_dir, _why = ci_executed("08_copies")
    if notebook is not None:
        return notebook, results_dir
    tmp_path = tmp_path_factory.mktemp("chapter8")
    profile = replace(
        get_profile("ci"),
        results_dir=str(tmp_path / "results"),
        cache_dir=str(tmp_path / "cache"),
        out_dir=str(tmp_path / "notebooks"),
        epochs=1,
        n_boot=20,
        cv_folds=2,
    )
    return execute(copies_run(profile), profile), tmp_path / "results"


@pytest.mark.kernel
def test_the_chapter_shows_what_compare_computes(chapter8: tuple[Path, Path]) -> None:
    notebook, results_dir = chapter8
    tables, glued = _outputs(notebook)
    a = results_dir / "copies" / "dicom"
    b = results_dir / "copies" / "kaggle-jpeg"
    c = compare.compare_runs(a, b)  # recomputed here: the same paired bootstrap, same seed
    (caption,) = [k for k in tables if k.startswith("Table 4 metrics")]
    shown = tables[caption]
    assert shown == compare.difference_table(c, names=("DICOM", "Kaggle JPEG")).to_csv()
    assert len(pd.read_csv(io.StringIO(shown))) == len(c.table4())
    assert glued["difference_text"] == compare.difference_sentence(c)
    assert glued["shift_text"] == shift_sentence(feature_shift(a, b))
    assert glued["verdict_text"] == compare.verdict_sentence(c)
    assert (glued["n_excluding"], glued["n_differences"]) == c.n_excluding_zero()
    # the copies differ in their data copy and nothing else that either records
    (prov_caption,) = [k for k in tables if k.startswith("Provenance of the two runs")]
    prov = pd.read_csv(io.StringIO(tables[prov_caption]), index_col=0)
    assert list(prov.index[prov["differs"]]) == ["data copy"]
    assert (
        "JPEG round trip of the pipeline, not the real copies"
        in (ROOT / "notebooks" / "08_copies.py").read_text()
    )


def test_each_copy_runs_the_head_in_its_own_folder_under_the_copies_seed_and_task():
    """A copy's step inputs: its own results folder, the copies' image size, weights, hold-out and
    resamples, and the head under the copies' seed and task (whatever the head's own settings say)."""
    from mcalc.chapters.copies import CopiesConfig
    from mcalc.learn.model import TrainConfig

    config = CopiesConfig(
        "results",
        "cache",
        seed=3,
        task="binary-merged",
        image_size=75,
        weights="random",
        train=TrainConfig(epochs=2, seed=0),
        validation_size=10,
        n_boot=7,
    )
    inputs = config.step_inputs("kaggle-jpeg")
    assert Path(inputs.results_dir) == Path("results") / "copies" / "kaggle-jpeg"
    assert (inputs.image_size, inputs.weights, inputs.validation_size, inputs.n_boot) == (
        75,
        "random",
        10,
        7,
    )
    assert inputs.config == replace(config.train, seed=3, task="binary-merged")
    assert inputs.splitting_seed == 3
