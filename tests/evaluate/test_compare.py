"""Tests for mcalc.evaluate.compare and ``mcalc compare``: paired differences of two runs, verdicts, provenance, bad input."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mcalc.errors import DataError
from mcalc.evaluate import compare as C
from mcalc.evaluate.evaluation import evaluate_rows
from mcalc.evaluate.metrics import metric_names
from mcalc.evaluate.runs import BaselineRun, OptimizerRun
from mcalc.records.provenance import Provenance, write_provenance
from mcalc.records.results import write_json
from mcalc.run.cli import main

N_PATIENTS = 60
OPTIMIZERS = ("adam", "adagrad", "adadelta", "rmsprop")


def make_rows(n_patients: int = N_PATIENTS) -> pd.DataFrame:
    """Test ROIs of ``n_patients`` patients, three each, one class per patient."""
    patient = np.repeat(np.arange(n_patients), 3)
    return pd.DataFrame(
        {
            "roi_id": [f"R{i:04d}" for i in range(len(patient))],
            "label": (np.arange(n_patients) % 3)[patient],
            "patient_id": [f"P_{p:05d}" for p in patient],
            "side": "LEFT",
            "abnormality_id": 1,
        }
    )


def scores(y: np.ndarray, signal: float, seed: int) -> np.ndarray:
    """Softmax scores leaning towards the true class by ``signal``."""
    logits = np.random.default_rng(seed).normal(size=(len(y), 3))
    logits[np.arange(len(y)), y] += signal
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def write_run(
    folder: Path,
    rows: pd.DataFrame | None = None,
    data: str = "phantom",
    weights: str = "random",
    release: str = "",
    network_gain: float = 1.0,
    task: str = "three-class",
    noise_seed: int = 0,
) -> Path:
    """A results folder with four optimizer runs, an SVM and a k-NN on the same test ROIs."""
    rows = make_rows() if rows is None else rows
    y = rows["label"].to_numpy()
    prov = Provenance(data=data, weights=weights, release=release)
    write_provenance(prov, folder / "provenance.json")
    history = pd.DataFrame({"loss": [0.5], "accuracy": [0.9]})
    config = {"task": task, "seed": 0, "epochs": 3, "batch_size": 32, "learning_rate": 1e-4}
    for i, opt in enumerate(OPTIMIZERS):
        ev = evaluate_rows(rows, scores(y, 1.0 + network_gain, noise_seed + i), n_boot=30)
        run = OptimizerRun(opt, config, history, ev, ev, prov, {"test": len(rows)}, 0.0)
        write_json(run.to_dict(), folder / "runs" / f"cnn_{opt}.json")
    for j, (key, label) in enumerate((("svm", "GLCM + SVM (RBF)"), ("knn", "GLCM + k-NN"))):
        ev = evaluate_rows(rows, scores(y, 1.0, noise_seed + 10 + j), n_boot=30)
        run = BaselineRun(key, label, {"test": ev}, prov.with_weights("n/a"))
        write_json(run.to_dict(), folder / "runs" / f"baseline_{key}.json")
    return folder


def test_a_run_compared_with_itself_differs_in_nothing(tmp_path: Path) -> None:
    run = write_run(tmp_path / "a")
    c = C.compare_runs(run, run)
    assert len(c.differences) == 6 * len(metric_names())  # every model, every metric
    assert (c.differences["B − A"] == 0).all()
    assert (c.differences[["ci_low", "ci_high"]].to_numpy() == 0).all()
    assert not c.differences["CI excludes 0"].any()
    assert (c.differences["n_rois"] == 3 * N_PATIENTS).all()
    assert c.changed_verdicts() == [] and len(c.verdicts) > 0
    assert c.unmatched.empty and c.models_skipped.empty
    assert not c.provenance["differs"].any()
    assert "0 of" in c.report() and "nothing: every model and every test ROI" in c.report()


def test_differences_are_b_minus_a_and_paired(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", network_gain=1.0)
    b = write_run(tmp_path / "b", network_gain=3.0, noise_seed=100)
    c = C.compare_runs(a, b, n_boot=200)
    acc = c.differences.set_index(["model", "metric"]).loc[("InceptionResNetV2 ADAM", "accuracy")]
    assert acc["B − A"] == pytest.approx(acc["B"] - acc["A"])
    assert acc["B"] > acc["A"] and acc["ci_low"] > 0 and acc["CI excludes 0"]
    # the A and B columns are each run's own point estimate
    rec = json.loads((a / "runs" / "cnn_adam.json").read_text())
    assert acc["A"] == pytest.approx(rec["test"]["accuracy"])
    assert set(c.table4()["metric"]) == set(C.TABLE4_METRICS)


def test_rois_of_one_run_only_are_listed_never_dropped(tmp_path: Path) -> None:
    rows = make_rows()
    a = write_run(tmp_path / "a", rows)
    b_rows = rows.iloc[3:].copy()  # patient 0 (three ROIs) not tested in B
    extra = rows.iloc[:1].assign(roi_id="EXTRA", patient_id="P_99999")
    b_rows = pd.concat([b_rows, extra], ignore_index=True)
    b_rows.loc[b_rows["roi_id"] == "R0010", "label"] = (
        b_rows.loc[b_rows["roi_id"] == "R0010", "label"] + 1
    ) % 3  # one ROI relabelled in B
    b = write_run(tmp_path / "b", b_rows)
    c = C.compare_runs(a, b)
    listed = {(r["roi_id"], r["why"]) for _, r in c.unmatched.iterrows()}
    assert listed == {
        ("R0000", "only in A"),
        ("R0001", "only in A"),
        ("R0002", "only in A"),
        ("EXTRA", "only in B"),
        ("R0010", "label differs"),
    }
    assert set(c.unmatched["models"]) == {"every model"}
    assert (c.differences["n_rois"] == len(rows) - 4).all()
    report = c.report()
    assert "ROI R0000: only in A (every model)" in report and "ROI R0010: label differs" in report


def test_a_model_in_one_run_only_is_listed(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b")
    (b / "runs" / "baseline_knn.json").unlink()
    c = C.compare_runs(a, b)
    assert c.models_skipped.to_dict("records") == [{"model": "GLCM + k-NN", "why": "only in A"}]
    assert "GLCM + k-NN" not in set(c.differences["model"])


def test_a_changed_verdict_is_reported(tmp_path: Path) -> None:
    strong = write_run(tmp_path / "a", data="cbis-ddsm", weights="imagenet", network_gain=3.0)
    weak = write_run(tmp_path / "b", data="cbis-ddsm", weights="imagenet", network_gain=0.0)
    c = C.compare_runs(strong, weak)
    changed = c.changed_verdicts()
    assert any(claim.startswith("Outperforms") for claim in changed)
    row = c.verdicts.loc[changed[0]]
    assert row["A"] != row["B"]
    assert "[CHANGED]" in c.report()


def test_verdicts_go_through_one_function(tmp_path: Path, monkeypatch) -> None:
    run = write_run(tmp_path / "a")
    calls = []

    def plan(results, folder=None):
        calls.append(folder)
        return pd.DataFrame({"verdict": ["x"]}, index=pd.Index(["claim"], name="claim"))

    monkeypatch.setattr(C, "_verdicts", plan)
    c = C.compare_runs(run, run)
    # each run's verdicts read with its own folder (chapter 7's seed runs, as its chapter 5 does)
    assert (
        len(calls) == 2
        and all(f is not None for f in calls)
        and c.verdicts.loc["claim", "A"] == "x"
    )


def test_a_change_of_direction_alone_is_a_changed_verdict() -> None:
    """'not reproduced (lower)' → '(higher)' is a change although the outcome word is the same."""
    a = pd.DataFrame({"verdict": ["not reproduced (lower)"]}, index=pd.Index(["c"], name="claim"))
    b = pd.DataFrame({"verdict": ["not reproduced (higher)"]}, index=pd.Index(["c"], name="claim"))
    assert C.verdict_changes(a, b).loc["c", "changed"]
    assert not C.verdict_changes(a, a).loc["c", "changed"]


def test_provenance_differences_name_the_copy(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", release="kaggle-jpeg")
    (b / "features.json").write_text(
        json.dumps({"image_size": 299, "versions": {"commit": "abc1234", "tensorflow": "2.21.0"}})
    )
    c = C.compare_runs(a, b)
    differs = c.provenance[c.provenance["differs"]]
    assert "data copy" in differs.index and "commit" in differs.index
    assert "Kaggle JPEG" in differs.loc["data copy", "B"]
    assert "data copy: A DICOM release" in c.report()
    assert "weights" not in differs.index


def test_bundle_reads_like_its_folder(tmp_path: Path) -> None:
    folder = write_run(tmp_path / "a")
    bundle = tmp_path / "mcalc-results.zip"
    with zipfile.ZipFile(bundle, "w") as z:
        for path in folder.rglob("*.json"):
            z.write(path, f"records/{path.relative_to(folder)}")
        z.writestr("tables/x/y.csv", "a,b\n")
        z.writestr("records/../../evil.json", "{}")  # never written, never read
    c = C.compare_runs(folder, bundle)
    assert (c.differences["B − A"] == 0).all() and c.unmatched.empty
    assert not (tmp_path.parent / "evil.json").exists()


@pytest.mark.parametrize(
    "make_b, message",
    [
        (lambda t: t / "absent", "does not exist"),
        (lambda t: (t / "file.txt").write_text("x") and t / "file.txt", "neither a results folder"),
        (lambda t: (t / "empty").mkdir() or t / "empty", "is not a results folder"),
        (lambda t: write_run(t / "b", task="binary-merged"), "under the three-class task"),
        (
            lambda t: write_run(t / "b", make_rows().assign(roi_id=lambda d: "X" + d["roi_id"])),
            "no test ROI in common",
        ),
    ],
)
def test_runs_that_cannot_be_compared_give_one_line_and_exit_2(
    tmp_path: Path, capsys, make_b, message: str
) -> None:
    a = write_run(tmp_path / "a")
    b = make_b(tmp_path)
    with pytest.raises(DataError, match=message):
        C.compare_runs(a, b)
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mcalc compare: ") and message in err and err.count("\n") == 1


def test_a_broken_run_record_is_one_line(tmp_path: Path, capsys) -> None:
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b")
    (b / "runs" / "cnn_adam.json").write_text('{"kind": "cnn", "name": "adam"}')
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert (
        "cnn_adam.json is damaged" in err and err.count("\n") == 1
    )  # named by mcalc.records.results
    bad_zip = tmp_path / "x.zip"
    bad_zip.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    assert main(["compare", str(a), str(bad_zip)]) == 2
    assert "not a results bundle" in capsys.readouterr().err


def test_cli_prints_the_report_and_writes_its_tables(tmp_path: Path, capsys) -> None:
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", noise_seed=7)
    assert main(["compare", str(a), str(b), "--n-boot", "50", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "Paired patient-level differences B − A" in out and "(50 resamples" in out
    assert "Verdicts: 0 of" in out
    written = pd.read_csv(tmp_path / "out" / "differences.csv")
    assert len(written) == 6 * len(metric_names())


def test_the_copies_chapter_runs_its_own_phantom_at_a_scaled_hold_out() -> None:
    """Chapter 8 is planned in both profiles: the book's copies scale (or the profile's, if smaller)."""
    from mcalc.chapters.copies import BOOK_SCALE
    from mcalc.run.pipeline import plan
    from mcalc.run.profiles import get_profile

    def copies(profile):
        (run,) = [r for r in plan(profile) if r.template == "08_copies"]
        return run.parameters

    assert copies(get_profile("default")) == {"copies_scale": BOOK_SCALE, "validation_size": 50}
    assert copies(get_profile("ci")) == {"copies_scale": 0.05, "validation_size": 0.2}
    real = get_profile("default", data_source="cbis-ddsm")  # the chapter is always the phantom
    assert copies(real) == {"copies_scale": BOOK_SCALE, "validation_size": 50}
    root = Path(__file__).resolve().parents[2]
    assert "book/executed/08_copies" in (root / "_toc.yml").read_text()
    template = (root / "notebooks" / "08_copies.py").read_text()
    assert "JPEG round trip of the pipeline, not the real copies" in template
    assert "mcalc compare results-dicom results-kaggle" in template


def test_the_backbones_arithmetic_is_a_provenance_item(tmp_path: Path) -> None:
    """A bfloat16 run beside a float32 one: the comparison names the variant and the arithmetic, so a
    feature shift is not put down to the data alone."""
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b")
    (b / "features.json").write_text(
        json.dumps({"image_size": 299, "backbone": "folded+bf16", "backbone_precision": "bfloat16"})
    )
    differs = C.compare_runs(a, b).provenance.query("differs")
    assert differs.loc["backbone arithmetic", ["A", "B"]].tolist() == ["float32", "bfloat16"]
    assert differs.loc["backbone", "B"] == "folded+bf16"
