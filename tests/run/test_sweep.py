"""Sweeps on Dask: grid files, content keys, resume, retries, a killed worker, and the serial path's numbers."""

from __future__ import annotations

import json
import re
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pandas as pd
import psutil
import pytest

from mcalc.errors import DataError
from mcalc.records import cache, sweeps
from mcalc.run import sweep
from mcalc.run.cli import main
from mcalc.run.pipeline import get_profile, seed_sweep

ROOT = Path(__file__).resolve().parents[2]

# A template as small as a notebook gets: it logs each execution, can kill its worker once or fail,
# and saves a run record the way 03_optimizer does.
FAKE_TEMPLATE = """# %% tags=["parameters"]
results_dir = "results"
x = 0
fail = False
kill = ""
log = ""
read = ""
hold = ""
train_backbone = "none"
run_record = ""

# %%
import json, os, pathlib, signal, time

with open(log or pathlib.Path(results_dir) / "executions.log", "a") as fh:
    fh.write(f"{x} {os.environ.get('MCALC_TEST_WORKER', '-')} {os.getpid()}\\n")
if hold and not pathlib.Path(hold).exists():  # the first execution waits there, to be killed
    pathlib.Path(hold).write_text(os.environ.get("MCALC_TEST_WORKER", "-"))
    time.sleep(300)
if kill and not pathlib.Path(kill).exists():
    pathlib.Path(kill).write_text("killed once")
    os.kill(os.getppid(), signal.SIGKILL)
    os._exit(1)
if fail:
    raise ValueError(f"point {x} fails on purpose")
metrics = {"accuracy": x / 10, "auc_pooled": 0.5, "sensitivity_at_spec80": 0.1, "loss_kl": 1.0}
metrics["ci"] = {"accuracy": [x / 10 - 0.05, x / 10 + 0.05]}
data = (pathlib.Path(results_dir) / read).read_text() if read else None
pathlib.Path("figure.txt").write_text(f"figure of point {x}")
pathlib.Path(run_record).write_text(json.dumps({"test": metrics, "data": data}))
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


def _log(profile) -> str:
    """Where the fake template logs its executions: beside the results folder, so workers without it reach it."""
    return str(Path(profile.results_dir).parent / "executions.log")


def _executions(profile) -> list[int]:
    """The x of every execution of the fake template, in order."""
    log = Path(_log(profile))
    return [int(line.split()[0]) for line in log.read_text().splitlines()] if log.exists() else []


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
    monkeypatch.setattr(cache, "source_digest", lambda: "edited mcalc")
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
        wrote[i] = sweeps.write_first({"writer": i, "pad": "x" * 100_000}, path)

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
    log = {"log": _log(profile)}
    first = sweep.run_sweep(
        _spec(grid={"x": [0, 1]}, fixed=log),
        profile,
        "serial",
        progress=False,
        notebook_dir=notebooks,
    )
    assert len(first.ran) == 2 and not first.failed
    spec = _spec(grid={"x": [0, 1, 2]}, points=[{"x": 3, "fail": True}], fixed=log)
    second = sweep.run_sweep(spec, profile, "serial", progress=False, notebook_dir=notebooks)
    assert sorted(second.skipped) == sorted(first.ran)
    assert len(second.ran) == 1 and len(second.failed) == 1
    assert _executions(profile) == [0, 1, 2, 3, 3]  # done points skipped; the failure retried once
    kernels = [
        p for p in psutil.Process().children(recursive=True) if "ipykernel" in " ".join(p.cmdline())
    ]
    assert kernels == []  # every point's kernel is shut down, the failed ones' too
    assert "ValueError: point 3 fails on purpose" in second.describe()
    done, missing = sweeps.load_sweep(profile.results_dir, "fake")
    assert [r["axes"]["x"] for r in done] == [0, 1, 2]
    assert missing[0]["status"] == "failed" and "fails on purpose" in missing[0]["error"]
    with pytest.raises(DataError, match="1 point"):
        sweeps.load_runs(profile.results_dir, "fake")
    runs = sweeps.load_runs(profile.results_dir, "fake", allow_missing=True)
    assert runs["x"].tolist() == [0, 1, 2] and runs["accuracy"].tolist() == [0.0, 0.1, 0.2]


def test_a_sweep_is_shown_as_a_table_and_a_figure_of_each_axis(fake):
    """Chapter 5's view of a sweep: one row per point with its interval; one panel per metric and axis."""
    import matplotlib.pyplot as plt

    from mcalc.report import plots

    notebooks, profile = fake
    sweep.run_sweep(
        _spec(grid={"x": [2, 1]}), profile, "serial", progress=False, notebook_dir=notebooks
    )
    runs = sweeps.load_runs(profile.results_dir, "fake")
    assert sweeps.grid_axes(runs) == ["x"]
    table = sweeps.runs_table(runs)
    assert table.loc[2, "accuracy"] == "0.200 [0.150, 0.250]" and table.loc[1, "AUC"] == "0.500"
    fig = plots.sweep_axes(runs, ["x"])
    assert len(fig.axes) == 3 and fig.axes[0].get_xticklabels()[0].get_text() == "2"
    plt.close(fig)


