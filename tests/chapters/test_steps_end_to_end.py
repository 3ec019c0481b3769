"""The study's steps end to end on a tiny phantom: data → features → four heads → baselines → comparison."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mcalc import paper
from mcalc.chapters import audits
from mcalc.chapters.inputs import StepInputs
from mcalc.chapters.prepare import ensure_phantom, prepare_data
from mcalc.chapters.training import run_optimizer
from mcalc.errors import DataError
from mcalc.evaluate import judging, runs, verdicts
from mcalc.evaluate.baselines import run_baselines
from mcalc.learn import splits
from mcalc.learn.features import compute_features
from mcalc.learn.model import TrainConfig
from mcalc.learn.weights import resolve_weights
from mcalc.records import results
from mcalc.report import tables

pytestmark = pytest.mark.slow

SIZE = 75


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny phantom curated, with random-weight features at 75 px: (results_dir, cache_dir, curation)."""
    root = tmp_path_factory.mktemp("study")
    results_dir, cache = root / "results", root / "cache"
    curation = prepare_data(
        "phantom",
        root / "data",
        phantom_scale=0.05,
        seed=1,
        results_dir=results_dir,
        progress=False,
    )
    manifest = results.load_manifest(results_dir)
    weights = resolve_weights("random")
    prov = results.read_results_provenance(results_dir).with_weights(weights.used, weights.note)
    compute_features(manifest, SIZE, weights, cache, results_dir, prov, progress=False)
    return results_dir, cache, curation


def test_prepare_data_writes_manifest_and_phantom_provenance(tiny):
    """Curation writes the manifest; the provenance says phantom, and after features, the weights."""
    results_dir, _, curation = tiny
    assert (results_dir / results.MANIFEST).is_file()
    prov = results.read_results_provenance(results_dir)
    assert prov.data == "phantom" and prov.weights == "random" and prov.is_simulated
    assert len(results.load_manifest(results_dir)) == len(curation.usable())


def test_existing_phantom_is_reused_and_other_scale_regenerated(tiny, tmp_path):
    """ensure_phantom leaves a matching phantom alone and regenerates on a changed scale."""
    data = tmp_path / "p"
    ensure_phantom(data, 0.02, 0, progress=False)
    marker = data / "phantom.json"
    first = marker.stat().st_mtime_ns
    ensure_phantom(data, 0.02, 0, progress=False)
    assert marker.stat().st_mtime_ns == first
    ensure_phantom(data, 0.03, 0, progress=False)
    assert json.loads(marker.read_text())["config"]["scale"] == 0.03


def test_features_must_match_the_asked_settings(tiny):
    """A run asking for other image size or weights than the saved features is refused with a clear message."""
    results_dir, _, _ = tiny
    with pytest.raises(DataError, match="re-run notebook 02"):
        run_optimizer(StepInputs(results_dir, 299, "random", TrainConfig(epochs=1)))


def test_optimizer_runs_are_saved_and_deterministic(tiny):
    """Same parameters and seed give identical metrics; the JSON round trip keeps them."""
    results_dir, _, _ = tiny
    config = TrainConfig(optimizer="adadelta", epochs=2, batch_size=8, seed=3)
    inputs = StepInputs(results_dir, SIZE, "random", config, validation_size=0.2, n_boot=20)
    a = run_optimizer(inputs)
    b = run_optimizer(inputs, save=False)
    assert a.test.to_dict() == b.test.to_dict()
    pd.testing.assert_frame_equal(a.history, b.history)
    again = runs.OptimizerRun.from_dict(json.loads(a.path.read_text()))
    assert again.test.accuracy == a.test.accuracy and len(again.history) == 2
    assert set(a.split_sizes) == {"train", "validation", "test"}
    row = tables.table4_row(a)
    assert (
        row.loc["validation", ("accuracy", "paper")] == paper.table4().loc["adadelta", "accuracy"]
    )
    assert row.loc["test", ("accuracy", "ours")] == a.test.accuracy


