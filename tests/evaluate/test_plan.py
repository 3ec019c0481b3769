"""Tests for mcalc.evaluate.plan: the plan's hash and the power it states."""

from __future__ import annotations

from mcalc.evaluate import plan, power


def test_plan_hash_is_stable_and_changes_with_the_plan(monkeypatch) -> None:
    h = plan.plan_hash()
    assert len(h) == 12 and h == plan.plan_hash()
    monkeypatch.setattr(plan, "ALPHA", 0.01)
    assert plan.plan_hash() != h


def test_plan_states_power_from_the_real_test_split() -> None:
    d = power.power_design()
    assert (d.n_rois, d.n_lesions, d.n_patients) == (326, 189, 151)
    assert d.design_effect > 1  # patients cluster their ROIs
    mdd = {c.claim_id: c.mdd for c in plan.claims()}
    # the split cannot detect the paper's claimed +0.03 and +0.05 advantages
    assert mdd["beats_classical"] > 0.05
    table = plan.plan_table()
    assert {"margin δ", "test", "better", "detectable at 80% power"} <= set(table.columns)
    assert set(table["test"]) <= set(plan.TESTS)
    assert len(plan.plan_details()) == len(table)