@pytest.mark.slow
def test_local_cluster_survives_a_killed_worker_and_runs_a_duplicate_once(fake, tmp_path):
    """On 2 workers: a point whose worker dies mid-task is re-run, a failure is retried once, a duplicate runs once."""
    notebooks, profile = fake
    marker = str(tmp_path / "killed")
    spec = _spec(
        points=[{"x": 0, "kill": marker}, {"x": 1, "fail": True}, {"x": 2}, {"x": 2}],
        fixed={"log": _log(profile)},
    )
    summary = sweep.run_sweep(
        spec, profile, "local", workers=2, progress=False, notebook_dir=notebooks, dashboard=False
    )
    assert Path(marker).exists()  # the worker was killed once
    assert len(summary.ran) == 2 and list(summary.failed.values()) == [
        "ValueError: point 1 fails on purpose"
    ]
    assert sorted(_executions(profile)) == [0, 0, 1, 1, 2]
    done, _ = sweeps.load_sweep(profile.results_dir, "fake")
    assert [r["axes"]["x"] for r in done] == [0, 2]


@pytest.fixture(scope="module")
def study_inputs(tmp_path_factory):
    """The CI profile on a tiny phantom with random-weight features at 75 px (what notebooks 01-02 make)."""
    from mcalc.chapters.prepare import prepare_data
    from mcalc.learn.features import compute_features
    from mcalc.learn.weights import resolve_weights
    from mcalc.records.results import load_manifest, read_results_provenance

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
    """A 4-point grid of 03_optimizer on a 2-worker LocalCluster, warm kernels (a worker's second point
    runs in the kernel of its first): the same records as the serial path with a fresh kernel per point."""
    from mcalc.chapters.audits import variance_summary

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
        warm=False,
    )
    assert len(on_dask.ran) == len(serial.ran) == 4 and not on_dask.failed and not serial.failed
    a, _ = sweeps.load_sweep(study_inputs.results_dir, "dask")
    b, _ = sweeps.load_sweep(study_inputs.results_dir, "serial")
    assert all(r["kernel"]["warm"] for r in a) and not any(r["kernel"]["warm"] for r in b)
    assert sum(r["kernel"]["points_before"] for r in a) >= 2  # 4 points, 2 kernels: reused
    for x, y in zip(a, b):
        assert x["key"] == y["key"] and x["axes"] == y["axes"]
        for part in ("history", "validation", "test", "train", "config", "split_sizes"):
            assert x["run"][part] == y["run"][part], part
    runs = sweeps.load_runs(study_inputs.results_dir, "dask")
    pd.testing.assert_frame_equal(runs, sweeps.load_runs(study_inputs.results_dir, "serial"))
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


# --- bad grids: every value checked against the template, bounded expansion (before anything runs) ---

OPTIMIZER_TEMPLATE = ROOT / "notebooks"


def _optimizer_spec(**kw) -> sweep.GridSpec:
    """A grid of the optimizer template without study inputs (expansion only)."""
    return replace(sweep.GridSpec.from_dict({"name": "bad", **kw}), inputs=())


@pytest.mark.parametrize(
    "axis, value, accepted",
    [
        ("learning_rate", float("inf"), "a finite value"),
        ("learning_rate", float("nan"), "a finite value"),
        ("learning_rate", -1e-3, "a finite number > 0"),
        ("learning_rate", "fast", "a finite number > 0"),
        ("epochs", 2.5, "an integer >= 1"),
        ("epochs", 0, "an integer >= 1"),
        ("image_size", 0, "an integer >= 75 and <= 2048"),
        ("seed", True, "an integer >= 0"),
        ("optimizer", "sgd", "one of adam, adagrad, adadelta, rmsprop"),
        ("train_backbone", "half", "one of none, top, all"),
        ("validation_size", 1.5, "a count of ROIs (an integer >= 1) or a fraction"),
        ("batch_size", [32, 64], "a single value"),
        ("split_seed", -1, "an integer >= 0"),
    ],
)
def test_every_grid_value_is_checked_against_the_template(axis, value, accepted):
    """A value of the wrong type or out of range: DataError naming the parameter, the value and what it takes."""
    profile = get_profile("ci")
    where_ = ({"grid": {axis: [value]}}, {"grid": {"n_boot": [0]}, "fixed": {axis: value}})
    for where in (*where_, {"points": [{axis: value}]}):
        with pytest.raises(DataError, match=f"{axis} = .* is refused: give {re.escape(accepted)}"):
            sweep.expand(_optimizer_spec(**where), profile, OPTIMIZER_TEMPLATE)


