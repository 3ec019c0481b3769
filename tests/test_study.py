"""The study's steps end to end on a tiny phantom: data → features → four heads → baselines → comparison."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mcalc import study
from mcalc.errors import DataError
from mcalc.model import TrainConfig

pytestmark = pytest.mark.slow

SIZE = 75


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny phantom curated, with random-weight features at 75 px: (results_dir, cache_dir, curation)."""
    root = tmp_path_factory.mktemp("study")
    results, cache = root / "results", root / "cache"
    curation = study.prepare_data(
        "phantom", root / "data", phantom_scale=0.05, seed=1, results_dir=results, progress=False
    )
    manifest = study.load_manifest(results)
    weights = study.resolve_backbone_weights("random")
    prov = study.read_results_provenance(results).with_weights(weights.used, weights.note)
    study.compute_features(manifest, SIZE, weights, cache, results, prov, progress=False)
    return results, cache, curation


def test_prepare_data_writes_manifest_and_phantom_provenance(tiny):
    """Curation writes the manifest; the provenance says phantom, and after features, the weights."""
    results, _, curation = tiny
    assert (results / study.MANIFEST).is_file()
    prov = study.read_results_provenance(results)
    assert prov.data == "phantom" and prov.weights == "random" and prov.is_simulated
    assert len(study.load_manifest(results)) == len(curation.usable())


def test_table1_counts_match_the_manifest(tiny):
    """Table 1's 'ours' columns are the usable ROIs per class and split; paper and official columns are beside."""
    _, _, curation = tiny
    t1 = study.table1(curation)
    usable = curation.usable()
    for cls in study.PAPER_CLASS_ORDER:
        assert (
            t1.loc[cls, ("ours", "training")]
            == ((usable.pathology == cls) & (usable.split == "train")).sum()
        )
        assert (
            t1.loc[cls, ("ours", "testing")]
            == ((usable.pathology == cls) & (usable.split == "test")).sum()
        )
    assert t1.loc["MALIGNANT", ("paper", "training")] == 545
    assert t1.loc["MALIGNANT", ("official CBIS-DDSM", "training")] == 544
    assert t1.loc["total", ("official CBIS-DDSM", "testing")] == 326


def test_existing_phantom_is_reused_and_other_scale_regenerated(tiny, tmp_path):
    """ensure_phantom leaves a matching phantom alone and regenerates on a changed scale."""
    data = tmp_path / "p"
    study.ensure_phantom(data, 0.02, 0, progress=False)
    marker = data / "phantom.json"
    first = marker.stat().st_mtime_ns
    study.ensure_phantom(data, 0.02, 0, progress=False)
    assert marker.stat().st_mtime_ns == first
    study.ensure_phantom(data, 0.03, 0, progress=False)
    assert json.loads(marker.read_text())["config"]["scale"] == 0.03


def test_features_must_match_the_asked_settings(tiny):
    """A run asking for other image size or weights than the saved features is refused with a clear message."""
    results, cache, _ = tiny
    with pytest.raises(DataError, match="re-run notebook 02"):
        study.run_optimizer(
            results, cache, image_size=299, weights="random", config=TrainConfig(epochs=1)
        )


def test_optimizer_runs_are_saved_and_deterministic(tiny):
    """Same parameters and seed give identical metrics; the JSON round trip keeps them."""
    results, cache, _ = tiny
    config = TrainConfig(optimizer="adadelta", epochs=2, batch_size=8, seed=3)
    a = study.run_optimizer(results, cache, SIZE, "random", config, validation_size=0.2, n_boot=20)
    b = study.run_optimizer(
        results, cache, SIZE, "random", config, validation_size=0.2, n_boot=20, save=False
    )
    assert a.test.to_dict() == b.test.to_dict()
    pd.testing.assert_frame_equal(a.history, b.history)
    again = study.OptimizerRun.from_dict(json.loads(a.path.read_text()))
    assert again.test.accuracy == a.test.accuracy and len(again.history) == 2
    assert set(a.split_sizes) == {"train", "validation", "test"}
    assert a.table4_row().loc["paper", "accuracy"] == "0.94"


def test_comparison_gathers_runs_and_judges_claims(tiny):
    """With all four optimizers and the baselines saved, Tables 3–5 and the verdict are complete."""
    results, cache, _ = tiny
    for opt in ("adam", "adagrad", "adadelta", "rmsprop"):
        study.run_optimizer(
            results,
            cache,
            SIZE,
            "random",
            TrainConfig(optimizer=opt, epochs=1, batch_size=8),
            validation_size=0.2,
            n_boot=10,
        )
    base = study.run_baselines(results, cache, cv_folds=3, seed=0, n_boot=10, progress=False)
    assert base.features.shape[1] == 14
    assert {"svm", "knn", "majority", "assessment"} <= set(base.runs)
    res = study.gather_results(results)
    assert list(res.cnn) == ["adam", "adagrad", "adadelta", "rmsprop"]
    assert len(res.table3()) == 4 and len(res.table4()) == 8
    assert all(" | " in cell for cell in res.table4()["accuracy"])
    t5 = res.table5()
    assert (
        "Shen et al. 2019 [shen2019]" in t5.index
        and t5.filter(like="This study", axis=0).shape[0] == 4
    )
    verdicts = res.verdicts()
    # On the phantom with random weights, numeric claims cannot be judged: the verdict says so.
    assert (
        verdicts.loc[verdicts.index.str.contains("accuracy 94%|AUC 0.96", regex=True), "verdict"]
        == "not testable here"
    ).all()
    assert len(verdicts) == 6
    errata = res.formula_errata()
    assert not errata.empty


def test_leakage_audit_and_seed_variance(tiny):
    """The audit reports three schemes (official and grouped leak-free); the variance grid has optimizers × seeds rows."""
    results, _, _ = tiny
    config = TrainConfig(epochs=1, batch_size=8)
    audit = study.leakage_audit(
        results, SIZE, "random", config, validation_size=0.2, n_boot=10, n_split_seeds=2
    )
    assert list(audit.evaluations) == list(study.SPLIT_SCHEMES)
    # the pooled-data schemes are repeated over split seeds; the official split is one fixed split
    assert audit.repeats.groupby("scheme").size().to_dict() == {
        "official": 1,
        "roi_level": 2,
        "patient_grouped": 2,
    }
    grouped_runs = audit.repeats[audit.repeats["scheme"] == "patient_grouped"]
    assert (grouped_runs["presumed same lesion, other view, in training"] == 0).all()
    assert "(b) − (c): what leakage adds on the same data" in audit.table().index

    official = audit.leakage.loc[study.SPLIT_SCHEMES["official"]]
    grouped = audit.leakage.loc[study.SPLIT_SCHEMES["patient_grouped"]]
    assert official["patients on both sides"] == 0 and grouped["patients on both sides"] == 0
    assert official["same patient in training"].startswith("0 ") and grouped[
        "same patient in training"
    ].startswith("0 ")
    roi_level = audit.leakage.loc[study.SPLIT_SCHEMES["roi_level"]]
    assert roi_level["patients on both sides"] > 0
    assert set(audit.memorisation) == set(study.SPLIT_SCHEMES) and all(
        0 <= v <= 1 for v in audit.memorisation.values()
    )
    frame = study.seed_variance(
        results, SIZE, "random", config, n_seeds=2, validation_size=0.2, progress=False
    )
    assert len(frame) == 8 and set(frame["seed"]) == {0, 1}
    summary = study.variance_summary(frame)
    assert "Kruskal–Wallis across optimizers" in summary.index
