"""The classification tasks: three-class (the paper), binary-merged and binary-biopsied.

One definition (:data:`mcalc.study.TASKS`) gives the labels, the exclusions and the class lists;
a data set holding only BENIGN and MALIGNANT runs end to end under a binary task and gets a clear
one-line error under three-class.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_tables
from sklearn.metrics import roc_auc_score

from mcalc.errors import DataError
from mcalc.evaluate import runs
from mcalc.evaluate.evaluation import evaluate
from mcalc.learn.model import TrainConfig
from mcalc.learn.splits import check_classes_present
from mcalc.records import results
from mcalc.report import tables
from mcalc.run.cli import main
from mcalc.run.pipeline import plan
from mcalc.run.preflight import check_counts, preflight
from mcalc.run.profiles import get_profile
from mcalc.run.runner import notebook_parameters
from mcalc.study import CLASSES, TASK_EXCLUSION, TASKS, apply_task, check_task_classes, get_task

BWC = CLASSES[1]
CALC = ("calc_case_description_train_set.csv", "calc_case_description_test_set.csv")


def _manifest() -> pd.DataFrame:
    """Four usable ROIs (one per pathology, BWC twice) and one already excluded."""
    return pd.DataFrame(
        {
            "roi_id": ["a", "b", "c", "d", "e"],
            "pathology": ["BENIGN", BWC, "MALIGNANT", BWC, "MALIGNANT"],
            "label": pd.array([0, 1, 2, 1, 2], dtype="Int64"),
            "status": ["ok", "ok", "ok", "ok", "excluded"],
            "reason": ["", "", "", "", "corrupt_dicom"],
            "detail": ["", "", "", "", "x.dcm"],
        }
    )


def test_three_class_is_the_paper_and_leaves_the_manifest_as_it_was():
    out = apply_task(_manifest(), "three-class")
    pd.testing.assert_frame_equal(out, _manifest())
    assert TASKS["three-class"].classes == CLASSES


def test_binary_merged_counts_bwc_as_benign_and_excludes_nothing():
    out = apply_task(_manifest(), "binary-merged")
    assert get_task("binary-merged").classes == ("BENIGN", "MALIGNANT")
    assert out["label"].tolist() == [0, 0, 1, 0, 1]
    assert out["status"].tolist() == _manifest()["status"].tolist()


def test_binary_biopsied_records_bwc_as_an_exclusion_with_a_reason():
    out = apply_task(_manifest(), "binary-biopsied")
    left = out[out["reason"] == TASK_EXCLUSION]
    assert left["roi_id"].tolist() == ["b", "d"]  # counted, not dropped
    assert (left["status"] == "excluded").all()
    assert left["detail"].str.contains("not biopsied").all()
    ok = out[out["status"] == "ok"]
    assert ok["label"].tolist() == [0, 1]
    assert out.loc[out["roi_id"] == "e", "reason"].item() == "corrupt_dicom"  # kept as it was
    assert len(out) == len(_manifest())


def test_a_task_left_out_rois_are_warned_about_at_loading():
    with pytest.warns(UserWarning, match="2 ROI\\(s\\) left out by task binary-biopsied"):
        kept = results.usable_under_task(_manifest().iloc[:4], "binary-biopsied")
    assert kept["roi_id"].tolist() == ["a", "c"]


def test_unknown_task_names_the_valid_ones():
    with pytest.raises(ValueError, match="binary-merged"):
        get_task("binary")
    with pytest.raises(ValueError, match="unknown task"):
        TrainConfig(task="two-class")
    assert TrainConfig(task="binary-biopsied").n_classes == 2
    assert TrainConfig().n_classes == 3


def _counts(train: tuple[int, int, int], test: tuple[int, int, int]) -> pd.DataFrame:
    return pd.DataFrame([train, test], index=["train", "test"], columns=list(CLASSES))


def test_a_two_class_data_set_under_three_class_names_the_binary_tasks():
    counts = _counts((40, 0, 40), (10, 0, 10))
    with pytest.raises(DataError, match="--task binary-biopsied or --task binary-merged"):
        check_task_classes(counts, "three-class", "data root r")
    for task in ("binary-merged", "binary-biopsied"):
        check_task_classes(counts, task, "data root r")
        assert check_counts(counts, "r", 0.2, task) == 0.2
    with pytest.raises(
        DataError, match="class MALIGNANT has no ROI in the train split \\(task binary-merged\\)"
    ):
        check_task_classes(_counts((40, 5, 0), (10, 5, 10)), "binary-merged", "r")
    with pytest.raises(DataError, match="binary-biopsied"):
        check_classes_present(np.array([0, 0, 2]), "test")


def test_binary_metrics_are_the_binary_auc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    p1 = np.clip(0.3 * y + rng.uniform(0, 0.7, 60), 0, 1)
    ev = evaluate(y, np.c_[1 - p1, p1], ("BENIGN", "MALIGNANT"), n_boot=0)
    assert ev.auc_macro == pytest.approx(roc_auc_score(y, p1))
    assert set(ev.sensitivity) == {"BENIGN", "MALIGNANT"}


def test_the_profile_carries_the_task_to_the_templates_that_declare_it():
    profile = get_profile("ci", task="binary-merged")
    params = {r.template: notebook_parameters(profile, r) for r in plan(profile)}
    for template in ("01_data_curation", "03_optimizer", "04_glcm_baselines", "05_comparison"):
        assert params[template]["task"] == "binary-merged"
    assert "task" not in params["02_preprocessing"]  # it counts no class
    assert get_profile("ci").task == "three-class"
    with pytest.raises(ValueError, match="unknown task"):
        get_profile("ci", task="nope")


def _two_class_tables(tmp_path: Path) -> Path:
    """A data root with the real calcification tables, BENIGN and MALIGNANT rows only."""
    source = shared_tables()
    root = tmp_path / "two"
    root.mkdir()
    for name in CALC:
        df = pd.read_csv(source / name)
        df[df["pathology"] != BWC].groupby("pathology").head(60).to_csv(root / name, index=False)
    return root


def test_cli_task_flag(tmp_path, capsys):
    """--task is offered, checked, and a two-class root under three-class is one line naming the fix."""
    with pytest.raises(SystemExit) as exc:
        main(["notebooks", "--task", "two-class"])
    assert exc.value.code == 2
    assert "binary-biopsied" in capsys.readouterr().err
    root = _two_class_tables(tmp_path)
    args = ["notebooks", "--data-source", "cbis-ddsm", "--data-root", str(root)]
    assert main([*args, "--out-dir", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--task binary-biopsied" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1
    profile = get_profile(
        "default", data_source="cbis-ddsm", data_root=str(root), task="binary-biopsied"
    )
    checked, data = preflight(profile)
    assert 0 < checked.validation_size < data.counts.loc["train"].sum()


# ------------------------------------------------------------------------ end to end, two classes


@pytest.fixture(scope="module")
def two_class_root(make_phantom, tmp_path_factory) -> Path:
    """A CI-size phantom whose tables hold only BENIGN and MALIGNANT (its images linked, not copied)."""
    source = make_phantom(0.05, seed=1)
    root = tmp_path_factory.mktemp("two_class") / "data"
    root.mkdir()
    (root / "CBIS-DDSM").symlink_to(source / "CBIS-DDSM", target_is_directory=True)
    for name in CALC:
        df = pd.read_csv(source / name, dtype=str, keep_default_na=False)
        df[df["pathology"] != BWC].to_csv(root / name, index=False)
    return root


def _study(root: Path, work: Path, task: str, cache: Path, audit: bool = False) -> runs.Results:
    """The study's steps under a task: curation, features, a head, the baselines (and the audit);
    ``cache`` (content-keyed) may be shared by tasks on the same images."""
    from mcalc.chapters.audits import leakage_audit
    from mcalc.chapters.inputs import StepInputs
    from mcalc.chapters.prepare import prepare_data
    from mcalc.chapters.training import run_optimizer
    from mcalc.evaluate.baselines import run_baselines
    from mcalc.learn.features import compute_features
    from mcalc.learn.weights import resolve_weights

    rd = work / "results"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare_data("cbis-ddsm", root, results_dir=rd, progress=False, task=task)
        weights = resolve_weights("random")
        prov = results.read_results_provenance(rd).with_weights(weights.used, weights.note)
        compute_features(results.load_manifest(rd), 75, weights, cache, rd, prov, progress=False)
        config = TrainConfig(epochs=2, task=task)
        run = run_optimizer(StepInputs(rd, 75, "random", config, validation_size=0.2, n_boot=10))
        assert run.test.classes == ("BENIGN", "MALIGNANT")
        assert run.config["task"] == task
        base = run_baselines(rd, cache, cv_folds=2, n_boot=0, progress=False, task=task)
        assert all(len(r.evaluations["test"].classes) == 2 for r in base.runs.values())
        if audit:
            a = leakage_audit(
                StepInputs(rd, 75, "random", config, validation_size=0.2, n_boot=0),
                n_split_seeds=1,
            )
            assert set(a.evaluations) == {"official", "roi_level", "patient_grouped"}
    return runs.gather_results(rd)


@pytest.mark.slow
def test_two_class_data_set_runs_end_to_end_under_both_binary_tasks(two_class_root, tmp_path):
    from mcalc.chapters.prepare import prepare_data

    with pytest.raises(DataError, match="--task binary-biopsied or --task binary-merged"):
        prepare_data("cbis-ddsm", two_class_root, results_dir=tmp_path / "r3", progress=False)
    cache = (
        tmp_path / "cache"
    )  # the same images under both tasks: the second reads the first's features
    for task in ("binary-merged", "binary-biopsied"):
        res = _study(two_class_root, tmp_path / task, task, cache, audit=task == "binary-biopsied")
        table = tables.binary_comparison(res)
        ours = table[table.index.str.startswith("This study")]
        assert len(ours) == 1 and task in ours["task_and_data"].item()
        assert "phantom" in ours["task_and_data"].item() or "data" in ours["task_and_data"].item()
        others = table[~table.index.str.startswith("This study")]
        assert len(others) >= 2 and others.index.str.contains("Shen").any()


@pytest.mark.slow
def test_binary_biopsied_on_three_class_data_reports_its_exclusions(make_phantom, tmp_path):
    from mcalc.chapters.prepare import prepare_data

    root = make_phantom(0.05, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        three = prepare_data("cbis-ddsm", root, results_dir=tmp_path / "a", progress=False)
        cur = prepare_data(
            "cbis-ddsm", root, results_dir=tmp_path / "b", progress=False, task="binary-biopsied"
        )
    n_bwc = int((three.usable()["pathology"] == BWC).sum())
    assert n_bwc > 0
    left = cur.exclusions[cur.exclusions["reason"] == TASK_EXCLUSION]
    assert len(left) == n_bwc and (left["pathology"] == BWC).all()
    written = pd.read_csv(tmp_path / "b" / "manifest.exclusions.csv")
    assert (written["reason"] == TASK_EXCLUSION).sum() == n_bwc
    assert len(cur.usable()) == len(three.usable()) - n_bwc


def test_task_is_a_sweepable_axis_of_the_optimizer_template(tmp_path):
    """A grid over ``task`` gives one point per task; the profile's task is the default of the others."""
    from dataclasses import replace

    from mcalc.run.grid import GridSpec
    from mcalc.run.points import expand

    profile = get_profile("ci", results_dir=str(tmp_path), task="binary-merged")
    spec = GridSpec.from_dict(
        {"name": "tasks", "grid": {"task": ["three-class", "binary-biopsied"]}}
    )
    points = expand(replace(spec, inputs=()), profile, Path(__file__).parents[1] / "notebooks")
    assert sorted(p.parameters["task"] for p in points) == ["binary-biopsied", "three-class"]
    plain = expand(
        replace(GridSpec.from_dict({"name": "o", "grid": {"seed": [0]}}), inputs=()),
        profile,
        Path(__file__).parents[1] / "notebooks",
    )
    assert plain[0].parameters["task"] == "binary-merged"