def test_grid_values_are_taken_as_the_template_takes_them():
    """YAML's 1e-4 (text) is the number; 2.0 epochs are 2; null is the split seed's default; a fraction hold-out."""
    profile = get_profile("ci")
    spec = _optimizer_spec(
        grid={"learning_rate": ["1e-4"], "epochs": [2.0]},
        fixed={"split_seed": None, "validation_size": 0.25},
    )
    (point,) = sweep.expand(spec, profile, OPTIMIZER_TEMPLATE)
    assert point.axes == {"learning_rate": 1e-4, "epochs": 2}
    assert isinstance(point.parameters["epochs"], int)
    assert point.parameters["split_seed"] is None and point.parameters["validation_size"] == 0.25


def test_an_unknown_parameter_is_checked_by_its_default_type(fake):
    """A parameter mcalc has no range for takes its default's type: x (an int) refuses text and 1.5."""
    notebooks, profile = fake
    for bad in ("one", 1.5, float("inf")):
        with pytest.raises(DataError, match="x = .* is refused"):
            sweep.expand(_spec(grid={"x": [bad]}), profile, notebooks)
    with pytest.raises(DataError, match="fail = 'yes' is refused: give true or false"):
        sweep.expand(_spec(grid={"fail": ["yes"]}), profile, notebooks)


def test_a_grid_of_too_many_points_is_refused_before_it_expands(tmp_path):
    """A million points: one line naming the count and the cap, at once (nothing is expanded)."""
    path = tmp_path / "huge.yaml"
    path.write_text(
        "name: huge\ngrid:\n  seed: [" + ", ".join(map(str, range(1000))) + "]\n"
        "  split_seed: [" + ", ".join(map(str, range(1000))) + "]\n"
    )
    with pytest.raises(DataError, match=r"expands to 1,000,000 points, more than the 10,000"):
        sweep.read_grid(path)


def test_a_yaml_alias_bomb_is_refused(tmp_path):
    """Aliases nested to expand to 10^9 values: refused as soon as the count passes the budget."""
    lines = ["name: bomb", "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    lines += ["grid:", "  seed: *a8"]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="more than 100,000 values once its YAML aliases"):
        sweep.read_grid(path)


def test_a_yaml_error_names_its_line_and_column(tmp_path):
    """The YAML error keeps where it is."""
    path = tmp_path / "grid.yaml"
    path.write_text("name: a\ngrid: {seed: [0}\n")
    with pytest.raises(DataError, match=r"not valid YAML at line 2, column \d+"):
        sweep.read_grid(path)


@pytest.mark.parametrize("value", [".inf", ".nan", "-1e-3"])
def test_cli_sweep_with_a_non_finite_learning_rate_exits_2_and_writes_nothing(
    tmp_path, capsys, value
):
    """`learning_rate: .inf` in a grid: exit 2, one line naming it, no sweep folder, nothing run."""
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"name: bad\ngrid:\n  learning_rate: [1e-4, {value}]\n")
    results = tmp_path / "results"
    code = main(["sweep", str(grid), "--profile", "ci", "--results-dir", str(results), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.count("\n") == 1 and "learning_rate = " in err and "is refused" in err
    assert not results.exists()


# --- a point's key covers the bytes it reads, from whichever results folder ---


def test_a_grid_overriding_the_results_folder_keys_points_by_that_folders_files(fake, tmp_path):
    """The same parameters on another results folder's data are another point; on equal data, the same one."""
    notebooks, profile = fake
    other = tmp_path / "other"
    other.mkdir()
    (Path(profile.results_dir) / "data.txt").write_text("the profile's data")
    (other / "data.txt").write_text("other data")
    spec = replace(_spec(grid={"x": [1]}), inputs=("data.txt",))
    (plain,) = sweep.expand(spec, profile, notebooks)
    overridden = replace(spec, fixed={"results_dir": str(other)})
    (moved,) = sweep.expand(overridden, profile, notebooks)
    assert moved.key != plain.key and moved.inputs != plain.inputs
    assert moved.parameters["results_dir"] == str(other.resolve())
    (other / "data.txt").write_text(
        "the profile's data"
    )  # the same bytes elsewhere: the same point
    (same,) = sweep.expand(overridden, profile, notebooks)
    assert same.key == plain.key


# --- damaged records: never counted, repaired by the next run (and by --force) ---


def _record(key: str, accuracy: float = 0.5) -> dict:
    """A finished point's record as a worker returns it."""
    return {"key": key, "status": "ok", "axes": {"x": 1}, "run": {"test": {"accuracy": accuracy}}}


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # cut short
        lambda text: text.replace('"accuracy": 0.5', '"accuracy": 0.9'),  # edited
        lambda text: "",  # emptied
        lambda text: "[]",  # not a record
    ],
)
def test_a_damaged_record_is_not_finished_and_is_replaced(tmp_path, damage):
    """A record cut short, edited or emptied: not a finished point; the next write replaces it."""
    key = "ab" * 32
    path = sweeps.record_path(tmp_path, key)
    stored = sweeps.store_record(_record(key), tmp_path)
    assert sweeps.finished(sweeps.read_record(path), key) and stored["digest"]
    path.write_text(damage(path.read_text()))
    assert not sweeps.finished(sweeps.read_record(path), key)
    sweeps.store_record(_record(key), tmp_path)
    assert sweeps.finished(sweeps.read_record(path), key)
    assert sweeps.read_record(path)["run"]["test"]["accuracy"] == 0.5


