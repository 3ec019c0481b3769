"""A sweep's points (mcalc.run.points): keyed by content, refused by a worker running another mcalc."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mcalc.errors import DataError
from mcalc.records import cache
from mcalc.run.points import check_sources, execute_point, expand
from tests.run.helpers import FAKE_TEMPLATE, fake_executions, fake_spec, make_fake


@pytest.fixture
def fake(tmp_path):
    """(notebook folder holding the fake template, a profile whose results folder is in tmp_path)."""
    return make_fake(tmp_path)


def test_points_are_keyed_by_content_and_duplicates_collapse(fake):
    """Equal parameters make one point; another value, or changed template text, another key."""
    notebooks, profile = fake
    points = expand(
        fake_spec(grid={"x": [1, 1, 2]}, points=[{"x": 2}, {"x": 3}]), profile, notebooks
    )
    assert [p.axes["x"] for p in points] == [1, 2, 3]
    assert len({p.key for p in points}) == 3
    (notebooks / "fake.py").write_text(FAKE_TEMPLATE + "\n# another line\n")
    again = expand(fake_spec(grid={"x": [1]}), profile, notebooks)
    assert again[0].key != points[0].key


def test_an_edit_of_mcalc_changes_every_key(fake, monkeypatch):
    """The same grid after an edit of mcalc's sources (another source digest): every point has a new key."""
    notebooks, profile = fake
    spec = fake_spec(grid={"x": [1, 2]})
    before = [p.key for p in expand(spec, profile, notebooks)]
    assert [p.key for p in expand(spec, profile, notebooks)] == before
    monkeypatch.setattr(cache, "source_digest", lambda: "edited mcalc")
    after = [p.key for p in expand(spec, profile, notebooks)]
    assert len(after) == 2 and not set(after) & set(before)


def test_a_grid_overriding_the_results_folder_keys_points_by_that_folders_files(fake, tmp_path):
    """The same parameters on another results folder's data are another point; on equal data, the same one."""
    notebooks, profile = fake
    other = tmp_path / "other"
    other.mkdir()
    (Path(profile.results_dir) / "data.txt").write_text("the profile's data")
    (other / "data.txt").write_text("other data")
    spec = replace(fake_spec(grid={"x": [1]}), inputs=("data.txt",))
    (plain,) = expand(spec, profile, notebooks)
    overridden = replace(spec, fixed={"results_dir": str(other)})
    (moved,) = expand(overridden, profile, notebooks)
    assert moved.key != plain.key and moved.inputs != plain.inputs
    assert moved.parameters["results_dir"] == str(other.resolve())
    (other / "data.txt").write_text(
        "the profile's data"
    )  # the same bytes elsewhere: the same point
    (same,) = expand(overridden, profile, notebooks)
    assert same.key == plain.key


def test_a_worker_with_another_mcalc_refuses_the_point(fake):
    """A worker whose mcalc sources differ from the client's (the key's) refuses before running anything."""
    notebooks, profile = fake
    (point,) = expand(fake_spec(grid={"x": [1]}), profile, notebooks)
    assert point.sources == cache.source_digest()
    check_sources(point)  # the same mcalc: accepted
    with pytest.raises(DataError, match="differs from the client's"):
        execute_point(replace(point, sources="0" * 64), {"key": "k", "files": {}})
    assert not fake_executions(profile)
