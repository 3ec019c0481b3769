"""Rebuild only what changed (mcalc.run.rebuild, mcalc.run.pipeline.run_profile): content keys and waves.

The notebooks are not executed here: a stand-in executor writes an executed notebook and the
files the real one would write, with contents that follow its parameters and template.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from dataclasses import replace
from fnmatch import fnmatch
from pathlib import Path

import nbformat
import pytest

import mcalc.run.pipeline as pl
import mcalc.run.preflight
from mcalc.errors import NotebookFailed
from mcalc.records import cache
from mcalc.run import profiles, rebuild, runner

ROOT = Path(__file__).resolve().parents[2]


class FakeExecutor:
    """Stands in for runner.execute (as the pipeline calls it): records what ran, how many at once, and writes the run's files."""

    def __init__(self, delay: float = 0.0):
        self.ran: list[str] = []
        self.delay = delay
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def __call__(self, run, profile, notebook_dir=None, progress=False):
        with self.lock:
            self.ran.append(run.output)
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.delay)
        template = (runner.find_notebook_dir() / f"{run.template}.py").read_bytes()
        content = json.dumps(
            {
                "params": runner.notebook_parameters(profile, run),
                "t": hashlib.sha1(template).hexdigest(),
            },
            sort_keys=True,
        )
        results = Path(profile.results_dir)
        for pattern in run.writes:
            path = results / pattern.replace("*", "x")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content if "runs/" in pattern else pattern)  # upstream files: fixed
        out = Path(profile.out_dir) / f"{run.output}.ipynb"
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nbformat.v4.new_notebook(), out)
        with self.lock:
            self.running -= 1
        return out


@pytest.fixture
def build(tmp_path, monkeypatch):
    """A build function over a temporary results / output folder, templates copied so tests may edit them."""
    templates = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", templates)
    monkeypatch.setattr(runner, "find_notebook_dir", lambda: templates)
    monkeypatch.setattr(pl, "find_notebook_dir", lambda: templates)
    monkeypatch.setattr(pl, "_run_sweeps", lambda *a, **k: None)
    monkeypatch.setattr(pl, "_repair_phantom", lambda *a, **k: None)  # the data root is a stand-in
    monkeypatch.setattr(mcalc.run.preflight, "preflight", lambda profile: (profile, None))
    profile = profiles.get_profile(
        "ci",
        data_root=str(tmp_path / "data"),
        results_dir=str(tmp_path / "results"),
        cache_dir=str(tmp_path / "cache"),
        out_dir=str(tmp_path / "out"),
    )

    def run(executor=None, **kw):
        fake = executor or FakeExecutor()
        monkeypatch.setattr(pl, "execute", fake)
        done = pl.run_profile(kw.pop("profile", profile), **kw)
        return fake, done

    run.profile = profile
    run.templates = templates
    return run


def test_nothing_changed_executes_nothing_and_force_executes_everything(build):
    first, done = build()
    planned = [r.output for r in pl.plan(build.profile)]
    assert sorted(first.ran) == sorted(planned)
    assert [p.stem for p, _ in done] == planned  # reported in the plan's order
    again, done = build()
    assert again.ran == []
    assert [p.stem for p, _ in done] == planned
    assert all(elapsed == 0.0 for _, elapsed in done)
    forced, _ = build(force=True)
    assert sorted(forced.ran) == sorted(planned)


def test_one_optimizers_parameters_rerun_that_chapter_and_the_comparison_only(build, monkeypatch):
    build()
    real_plan = pl.plan

    def plan_with_new_adam(profile):
        """The same plan, Adam's learning rate changed."""
        return [
            replace(r, parameters={**r.parameters, "learning_rate": 1e-3})
            if r.output == "03_optimizer_adam"
            else r
            for r in real_plan(profile)
        ]

    monkeypatch.setattr(pl, "plan", plan_with_new_adam)
    changed, _ = build()
    assert changed.ran == ["03_optimizer_adam", "05_comparison"]


def test_an_edited_template_reruns_its_chapters_and_their_readers(build):
    build()
    path = build.templates / "04_glcm_baselines.py"
    path.write_text(path.read_text() + "\n# %%\nprint('edited')\n")
    changed, _ = build()
    assert changed.ran == ["04_glcm_baselines", "05_comparison"]


