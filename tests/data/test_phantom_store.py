"""Tests for mcalc.data.phantom.store: one phantom per (layout, scale, seed) in its own folder, kept while
the code that writes it is unchanged, written again when that code changes."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcalc.chapters.prepare import prepare_data
from mcalc.data import phantom as ph
from mcalc.data.phantom import generate, store
from mcalc.errors import DataError
from mcalc.run.preflight import preflight
from mcalc.run.profiles import get_profile

REPO = Path(__file__).resolve().parents[2]
TINY = {"workers": 1, "quirk_fraction": 0}


def test_folders_are_one_per_layout_scale_and_seed():
    """Each (layout, scale, seed) has its own folder under the store; the same settings the same folder."""
    names = {
        store.phantom_folder("s", scale, seed, layout).name
        for scale in (0.05, 0.25, 1)
        for seed in (0, 1)
        for layout in ph.LAYOUTS
    }
    assert len(names) == 3 * 2 * len(ph.LAYOUTS)
    assert store.phantom_folder("s", 1.0, 0) == Path("s/uid-scale1-seed0")
    assert store.phantom_folder("s", 1, 0) == store.phantom_folder("s", 1.0, 0)


def test_the_code_digest_covers_what_writes_the_phantom_and_nothing_else():
    """The phantom package and every mcalc module it imports (the JPEG writer among them); no learning code."""
    files = {p.relative_to(REPO).as_posix() for p in store.generator_modules()}
    package = {p.relative_to(REPO).as_posix() for p in (REPO / "mcalc/data/phantom").glob("*.py")}
    assert package <= files
    assert {"mcalc/data/kaggle.py", "mcalc/data/calibration.py", "mcalc/study.py"} <= files
    assert not any(f.startswith(("mcalc/learn/", "mcalc/run/", "mcalc/report/")) for f in files)
    assert len(store.generator_code()) == 64


def test_a_phantom_of_other_code_is_written_again_and_said_why(tmp_path, monkeypatch, capsys):
    """Same scale and seed, other generator code: not kept (the reason names it), regenerated, then kept."""
    out = tmp_path / "p"
    config = ph.PhantomConfig(scale=0.02, seed=3, **TINY)
    assert ph.ensure_phantom(out, config, progress=False) is not None
    assert json.loads((out / "phantom.json").read_text())["code"] == store.generator_code()
    assert ph.ensure_phantom(out, config, progress=False) is None  # kept
    monkeypatch.setattr(generate, "generator_code", lambda: "0" * 64)
    reason = ph.verify_phantom(out, config)
    assert reason and "other phantom code" in reason
    assert ph.verify_phantom(out) is None  # without a configuration: only its own manifest
    assert ph.ensure_phantom(out, config, progress=False) is not None
    assert "generated again" in capsys.readouterr().err
    assert json.loads((out / "phantom.json").read_text())["code"] == "0" * 64
    assert ph.ensure_phantom(out, config, progress=False) is None


def test_every_scale_keeps_its_phantom(tmp_path, monkeypatch):
    """A build at another scale writes its own folder; back at the first scale, its phantom is kept."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ph.PhantomConfig, "__init__", _tiny_init(ph.PhantomConfig.__init__))
    for scale in (0.02, 0.03):
        prepare_data("phantom", "", scale, seed=0, results_dir=f"r{scale}", progress=False)
    folders = sorted(p.name for p in Path(ph.PHANTOM_STORE).iterdir())
    assert folders == ["uid-scale0.02-seed0", "uid-scale0.03-seed0"]
    marker = Path(ph.PHANTOM_STORE) / folders[0] / "phantom.json"
    before = marker.stat().st_mtime_ns
    prepare_data("phantom", "", 0.02, seed=0, results_dir="again", progress=False)
    assert marker.stat().st_mtime_ns == before
    assert (Path("again") / "manifest.csv").read_bytes() == (
        Path("r0.02") / "manifest.csv"
    ).read_bytes()


def _tiny_init(init):
    """PhantomConfig.__init__ writing in one process (a test's phantom needs no worker pool)."""

    def tiny(self, *args, **kwargs):
        init(self, *args, **{**kwargs, "workers": 1})

    return tiny


def test_profiles_read_the_phantom_of_their_scale_and_seed():
    """The profile's data root is the phantom's own folder, unless a data root is given."""
    default = get_profile("default")
    assert default.data_folder() == "data/phantom/uid-scale1-seed0"
    assert (
        get_profile("default", phantom_scale=0.25).data_folder()
        == "data/phantom/uid-scale0.25-seed0"
    )
    assert get_profile("ci").data_folder() == "build/ci/data/phantom/uid-scale0.05-seed0"
    assert get_profile("default", data_root="mine").data_folder() == "mine"
    assert default.parameters()["data_root"] == default.data_folder()


def test_real_data_without_a_data_root_is_one_line(tmp_path):
    """cbis-ddsm with no data root: refused before anything runs, in the step and on the command line."""
    with pytest.raises(DataError, match="needs a data root"):
        preflight(get_profile("default", data_source="cbis-ddsm"))
    with pytest.raises(DataError, match="needs data_root"):
        prepare_data("cbis-ddsm", "", results_dir=tmp_path / "r", progress=False)
    with contextlib.chdir(REPO):
        done = subprocess.run(
            [sys.executable, "-m", "mcalc", "book", "--data-source", "cbis-ddsm", "--no-execute"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--data-root" in lines[0] and "Traceback" not in done.stderr