def test_comparison_gathers_runs_and_judges_claims(tiny):
    """With all four optimizers and the baselines saved, Tables 3–5 and the verdict are complete."""
    results_dir, cache, _ = tiny
    for opt in ("adam", "adagrad", "adadelta", "rmsprop"):
        run_optimizer(
            StepInputs(
                results_dir,
                SIZE,
                "random",
                TrainConfig(optimizer=opt, epochs=1, batch_size=8),
                validation_size=0.2,
                n_boot=10,
            )
        )
    base = run_baselines(results_dir, cache, cv_folds=3, seed=0, n_boot=10, progress=False)
    assert base.features.shape[1] == 14
    assert {"svm", "knn", "majority", "assessment"} <= set(base.runs)
    folds = base.runs["svm"].config["cv_folds_run"]
    assert 2 <= folds <= 3 and f"{folds}-fold CV on train" in tables.baseline_rows(base).index[0]
    res = runs.gather_results(results_dir)
    assert list(res.cnn) == ["adam", "adagrad", "adadelta", "rmsprop"]
    assert len(tables.table3(res)) == 4 and len(tables.table4(res)) == 8
    assert list(tables.table4(res)["accuracy"].columns) == ["ours", "95% CI", "paper", "difference"]
    t5 = tables.table5(res)
    assert (
        "Shen et al. 2019 [shen2019]" in t5.index
        and t5.filter(like="This study", axis=0).shape[0] == 4
    )
    # every interval of every run record is patient-level and says what it rests on
    records = [json.loads(p.read_text()) for p in (results_dir / results.RUNS).glob("*.json")]
    evaluations = [r[k] for r in records for k in ("train", "validation", "test") if r.get(k)]
    evaluations += [e for r in records for e in r.get("evaluations", {}).values()]
    assert len(evaluations) >= 4 * 3 + 2 * 2 + 2
    for ev in evaluations:
        assert ev["resampling_unit"] == "patient" and ev["n_patients"] >= 1 and ev["n_lesions"] >= 1
        assert ev["counts"]["all"]["rois"] == ev["n"]
    t4 = tables.table4(res)
    assert {"AUC (pooled, as the paper)", "AUC (macro, one-vs-rest)"} <= set(
        t4.columns.get_level_values("metric")
    )
    assert t4.loc["InceptionResNetV2, ADADelta", ("AUC (pooled, as the paper)", "paper")] == 0.96
    assert np.isnan(t4.loc["InceptionResNetV2, ADADelta", ("AUC (macro, one-vs-rest)", "paper")])
    assert set(base.runs["svm"].config["chosen"]) == {"C", "gamma"}
    assert set(base.runs["knn"].config["chosen"]) == {"k"}
    verdict = verdicts.verdict_table(res)
    # On the phantom with random weights no image claim can be judged: every such verdict says so;
    # the data-free claims are decided on the real tables all the same.
    image = verdict[verdict["kind"] == "image"]
    assert (image["verdict"] == judging.NOT_TESTABLE).all() and len(image) == 6
    assert image.index.str.contains("Training accuracy").any()
    free = verdict[verdict["kind"] == "data-free"]
    assert judging.NOT_REPRODUCED in set(free["verdict"])
    # every run record carries the hash of the plan it was made under
    from mcalc.evaluate.plan import plan_hash

    assert {r["analysis_plan"] for r in records} == {plan_hash()}
    assert (
        (t5.filter(like="This study", axis=0)["comparable with this task"])
        .str.startswith("not testable here")
        .all()
    )
    errata = tables.formula_errata(res)
    assert not errata.empty


def test_leakage_audit(tiny):
    """The audit reports three schemes (official and grouped leak-free), repeated over split seeds."""
    results_dir, _, _ = tiny
    config = TrainConfig(epochs=1, batch_size=8)
    audit = audits.leakage_audit(
        StepInputs(results_dir, SIZE, "random", config, validation_size=0.2, n_boot=10),
        n_split_seeds=2,
    )
    assert list(audit.evaluations) == list(splits.SPLIT_SCHEMES)
    # the pooled-data schemes are repeated over split seeds; the official split is one fixed split
    assert audit.repeats.groupby("scheme").size().to_dict() == {
        "official": 1,
        "roi_level": 2,
        "patient_grouped": 2,
    }
    grouped_runs = audit.repeats[audit.repeats["scheme"] == "patient_grouped"]
    assert (grouped_runs["presumed same lesion, other view, in training"] == 0).all()
    assert (
        "(b) − (c): what leakage adds on the same data, 95% CI over split seeds"
        in audit.table().index
    )

    official = audit.leakage.loc[splits.SPLIT_SCHEMES["official"]]
    grouped = audit.leakage.loc[splits.SPLIT_SCHEMES["patient_grouped"]]
    assert official["patients on both sides"] == 0 and grouped["patients on both sides"] == 0
    assert official["same patient in training"].startswith("0 ") and grouped[
        "same patient in training"
    ].startswith("0 ")
    roi_level = audit.leakage.loc[splits.SPLIT_SCHEMES["roi_level"]]
    assert roi_level["patients on both sides"] > 0
    assert set(audit.memorisation) == set(splits.SPLIT_SCHEMES) and all(
        0 <= v <= 1 for v in audit.memorisation.values()
    )
