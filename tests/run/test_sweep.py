"""Sweeps on Dask: grid files, content keys, resume, retries, a killed worker, and the serial path's numbers."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pandas as pd
import psutil
import pytest

from mcalc.errors import DataError
from mcalc.records import sweeps
from mcalc.run import sweep
from mcalc.run.grid import GridSpec
from mcalc.run.profiles import get_profile
from tests.run.helpers import FAKE_TEMPLATE, fake_executions, fake_log, fake_spec, make_fake


@pytest.fixture
def fake(tmp_path):
    """(notebook folder holding the fake template, a profile whose results folder is in tmp_path)."""
    return make_fake(tmp_path)


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
    log = {"log": fake_log(profile)}
    first = sweep.run_sweep(
        fake_spec(grid={"x": [0, 1]}, fixed=log),
        profile,
        "serial",
        progress=False,
        notebook_dir=notebooks,
    )
    assert len(first.ran) == 2 and not first.failed
    spec = fake_spec(grid={"x": [0, 1, 2]}, points=[{"x": 3, "fail": True}], fixed=log)
    second = sweep.run_sweep(spec, profile, "serial", progress=False, notebook_dir=notebooks)
    assert sorted(second.skipped) == sorted(first.ran)
    assert len(second.ran) == 1 and len(second.failed) == 1
    assert fake_executions(profile) == [
        0,
        1,
        2,
        3,
        3,
    ]  # done points skipped; the failure retried once
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
        fake_spec(grid={"x": [2, 1]}), profile, "serial", progress=False, notebook_dir=notebooks
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
    spec = fake_spec(
        points=[{"x": 0, "kill": marker}, {"x": 1, "fail": True}, {"x": 2}, {"x": 2}],
        fixed={"log": fake_log(profile)},
    )
    summary = sweep.run_sweep(
        spec, profile, "local", workers=2, progress=False, notebook_dir=notebooks, dashboard=False
    )
    assert Path(marker).exists()  # the worker was killed once
    assert len(summary.ran) == 2 and list(summary.failed.values()) == [
        "ValueError: point 1 fails on purpose"
    ]
    assert sorted(fake_executions(profile)) == [0, 0, 1, 1, 2]
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
    runs in the kernel of its first): the same records as the serial path with a fresh kernel per point,
    which runs the points that ran in an already used kernel."""
    from mcalc.chapters.audits import variance_summary

    fixed = {"epochs": 2, "n_boot": 0, "split_seed": 0}
    grid = {"optimizer": ["adam", "rmsprop"], "seed": [0, 1]}
    on_dask = sweep.run_sweep(
        GridSpec.from_dict({"name": "dask", "fixed": fixed, "grid": grid}),
        study_inputs,
        "local",
        workers=2,
        progress=False,
        dashboard=False,
    )
    assert len(on_dask.ran) == 4 and not on_dask.failed
    a, _ = sweeps.load_sweep(study_inputs.results_dir, "dask")
    assert all(r["kernel"]["warm"] for r in a)
    reused = [r for r in a if r["kernel"]["points_before"] >= 1]
    assert len(reused) >= 2  # 4 points, 2 kernels: each point after a kernel's first
    serial = sweep.run_sweep(
        GridSpec.from_dict(
            {"name": "serial", "fixed": fixed, "points": [r["axes"] for r in reused]}
        ),
        study_inputs,
        "serial",
        progress=False,
        warm=False,
    )
    assert len(serial.ran) == len(reused) and not serial.failed
    b, _ = sweeps.load_sweep(study_inputs.results_dir, "serial")
    assert not any(r["kernel"]["warm"] for r in b)
    by_key = {r["key"]: r for r in reused}
    for y in b:
        x = by_key[y["key"]]  # the same point (its content key), run in a kernel used before
        assert x["axes"] == y["axes"]
        for part in ("history", "validation", "test", "train", "config", "split_sizes"):
            assert x["run"][part] == y["run"][part], part
    runs = sweeps.load_runs(study_inputs.results_dir, "dask")
    fresh = sweeps.load_runs(study_inputs.results_dir, "serial")
    cols = ["optimizer", "seed"]
    same = runs.merge(fresh[cols], on=cols).sort_values(cols).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        same, fresh.sort_values(cols).reset_index(drop=True), check_like=True
    )
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
    spec = fake_spec(grid={"x": [1, 2]}, fixed={"log": fake_log(profile)})
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
    assert fake_executions(profile) == [1, 2, 1, 1, 2]


def _kernels(profile) -> list[str]:
    """The process id of the kernel of every execution of the fake template, in order."""
    return [line.split()[2] for line in Path(fake_log(profile)).read_text().splitlines()]


@pytest.mark.slow
def test_a_serial_sweep_keeps_one_warm_kernel_and_each_point_starts_clean(fake):
    """Warm: every point in one kernel, none seeing another's variables or folder; fresh: a kernel each."""
    notebooks, profile = fake
    template = FAKE_TEMPLATE.replace(
        "# %%\nimport json",
        "# %%\nimport os\nassert 'metrics' not in globals() and not os.listdir('.')\nimport json",
    )
    (notebooks / "fake.py").write_text(template)
    spec = fake_spec(grid={"x": [1, 2, 3]}, fixed={"log": fake_log(profile)})
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
