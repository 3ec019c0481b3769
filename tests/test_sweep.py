"""Sweeps on Dask: grid files, content keys, resume, retries, a killed worker, and the serial path's numbers."""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pandas as pd
import psutil
import pytest

from mcalc import rebuild, sweep
from mcalc.cli import main
from mcalc.errors import DataError
from mcalc.pipeline import get_profile, seed_sweep

ROOT = Path(__file__).resolve().parents[1]

# A template as small as a notebook gets: it logs each execution, can kill its worker once or fail,
# and saves a run record the way 03_optimizer does.
FAKE_TEMPLATE = """# %% tags=["parameters"]
results_dir = "results"
x = 0
fail = False
kill = ""
run_record = ""

# %%
import json, os, pathlib, signal

with open(pathlib.Path(results_dir) / "executions.log", "a") as fh:
    fh.write(f"{x}\\n")
if kill and not pathlib.Path(kill).exists():
    pathlib.Path(kill).write_text("killed once")
    os.kill(os.getppid(), signal.SIGKILL)
    os._exit(1)
if fail:
    raise ValueError(f"point {x} fails on purpose")
metrics = {"accuracy": x / 10, "auc_pooled": 0.5, "sensitivity_at_spec80": 0.1, "loss_kl": 1.0}
metrics["ci"] = {"accuracy": [x / 10 - 0.05, x / 10 + 0.05]}
pathlib.Path(run_record).write_text(json.dumps({"test": metrics}))
"""


@pytest.fixture
def fake(tmp_path):
    """(notebook folder holding the fake template, a profile whose results folder is in tmp_path)."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "fake.py").write_text(FAKE_TEMPLATE)
    profile = get_profile("ci", results_dir=str(tmp_path / "results"))
    Path(profile.results_dir).mkdir()
    return notebooks, profile


def _spec(**kw) -> sweep.GridSpec:
    """A grid of the fake template (no study inputs)."""
    return sweep.GridSpec.from_dict({"name": "fake", "template": "fake", "inputs": [], **kw})


def _executions(profile) -> list[int]:
    """The x of every execution of the fake template, in order."""
    log = Path(profile.results_dir) / "executions.log"
    return [int(line) for line in log.read_text().split()] if log.exists() else []


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: a\ngrid: [1, 2\n", "not valid YAML"),
        ("- just\n- a list\n", "a grid file is a mapping"),
        ("name: a\ngird: {seed: [0]}\n", "unknown key"),
        ("name: ../up\ngrid: {seed: [0]}\n", "'name' must be a plain name"),
        ("name: a\ngrid: {seed: 3}\n", "non-empty list"),
        ("name: a\n", "no points"),
        ("name: a\ngrid: {seed: [0]}\ninputs: [../../etc/passwd]\n", "inside the results folder"),
    ],
)
def test_a_bad_grid_file_is_one_clear_error(tmp_path, text, message):
    """Malformed YAML or a malformed grid raises DataError naming the file and the problem."""
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as exc:
        sweep.read_grid(path)
    assert str(path) in str(exc.value)


def test_cli_sweep_with_a_bad_grid_exits_2_without_a_traceback(tmp_path, capsys):
    """`mcalc sweep` on a missing or malformed grid file: exit 2 and one line on stderr."""
    assert main(["sweep", str(tmp_path / "absent.yaml"), "--quiet"]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: a\ngrid: {seed: 3}\n")
    assert main(["sweep", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("mcalc sweep:") == 2 and "Traceback" not in err


def test_an_axis_the_template_does_not_declare_is_refused(fake):
    """papermill would ignore an unknown parameter: the sweep refuses it before running anything."""
    notebooks, profile = fake
    with pytest.raises(DataError, match="'learning_rat' is not a parameter of fake"):
        sweep.expand(_spec(grid={"learning_rat": [1e-3]}), profile, notebooks)


def test_points_are_keyed_by_content_and_duplicates_collapse(fake):
    """Equal parameters make one point; another value, or changed template text, another key."""
    notebooks, profile = fake
    points = sweep.expand(
        _spec(grid={"x": [1, 1, 2]}, points=[{"x": 2}, {"x": 3}]), profile, notebooks
    )
    assert [p.axes["x"] for p in points] == [1, 2, 3]
    assert len({p.key for p in points}) == 3
    (notebooks / "fake.py").write_text(FAKE_TEMPLATE + "\n# another line\n")
    again = sweep.expand(_spec(grid={"x": [1]}), profile, notebooks)
    assert again[0].key != points[0].key


def test_an_edit_of_mcalc_changes_every_key(fake, monkeypatch):
    """The same grid after an edit of mcalc's sources (another source digest): every point has a new key."""
    notebooks, profile = fake
    spec = _spec(grid={"x": [1, 2]})
    before = [p.key for p in sweep.expand(spec, profile, notebooks)]
    assert [p.key for p in sweep.expand(spec, profile, notebooks)] == before
    monkeypatch.setattr(rebuild, "source_digest", lambda: "edited mcalc")
    after = [p.key for p in sweep.expand(spec, profile, notebooks)]
    assert len(after) == 2 and not set(after) & set(before)


