"""The mcalc console command: every sub-command has --help, and bad input ends in a clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mcalc.run.cli import build_parser, main

SUBCOMMANDS = ["curate", "phantom", "notebooks", "book", "sweep", "compare"]


def test_every_subcommand_is_registered():
    """The parser knows exactly the documented sub-commands."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(SUBCOMMANDS)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_of_every_subcommand(command, capsys):
    """`mcalc X --help` prints a usage line and exits 0."""
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert f"usage: mcalc {command}" in capsys.readouterr().out


def test_console_entry_point_runs_as_module():
    """`python -m mcalc --help` works (the installed `mcalc` script calls the same main)."""
    out = subprocess.run(
        [sys.executable, "-m", "mcalc", "--help"], capture_output=True, text=True, check=True
    )
    assert "curate" in out.stdout and "phantom" in out.stdout


def test_curate_on_a_folder_without_tables_is_a_clear_error(tmp_path, capsys):
    """No case-description table under ROOT: exit code 2 and one message, no traceback."""
    assert main(["curate", str(tmp_path), "--out", str(tmp_path / "m.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mcalc curate:") and "Traceback" not in err


def test_phantom_refuses_a_foreign_non_empty_folder(tmp_path, capsys):
    """The phantom never overwrites a folder that is not a previous phantom."""
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["phantom", str(tmp_path), "--scale", "0.02", "--quiet"]) == 2
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    assert "mcalc phantom:" in capsys.readouterr().err


# --------------------------------------------------------------- every user error: one line, exit 2


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of `mcalc ARGV` run in this process (argparse errors included)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    """Exit status 2 and exactly one line on stderr, no traceback, containing each needle."""
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize(
    "flag, value, needle",
    [
        ("--scale", "0", "> 0"),
        ("--scale", "-1", "> 0"),
        ("--scale", "nan", "finite"),
        ("--scale", "inf", "finite"),
        ("--scale", "1e6", "<= 10"),
        ("--scale", "60", "<= 10"),
        ("--seed", "-1", ">= 0"),
        ("--workers", "0", ">= 1"),
        ("--scale", "abc", "not a number"),
    ],
)
def test_phantom_bad_arguments_are_refused_before_any_write(tmp_path, capsys, flag, value, needle):
    """A bad --scale / --seed / --workers: one line, exit 2, and no phantom.json (nothing) written."""
    out = tmp_path / "ph"
    code, err = run_cli(["phantom", str(out), flag, value, "--quiet"], capsys)
    assert_one_line_error(code, err, "mcalc phantom", needle)
    assert not out.exists()


@pytest.mark.slow
def test_phantom_refuses_what_the_disk_cannot_hold(tmp_path, capsys, monkeypatch):
    """The size is estimated first: too little free space is refused, saying how much is needed."""
    import shutil

    from mcalc.data import phantom as ph

    need = ph.estimate_bytes(ph.PhantomConfig(scale=0.5))
    assert 0.5e9 < need < 1e9  # ~1.3 GB at scale 1 (measured 1.2 GB)
    monkeypatch.setattr(
        shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(1e12, 1e12, 10**6)
    )
    out = tmp_path / "ph"
    code, err = run_cli(["phantom", str(out), "--scale", "0.5", "--quiet"], capsys)
    assert_one_line_error(code, err, "needs about", "MB", "free")
    assert not out.exists()


@pytest.mark.slow
def test_phantom_size_estimate_matches_a_generated_phantom(tmp_path):
    """The estimate is within -20 % / +50 % of what a small phantom really writes."""
    import os

    from mcalc.data import phantom as ph

    config = ph.PhantomConfig(scale=0.02, seed=1, workers=1, quirk_fraction=0)
    ph.generate_phantom(tmp_path, config, progress=False)
    written = sum(
        os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(tmp_path) for f in files
    )
    assert 0.8 * written <= ph.estimate_bytes(config) <= 1.5 * written


def test_notebooks_unknown_profile(capsys):
    """An unknown --profile: one line naming the choices, exit 2."""
    code, err = run_cli(["notebooks", "--profile", "foo"], capsys)
    assert_one_line_error(code, err, "foo", "ci", "default")


@pytest.mark.parametrize("spec", ["x.txt", "missing.h5"])
def test_notebooks_bad_weights_spec(capsys, spec):
    """A weights spec that is neither a name nor an existing .h5 file: one line, exit 2."""
    code, err = run_cli(["notebooks", "--profile", "ci", "--weights", spec], capsys)
    assert_one_line_error(code, err, spec)


@pytest.mark.parametrize("flag, value", [("--image-size", "10"), ("--scale", "0")])
def test_notebooks_bad_numbers(capsys, flag, value):
    """A too small --image-size or a --scale out of range: one line, exit 2, before any notebook runs."""
    code, err = run_cli(["notebooks", "--profile", "ci", flag, value], capsys)
    assert_one_line_error(code, err, value)


def test_notebooks_unknown_backbone_variant(capsys):
    """A misspelt --backbone: one line naming the valid variants, exit 2, before any notebook runs."""
    code, err = run_cli(["notebooks", "--profile", "ci", "--backbone", "bf16"], capsys)
    assert_one_line_error(code, err, "folded+bf16")


def test_the_backbone_option_reaches_every_notebook_that_declares_it():
    """--backbone folded+bf16 is the profile's variant, given to chapters 2 and 8 as a parameter."""
    from mcalc.run.commands import _profile_from

    args = build_parser().parse_args(["notebooks", "--profile", "ci", "--backbone", "folded+bf16"])
    profile = _profile_from(args)
    assert profile.backbone_variant == "folded+bf16"
    assert profile.parameters()["backbone_variant"] == "folded+bf16"
    default = _profile_from(build_parser().parse_args(["notebooks", "--profile", "ci"]))
    assert default.backbone_variant == "folded"


@pytest.mark.parametrize("where", ["under_a_file", "a_folder", "read_only"])
def test_curate_unwritable_out_is_refused_before_curating(tmp_path, capsys, monkeypatch, where):
    """--out below a file, naming a folder, or in a place that cannot be written: one line, exit 2, early."""
    import mcalc.data.curation as cu

    (tmp_path / "data").mkdir()
    if where == "under_a_file":
        (tmp_path / "file.txt").write_text("x")
        out = tmp_path / "file.txt" / "m.csv"
    elif where == "a_folder":
        out = tmp_path / "results"
        out.mkdir()
    else:
        if not Path("/proc/self").is_dir():
            pytest.skip("needs /proc, a place nobody can create files in")
        out = Path("/proc/mcalc-test/m.csv")

    def never(*_a, **_k):
        """curate() must not start."""
        raise AssertionError("curate ran")

    monkeypatch.setattr(cu, "curate", never)
    code, err = run_cli(["curate", str(tmp_path / "data"), "--out", str(out), "--quiet"], capsys)
    assert_one_line_error(code, err, "mcalc curate: --out")


def test_sweep_workers_must_be_positive(tmp_path, capsys):
    """`mcalc sweep --workers 0`: one line, exit 2, before the grid is read."""
    code, err = run_cli(["sweep", str(tmp_path / "g.yaml"), "--workers", "0"], capsys)
    assert_one_line_error(code, err, "mcalc sweep", ">= 1")


@pytest.mark.parametrize("where", ["a_file", "under_a_file", "read_only"])
def test_phantom_unwritable_out_is_refused(tmp_path, capsys, where):
    """OUT a file, below a file, or where nothing can be created: one line, exit 2, nothing written."""
    (tmp_path / "file.txt").write_text("keep me")
    if where == "a_file":
        out = tmp_path / "file.txt"
    elif where == "under_a_file":
        out = tmp_path / "file.txt" / "ph"
    else:
        if not Path("/proc/self").is_dir():
            pytest.skip("needs /proc, a place nobody can create files in")
        out = Path("/proc/mcalc-test-phantom")
    code, err = run_cli(["phantom", str(out), "--scale", "0.02", "--quiet"], capsys)
    assert_one_line_error(code, err, "mcalc phantom")
    assert (tmp_path / "file.txt").read_text() == "keep me"


def test_a_failing_notebook_is_one_line_and_exit_1(capsys, monkeypatch):
    """The runner's NotebookFailed reaches the terminal as its one line, no traceback, exit 1."""
    from mcalc.errors import NotebookFailed
    from mcalc.run import pipeline

    def fail(*args, **kwargs):
        raise NotebookFailed(
            "notebook 03_optimizer_adam failed in cell [3]: DataError: no ROI "
            "(executed notebook: build/x.ipynb; kernel log: build/kernel.log)"
        )

    monkeypatch.setattr(pipeline, "run_profile", fail)
    code, err = run_cli(["notebooks", "--profile", "ci", "--quiet"], capsys)
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("mcalc notebooks: notebook 03_optimizer_adam failed in cell [3]")


@pytest.mark.parametrize(
    "extra, force, jobs", [([], False, None), (["--force", "--jobs", "1"], True, 1)]
)
def test_book_executes_with_the_build_options_then_builds(capsys, monkeypatch, extra, force, jobs):
    """`mcalc book` (what `make book` runs) executes the notebooks with --force / --jobs, then builds."""
    from mcalc.report import book
    from mcalc.run import pipeline

    calls = []
    monkeypatch.setattr(
        pipeline, "run_profile", lambda profile, **kw: calls.append(("run", profile.name, kw))
    )
    monkeypatch.setattr(book, "build_book", lambda profile: calls.append(("build", profile.name)))
    code, err = run_cli(["book", "--profile", "ci", "--quiet", *extra], capsys)
    assert code == 0, err
    assert calls == [
        ("run", "ci", {"progress": False, "force": force, "jobs": jobs}),
        ("build", "ci"),
    ]


@pytest.mark.parametrize(
    "tty, quiet, bars", [(True, False, True), (True, True, False), (False, False, False)]
)
def test_progress_bars_only_on_a_terminal(capsys, monkeypatch, tty, quiet, bars):
    """Bars on a terminal unless --quiet; a log (stderr not a terminal) gets none, so it is not flooded."""
    from mcalc.run import pipeline

    seen = []
    monkeypatch.setattr(pipeline, "run_profile", lambda profile, **kw: seen.append(kw["progress"]))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty, raising=False)
    code, err = run_cli(["notebooks", "--profile", "ci", *(["--quiet"] if quiet else [])], capsys)
    assert code == 0, err
    assert seen == [bars]