def test_a_changed_input_or_code_reruns_what_depends_on_it(build, monkeypatch):
    build()
    (Path(build.profile.results_dir) / "runs" / "baseline_x.json").write_text("{}")
    # an edited run record is damage: its writer runs again and writes what it wrote before, so its
    # reader (whose key covers the record's bytes) stays up to date
    assert build()[0].ran == ["04_glcm_baselines"]
    monkeypatch.setattr(cache, "source_digest", lambda: "edited mcalc")
    assert len(build()[0].ran) == len(pl.plan(build.profile))  # mcalc's code changed: everything


def test_a_missing_output_reruns_the_chapter_that_writes_it(build):
    build()
    (Path(build.profile.results_dir) / "features.npz").unlink()
    again, _ = build()
    # 02 writes the same bytes again, so what reads the features stays up to date
    assert again.ran == ["02_preprocessing"]


def test_a_changed_data_root_reruns_everything(build):
    build()
    data = Path(build.profile.data_folder())
    data.mkdir()
    (data / "calc_case_description_test_set.csv").write_text("a,b\n1,2\n")
    apart = [r.output for r in pl.plan(build.profile) if r.apart]
    assert apart == ["08_copies"]  # it reads nothing of the data root
    assert sorted(build()[0].ran) == sorted(r.output for r in pl.plan(build.profile) if not r.apart)
    assert build()[0].ran == []


def test_independent_chapters_run_jobs_at_a_time(build):
    two, _ = build(FakeExecutor(delay=0.2), jobs=2)
    assert two.most == 2
    assert two.ran[:2] == [
        "01_data_curation",
        "02_preprocessing",
    ]  # before the chapters reading them
    assert two.ran[-1] == "05_comparison"  # after the chapters it reads
    long = [r.output for r in pl.plan(profiles.PROFILES["ci"]) if r.long]
    assert sorted(long) == ["06_leakage_audit", "08_copies"]
    assert two.ran[2:4] == ["08_copies", "06_leakage_audit"]  # apart, then the longest, first
    one, _ = build(FakeExecutor(delay=0.05), jobs=1, force=True)
    assert one.most == 1


class Timed(FakeExecutor):
    """Records when each execution starts and ends; chapter 8 takes ``apart_s``, the others ``delay``."""

    def __init__(self, delay: float, apart_s: float, fail: str = ""):
        super().__init__(0.0)
        self.wait, self.apart_s, self.fail, self.times = delay, apart_s, fail, {}

    def __call__(self, run, profile, notebook_dir=None, progress=False):
        start = time.perf_counter()
        if run.output == self.fail:
            raise NotebookFailed(f"{run.output}: a cell failed")
        time.sleep(self.apart_s if run.apart else self.wait)
        out = super().__call__(run, profile, notebook_dir, progress)
        self.times[run.output] = (start, time.perf_counter())
        return out


def test_an_execution_apart_runs_beside_the_waves_and_the_build_waits_for_it(build):
    """Chapter 8 reads nothing of the others: it starts first in its wave (after chapter 2, whose
    backbone it would otherwise hold memory beside), no later wave waits for it, the build's end does."""
    timed = Timed(delay=0.02, apart_s=1.0)
    build(timed, jobs=2)
    apart_start, apart_end = timed.times["08_copies"]
    assert timed.times["02_preprocessing"][1] <= apart_start  # not beside chapter 2
    assert timed.times["05_comparison"][0] < apart_end  # the next wave did not wait for it
    assert len(timed.ran) == len(pl.plan(build.profile))


def test_a_failing_wave_says_it_waits_for_the_execution_apart(build, capsys):
    timed = Timed(delay=0.02, apart_s=1.0, fail="06_leakage_audit")
    with pytest.raises(NotebookFailed, match="06_leakage_audit"):
        build(timed, jobs=2)
    out = capsys.readouterr().out
    assert (
        "stopping: the error follows once 08_copies (run apart, already started) has finished"
        in out
    )
    assert "05_comparison" not in timed.ran  # nothing after the failing wave started