def test_dask_progress_bar_on_a_terminal_only(monkeypatch, capsys):
    """Dask's bar is drawn when stdout is a terminal; into a log (not a terminal) nothing at all is written."""
    from distributed import Client

    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as c:
        sweep.show_progress([c.submit(sum, [1, 2])])
        assert capsys.readouterr().out == ""
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
        sweep.show_progress([c.submit(sum, [3, 4])])
        assert "100% Completed" in capsys.readouterr().out


def test_the_first_writer_of_a_record_wins(tmp_path):
    """Concurrent writers of one key: exactly one writes, the file is whole and is that writer's."""
    path = tmp_path / "records" / "k.json"
    barrier = threading.Barrier(8)
    wrote = {}

    def writer(i: int) -> None:
        barrier.wait()
        wrote[i] = sweep.write_first({"writer": i, "pad": "x" * 100_000}, path)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, ok in wrote.items() if ok]
    assert len(winners) == 1
    assert json.loads(path.read_text())["writer"] == winners[0]
    assert sorted(p.name for p in path.parent.iterdir()) == ["k.json"]


@pytest.mark.slow
def test_serial_sweep_resumes_retries_once_and_lists_failures(fake):
    """An interrupted sweep (half its grid done) resumes; a failing point runs twice, then is recorded."""
    notebooks, profile = fake
    first = sweep.run_sweep(
        _spec(grid={"x": [0, 1]}), profile, "serial", progress=False, notebook_dir=notebooks
    )
    assert len(first.ran) == 2 and not first.failed
    spec = _spec(grid={"x": [0, 1, 2]}, points=[{"x": 3, "fail": True}])
    second = sweep.run_sweep(spec, profile, "serial", progress=False, notebook_dir=notebooks)
    assert sorted(second.skipped) == sorted(first.ran)
    assert len(second.ran) == 1 and len(second.failed) == 1
    assert _executions(profile) == [0, 1, 2, 3, 3]  # done points skipped; the failure retried once
    kernels = [
        p for p in psutil.Process().children(recursive=True) if "ipykernel" in " ".join(p.cmdline())
    ]
    assert kernels == []  # every point's kernel is shut down, the failed ones' too
    assert "ValueError: point 3 fails on purpose" in second.describe()
    done, missing = sweep.load_sweep(profile.results_dir, "fake")
    assert [r["axes"]["x"] for r in done] == [0, 1, 2]
    assert missing[0]["status"] == "failed" and "fails on purpose" in missing[0]["error"]
    with pytest.raises(DataError, match="1 point"):
        sweep.load_runs(profile.results_dir, "fake")
    runs = sweep.load_runs(profile.results_dir, "fake", allow_missing=True)
    assert runs["x"].tolist() == [0, 1, 2] and runs["accuracy"].tolist() == [0.0, 0.1, 0.2]


def test_a_sweep_is_shown_as_a_table_and_a_figure_of_each_axis(fake):
    """Chapter 5's view of a sweep: one row per point with its interval; one panel per metric and axis."""
    import matplotlib.pyplot as plt

    from mcalc import plots

    notebooks, profile = fake
    sweep.run_sweep(
        _spec(grid={"x": [2, 1]}), profile, "serial", progress=False, notebook_dir=notebooks
    )
    runs = sweep.load_runs(profile.results_dir, "fake")
    assert sweep.grid_axes(runs) == ["x"]
    table = sweep.runs_table(runs)
    assert table.loc[2, "accuracy"] == "0.200 [0.150, 0.250]" and table.loc[1, "AUC"] == "0.500"
    fig = plots.sweep_axes(runs, ["x"])
    assert len(fig.axes) == 3 and fig.axes[0].get_xticklabels()[0].get_text() == "2"
    plt.close(fig)