def test_a_bad_data_root_fails_before_any_notebook(tmp_path, capsys, monkeypatch):
    """A real data root without the tables is refused by the preflight, in one line, exit 2."""
    from mcalc.run import pipeline

    monkeypatch.setattr(pipeline, "execute", lambda *a, **k: pytest.fail("a notebook ran"))
    argv = ["notebooks", "--profile", "ci", "--data-source", "cbis-ddsm"]
    code, err = run_cli(argv + ["--data-root", str(tmp_path), "--quiet"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert str(tmp_path) in err


# ------------------------------------------------------------------ issue 27: bad input, two runs at once


@pytest.mark.parametrize("only", [["zz"], ["03", "zz"], [""]])
def test_only_matching_no_notebook_is_exit_2_and_runs_nothing(capsys, monkeypatch, only):
    """--only NAME matching no notebook: one line naming it and the notebooks, exit 2, nothing run."""
    from mcalc.run import pipeline

    monkeypatch.setattr(pipeline, "execute", lambda *a, **k: pytest.fail("a notebook ran"))
    code, err = run_cli(["notebooks", "--profile", "ci", "--quiet", "--only", *only], capsys)
    assert_one_line_error(code, err, "matches no notebook", "01_data_curation", "05_comparison")
    assert (only[-1] or "(nothing)") in err


def test_bare_only_is_an_error_not_everything(capsys, monkeypatch):
    """A bare --only (no name) is refused by the parser instead of running every notebook."""
    from mcalc.run import pipeline

    monkeypatch.setattr(pipeline, "run_profile", lambda *a, **k: pytest.fail("it ran"))
    code, err = run_cli(["notebooks", "--profile", "ci", "--only"], capsys)
    assert_one_line_error(code, err, "--only")


def _holding(folder: Path):
    """A thread holding folder's lock (as another mcalc run would) until the returned event is set."""
    import threading

    from mcalc.records import fsio

    ready, release = threading.Event(), threading.Event()

    def hold():
        with fsio.exclusive(folder, "held"):
            ready.set()
            release.wait(20)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert ready.wait(10)
    return release


def test_a_second_book_build_in_one_folder_is_refused(tmp_path, capsys, monkeypatch):
    """Two `mcalc book` in one folder: the later is refused in one line (exit 2) before touching the
    build tree the earlier is building, instead of deleting it mid-build."""
    monkeypatch.chdir(tmp_path)
    tree = tmp_path / "build" / "ci" / "book"
    tree.mkdir(parents=True)
    (tree / "page.html").write_text("the first build's")
    release = _holding(tmp_path / "build" / "ci")
    try:
        argv = ["book", "--profile", "ci", "--no-execute", "--out-dir", "nb", "--quiet"]
        code, err = run_cli(argv, capsys)
    finally:
        release.set()
    assert_one_line_error(code, err, "mcalc book:", "build", "in use by another mcalc run")
    assert (tree / "page.html").read_text() == "the first build's"


def test_a_second_notebooks_run_in_one_folder_is_refused(tmp_path, capsys, monkeypatch):
    """Two runs writing one notebook folder: the later is refused (exit 2), its kernel log untouched."""
    from mcalc.run import pipeline

    monkeypatch.setattr(pipeline, "execute", lambda *a, **k: pytest.fail("a notebook ran"))
    out = tmp_path / "nb"
    out.mkdir()
    (out / "kernel.log").write_text("the first run's kernel output\n")
    release = _holding(out)
    try:
        code, err = run_cli(
            ["notebooks", "--profile", "ci", "--out-dir", str(out), "--quiet"], capsys
        )
    finally:
        release.set()
    assert_one_line_error(code, err, f"the notebook folder {out}", "in use by another mcalc run")
    assert (out / "kernel.log").read_text() == "the first run's kernel output\n"


def test_curate_long_out_name_is_refused_before_curating(tmp_path, capsys, monkeypatch):
    """A --out whose own name fits but whose temporary / sibling names do not: refused up front
    (one line naming the shortening), not after the whole curation."""
    import os

    import mcalc.data.curation as cu

    (tmp_path / "data").mkdir()
    monkeypatch.setattr(cu, "curate", lambda *a, **k: pytest.fail("curate ran"))
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    out = tmp_path / ("m" * (limit - 20) + ".csv")  # legal; its .exclusions.csv sibling is not
    code, err = run_cli(["curate", str(tmp_path / "data"), "--out", str(out), "--quiet"], capsys)
    assert_one_line_error(code, err, "mcalc curate: --out", "too long")
    out = tmp_path / ("m" * (limit - 40) + ".csv")  # the siblings fit; their temporaries do not
    code, err = run_cli(["curate", str(tmp_path / "data"), "--out", str(out), "--quiet"], capsys)
    assert_one_line_error(code, err, "temporary name", "shorten it by")


def test_a_grid_file_that_is_not_yaml_names_its_line_and_column(tmp_path, capsys):
    """Issue 27.14: the YAML error keeps where it is (line, column), in one line, exit 2."""
    grid = tmp_path / "grid.yaml"
    grid.write_text("name: g\ngrid:\n  seed: [1, 2\n  optimizer: adam\n")
    code, err = run_cli(["sweep", str(grid), "--profile", "ci", "--quiet"], capsys)
    assert_one_line_error(
        code, err, str(grid), "not valid YAML", "line 4, column 12", "expected ','"
    )


def test_a_second_run_writing_the_same_results_folder_is_refused(tmp_path, capsys, monkeypatch):
    """Two runs with their own notebook folders but one results folder: the later is refused."""
    from mcalc.run import pipeline

    monkeypatch.setattr(pipeline, "execute", lambda *a, **k: pytest.fail("a notebook ran"))
    results = tmp_path / "results"
    release = _holding(results)
    try:
        argv = ["notebooks", "--profile", "ci", "--quiet", "--results-dir", str(results)]
        code, err = run_cli([*argv, "--out-dir", str(tmp_path / "nb")], capsys)
    finally:
        release.set()
    assert_one_line_error(code, err, f"the results folder {results}", "in use by another mcalc run")