def test_a_whole_record_is_kept_unless_forced(tmp_path):
    """The first whole record of a key wins; with force, the new one replaces it."""
    key = "cd" * 32
    sweeps.store_record(_record(key, 0.5), tmp_path)
    assert sweeps.store_record(_record(key, 0.7), tmp_path)["run"]["test"]["accuracy"] == 0.5
    sweeps.store_record(_record(key, 0.7), tmp_path, force=True)
    assert sweeps.read_record(sweeps.record_path(tmp_path, key))["run"]["test"]["accuracy"] == 0.7


@pytest.mark.slow
def test_a_damaged_record_is_run_again_and_force_runs_every_point(fake):
    """Resume re-runs the point whose record was damaged (and the readers see it again); --force re-runs all."""
    notebooks, profile = fake
    spec = _spec(grid={"x": [1, 2]}, fixed={"log": _log(profile)})
    run = dict(notebook_dir=notebooks, progress=False)
    first = sweep.run_sweep(spec, profile, "serial", **run)
    path = sweeps.record_path(first.out_dir, first.ran[0])
    path.write_text(path.read_text()[:100])
    with pytest.raises(DataError, match="1 point"):
        sweeps.load_runs(profile.results_dir, "fake")
    second = sweep.run_sweep(spec, profile, "serial", **run)
    assert second.ran == [first.ran[0]] and second.skipped == [first.ran[1]]
    assert sweeps.load_runs(profile.results_dir, "fake")["x"].tolist() == [1, 2]
    third = sweep.run_sweep(spec, profile, "serial", force=True, **run)
    assert third.ran == first.ran and not third.skipped
    assert _executions(profile) == [1, 2, 1, 1, 2]


def test_a_worker_with_another_mcalc_refuses_the_point(fake):
    """A worker whose mcalc sources differ from the client's (the key's) refuses before running anything."""
    notebooks, profile = fake
    (point,) = sweep.expand(_spec(grid={"x": [1]}), profile, notebooks)
    assert point.sources == cache.source_digest()
    sweep.check_sources(point)  # the same mcalc: accepted
    with pytest.raises(DataError, match="differs from the client's"):
        sweep.execute_point(replace(point, sources="0" * 64), {"key": "k", "files": {}})
    assert not _executions(profile)


def _kernels(profile) -> list[str]:
    """The process id of the kernel of every execution of the fake template, in order."""
    return [line.split()[2] for line in Path(_log(profile)).read_text().splitlines()]


@pytest.mark.slow
def test_a_serial_sweep_keeps_one_warm_kernel_and_each_point_starts_clean(fake):
    """Warm: every point in one kernel, none seeing another's variables or folder; fresh: a kernel each."""
    notebooks, profile = fake
    template = FAKE_TEMPLATE.replace(
        "# %%\nimport json",
        "# %%\nimport os\nassert 'metrics' not in globals() and not os.listdir('.')\nimport json",
    )
    (notebooks / "fake.py").write_text(template)
    spec = _spec(grid={"x": [1, 2, 3]}, fixed={"log": _log(profile)})
    run = dict(notebook_dir=notebooks, progress=False)
    warm = sweep.run_sweep(spec, profile, "serial", **run)
    assert len(warm.ran) == 3 and not warm.failed, warm.describe()
    assert len(set(_kernels(profile))) == 1
    fresh = sweep.run_sweep(spec, profile, "serial", force=True, warm=False, **run)
    assert len(fresh.ran) == 3 and not fresh.failed
    assert len(set(_kernels(profile)[3:])) == 3
    out = sweeps.sweep_dir(profile.results_dir, "fake")
    for key in warm.ran:
        assert (out / "files" / key / "figure.txt").is_file()