@pytest.mark.slow
def test_local_cluster_survives_a_killed_worker_and_runs_a_duplicate_once(fake, tmp_path):
    """On 2 workers: a point whose worker dies mid-task is re-run, a failure is retried once, a duplicate runs once."""
    notebooks, profile = fake
    marker = str(tmp_path / "killed")
    spec = _spec(points=[{"x": 0, "kill": marker}, {"x": 1, "fail": True}, {"x": 2}, {"x": 2}])
    summary = sweep.run_sweep(
        spec, profile, "local", workers=2, progress=False, notebook_dir=notebooks, dashboard=False
    )
    assert Path(marker).exists()  # the worker was killed once
    assert len(summary.ran) == 2 and list(summary.failed.values()) == [
        "ValueError: point 1 fails on purpose"
    ]
    assert sorted(_executions(profile)) == [0, 0, 1, 1, 2]
    done, _ = sweep.load_sweep(profile.results_dir, "fake")
    assert [r["axes"]["x"] for r in done] == [0, 2]


@pytest.fixture(scope="module")
def study_inputs(tmp_path_factory):
    """The CI profile on a tiny phantom with random-weight features at 75 px (what notebooks 01-02 make)."""
    from mcalc.features import compute_features
    from mcalc.prepare import prepare_data
    from mcalc.results import load_manifest, read_results_provenance
    from mcalc.weights import resolve_weights

    root = tmp_path_factory.mktemp("sweep")
    profile = get_profile(
        "ci",
        data_root=str(root / "data"),
        results_dir=str(root / "results"),
        cache_dir=str(root / "cache"),
        weights="random",
    )
    prepare_data(
        "phantom",
        Path(profile.data_root),
        phantom_scale=profile.phantom_scale,
        seed=profile.seed,
        results_dir=Path(profile.results_dir),
        progress=False,
    )
    manifest = load_manifest(profile.results_dir)
    weights = resolve_weights("random")
    prov = read_results_provenance(profile.results_dir).with_weights(weights.used, weights.note)
    compute_features(
        manifest,
        profile.image_size,
        weights,
        Path(profile.cache_dir),
        Path(profile.results_dir),
        prov,
        progress=False,
    )
    return profile


@pytest.mark.slow
def test_dask_sweep_of_the_optimizer_template_gives_the_serial_numbers(study_inputs):
    """A 4-point grid of 03_optimizer on a 2-worker LocalCluster: the same records as the serial path."""
    from mcalc.audits import variance_summary

    grid = {
        "fixed": {"epochs": 2, "n_boot": 0, "split_seed": 0},
        "grid": {"optimizer": ["adam", "rmsprop"], "seed": [0, 1]},
    }
    on_dask = sweep.run_sweep(
        sweep.GridSpec.from_dict({"name": "dask", **grid}),
        study_inputs,
        "local",
        workers=2,
        progress=False,
        dashboard=False,
    )
    serial = sweep.run_sweep(
        sweep.GridSpec.from_dict({"name": "serial", **grid}),
        study_inputs,
        "serial",
        progress=False,
    )
    assert len(on_dask.ran) == len(serial.ran) == 4 and not on_dask.failed and not serial.failed
    a, _ = sweep.load_sweep(study_inputs.results_dir, "dask")
    b, _ = sweep.load_sweep(study_inputs.results_dir, "serial")
    for x, y in zip(a, b):
        assert x["key"] == y["key"] and x["axes"] == y["axes"]
        for part in ("history", "validation", "test", "config", "split_sizes"):
            assert x["run"][part] == y["run"][part], part
    runs = sweep.load_runs(study_inputs.results_dir, "dask")
    pd.testing.assert_frame_equal(runs, sweep.load_runs(study_inputs.results_dir, "serial"))
    assert runs[["optimizer", "seed"]].values.tolist() == [
        ["ADAM", 0],
        ["ADAM", 1],
        ["RMSProp", 0],
        ["RMSProp", 1],
    ]
    summary = variance_summary(runs)  # chapter 7's table reads such a sweep
    assert "Kruskal–Wallis across optimizers" in summary.index
    assert summary.loc["ADAM", "accuracy"] == (
        f"{runs.accuracy[:2].mean():.3f} ± {runs.accuracy[:2].std():.3f}"
    )


def test_chapter_7_grid_is_every_optimizer_by_seed_on_the_optimizer_template(tmp_path):
    """The profile's seed sweep is a valid grid of 03_optimizer: 4 optimizers × n_seeds points."""
    profile = get_profile("ci", results_dir=str(tmp_path))
    spec = replace(sweep.GridSpec.from_dict(seed_sweep(profile)), inputs=())
    points = sweep.expand(spec, profile, ROOT / "notebooks")
    assert len(points) == 4 * profile.n_seeds
    assert {p.parameters["split_seed"] for p in points} == {profile.seed}
    assert points[0].parameters["epochs"] == profile.epochs