def test_waves_follow_what_each_chapter_reads():
    """Whatever writes a file a chapter reads runs in an earlier wave; one wave's chapters write apart."""
    runs = pl.plan(profiles.PROFILES["default"])
    for run in runs:
        for other in runs:
            written = [w.replace("*", "x") for w in other.writes]
            if other is not run and any(fnmatch(w, r) for w in written for r in run.reads):
                assert other.wave < run.wave, (other.output, run.output)
            if other is not run and other.wave == run.wave:
                assert not any(fnmatch(w, r) for w in written for r in run.writes)
            if other.apart and other is not run:  # apart: reads no one's output, no one reads its
                assert not other.reads
                assert not any(fnmatch(w, r) for w in written for r in run.reads)


def test_the_key_is_recorded_in_the_executed_notebook(tmp_path):
    path = tmp_path / "x.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)
    assert rebuild.recorded_key(path) is None
    rebuild.record_key(path, "abc")
    assert rebuild.recorded_key(path) == "abc"
    assert rebuild.up_to_date(path, "abc", tmp_path, ["x.ipynb"])
    assert not rebuild.up_to_date(path, "abd", tmp_path, [])
    assert not rebuild.up_to_date(path, "abc", tmp_path, ["features.npz"])
    assert rebuild.recorded_key(tmp_path / "absent.ipynb") is None


def test_source_digest_follows_the_package_sources(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    before = cache.source_digest(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert cache.source_digest(tmp_path) == before
    (tmp_path / "a.py").write_text("x = 2\n")
    assert cache.source_digest(tmp_path) != before


def test_a_phantom_created_by_the_first_chapter_does_not_rerun_the_next_build(build):
    class MakesPhantom(FakeExecutor):
        """Notebook 01 writes the phantom into the (absent) data root, as on a cold build."""

        def __call__(self, run, profile, notebook_dir=None, progress=False):
            if run.output.startswith("01_"):
                Path(profile.data_folder()).mkdir(exist_ok=True)
                (Path(profile.data_folder()) / "phantom.json").write_text("{}")
            return super().__call__(run, profile, notebook_dir, progress)

    build(MakesPhantom())
    assert build()[0].ran == []


@pytest.mark.parametrize("damage", ["truncate", "edit"])
def test_a_damaged_output_reruns_its_writer_not_called_up_to_date(build, capsys, damage):
    """Issue 27.4: an output's digest is recorded with its build key and checked on use: a cut or
    edited features file means "run the writer again" (said, naming the file), never "up to date"."""
    build()
    features = Path(build.profile.results_dir) / "features.npz"
    recorded = rebuild.recorded_outputs(Path(build.profile.out_dir) / "02_preprocessing.ipynb")
    assert set(recorded) == {"features.npz", "features.json"}
    text = features.read_text()
    features.write_text(text[: len(text) // 2] if damage == "truncate" else text + " ")
    capsys.readouterr()
    again, _ = build()
    assert again.ran == [
        "02_preprocessing"
    ]  # the writer restores it; its readers see the same bytes
    out = capsys.readouterr().out
    assert "02_preprocessing: its output features.npz changed since it was written" in out
    assert build()[0].ran == []


def test_the_provenance_two_chapters_write_is_no_ones_output(build):
    """01 writes provenance.json and 02 adds the weights: it is not checked as 01's output (else 01
    would run again on every build)."""
    build()
    assert pl.owned_outputs(pl.plan(build.profile)[0]) == ("manifest*.csv",)
    (Path(build.profile.results_dir) / "provenance.json").write_text('{"weights": "added by 02"}')
    ran = build()[0].ran
    assert "01_data_curation" not in ran and "03_optimizer_adam" in ran  # its readers, not 01


def test_a_build_appends_to_the_kernel_log_instead_of_emptying_it(build):
    """Issue 27.14: a run no longer empties the kernel log another run (or the last build) wrote."""
    log = Path(build.profile.out_dir) / runner.KERNEL_LOG
    log.parent.mkdir(parents=True)
    log.write_text("the earlier run's TensorFlow lines\n")
    build()
    text = log.read_text()
    assert text.startswith("the earlier run's TensorFlow lines\n")
    assert "===== mcalc build, profile ci" in text
