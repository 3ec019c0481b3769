"""The notebook runner (mcalc.run.pipeline) and the notebook templates it executes."""

from __future__ import annotations

from dataclasses import replace

from mcalc.paper import OPTIMIZERS
from mcalc.run.grid import GridSpec
from mcalc.run.pipeline import plan, seed_sweep
from mcalc.run.points import expand
from mcalc.run.profiles import PROFILES, get_profile
from tests.run.helpers import ROOT


def test_plan_runs_one_optimizer_template_four_times():
    """The four optimizer chapters are one template executed with four different parameters."""
    runs = [r for r in plan(PROFILES["default"]) if r.output.startswith("03_")]
    assert {r.template for r in runs} == {"03_optimizer"}
    assert [r.parameters["optimizer"] for r in runs] == list(OPTIMIZERS)


def test_chapter_7_grid_is_every_optimizer_by_seed_on_the_optimizer_template(tmp_path):
    """The profile's seed sweep is a valid grid of 03_optimizer: 4 optimizers × n_seeds points."""
    profile = get_profile("ci", results_dir=str(tmp_path))
    spec = replace(GridSpec.from_dict(seed_sweep(profile)), inputs=())
    points = expand(spec, profile, ROOT / "notebooks")
    assert len(points) == 4 * profile.n_seeds
    assert {p.parameters["split_seed"] for p in points} == {profile.seed}
    assert points[0].parameters["epochs"] == profile.epochs
