"""Metadata-only results on the real CBIS-DDSM tables shipped with mcalc (no ../shared needed)."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import shared_tables

from mcalc.data.calibration import SPLIT_FILES, shipped_tables
from mcalc.data.curation import CurationResult, curate
from mcalc.evaluate import metadata as md
from mcalc.records.provenance import REAL_TABLES, REAL_TABLES_LABEL, Provenance
from mcalc.study import CLASSES


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """The shipped real tables as manifest rows."""
    return md.read_real_tables()


# ------------------------------------------------------------------ the shipped files


def test_shipped_tables_match_the_checksums_in_their_readme():
    """The two CSVs are the files the README's SHA-256 table names, and the README gives source, licence, citation."""
    readme = (shipped_tables()["train"].parent / "README.md").read_text()
    for split, path in shipped_tables().items():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert re.search(rf"`{SPLIT_FILES[split]}` \| `{digest}`", readme), split
    for needed in (
        "CC BY 3.0",
        "10.7937/K9/TCIA.2016.7O02S9CY",
        "170177",
        "The Cancer Imaging Archive",
    ):
        assert needed in readme


def test_shipped_tables_are_byte_identical_to_the_shared_copy():
    """The package data are the official files, unmodified."""
    shared = shared_tables()
    for split, path in shipped_tables().items():
        assert path.read_bytes() == (shared / SPLIT_FILES[split]).read_bytes()


def test_every_shipped_record_is_usable(rows):
    """Curation's reader keeps all 1546 + 326 records; the out-of-range density 0 becomes NA with a note."""
    assert rows["status"].eq("ok").all()
    assert rows["split"].value_counts().to_dict() == {"train": 1546, "test": 326}
    zero = rows[rows["note"].str.contains("density 0")]
    assert set(zero["patient_id"]) == {"P_01743"} and zero["density"].isna().all()


# ------------------------------------------------------------------ Table 1 and the structure


def test_table1_real_counts_beside_the_papers(rows):
    """Ours from the real tables: 474/528/544 and 67/130/129; the paper's printed counts beside them."""
    t1 = md.table1(rows=rows)
    ours = t1["official CBIS-DDSM tables (ours)"]
    assert ours["training"].to_dict() == {
        "BENIGN_WITHOUT_CALLBACK": 474,
        "BENIGN": 528,
        "MALIGNANT": 544,
        "total": 1546,
    }
    assert ours["testing"].to_dict() == {
        "BENIGN_WITHOUT_CALLBACK": 67,
        "BENIGN": 130,
        "MALIGNANT": 129,
        "total": 326,
    }
    assert t1.loc["MALIGNANT", ("paper", "training")] == 545
    assert t1.loc["BENIGN_WITHOUT_CALLBACK", ("paper", "testing")] == 99
    assert "your download, usable after curation" not in t1.columns.get_level_values(0)


def test_table1_adds_a_curated_downloads_usable_counts(rows):
    """With a real download's curation, Table 1 shows its usable ROIs after exclusions beside the tables'."""
    manifest = rows.copy()
    excluded = manifest.index[(manifest["split"] == "test") & (manifest["label"] == 2)][:5]
    manifest.loc[excluded, "status"] = "excluded"
    curation = CurationResult(manifest, pd.DataFrame(), pd.DataFrame(), {}, is_phantom=False)
    t1 = md.table1(curation, rows=rows)
    usable = t1["your download, usable after curation"]
    assert usable.loc["MALIGNANT", "testing"] == 129 - 5
    assert usable.loc["total", "training"] == 1546
    phantom = CurationResult(manifest, pd.DataFrame(), pd.DataFrame(), {}, is_phantom=True)
    assert md.table1(phantom, rows=rows).shape[1] == 4


def test_structure_counts_patients_lesions_and_views(rows):
    """Patients, lesions (and those seen in both views), mammograms and views per class and split."""
    s = md.structure(rows)
    test_all, train_all = s.loc[("test", "all classes")], s.loc[("train", "all classes")]
    assert (test_all["ROIs"], test_all["patients"], test_all["mammograms"]) == (326, 151, 284)
    assert (test_all["lesions"], test_all["lesions seen in both views"]) == (189, 137)
    assert (train_all["ROIs"], train_all["patients"], train_all["mammograms"]) == (1546, 602, 1227)
    assert s.loc[("test", CLASSES[1]), "patients"] == 17
    assert s.loc[("train", CLASSES[1]), "patients"] == 82
    for split in ("train", "test"):
        per_class = s.loc[[(split, c) for c in CLASSES]]
        assert per_class["ROIs"].sum() == s.loc[(split, "all classes"), "ROIs"]
        assert (per_class["CC ROIs"] + per_class["MLO ROIs"] == per_class["ROIs"]).all()


def test_assessment_crosstab_shows_the_shortcut(rows):
    """BENIGN_WITHOUT_CALLBACK is assessment 2 in 467 of 474 training and all 67 test ROIs."""
    ct = md.assessment_crosstab(rows)
    assert ct.loc[("train", 2), CLASSES[1]] == 467
    assert ct.loc[("test", 2), CLASSES[1]] == 67
    assert ct.loc["test", CLASSES[1]].sum() == 67


# ------------------------------------------------------------------ the assessment rule


def test_assessment_rule_reaches_0715_with_a_patient_level_ci(rows):
    """The BI-RADS rule: 0.715 test accuracy, a patient-level CI around it resting on 151 patients."""
    ref = md.reference_rules(rows, n_boot=200, seed=0)
    ev = ref.evaluation
    assert round(ev.accuracy, 3) == 0.715
    assert ev.n == 326 and ev.n_patients == 151 and ev.n_lesions == 189
    assert ev.resampling_unit == "patient"
    lo, hi = ev.ci["accuracy"]
    assert lo < ev.accuracy < hi and hi - lo > 0.05
    assert ref.rule.loc[2, "rule"] == CLASSES[1]
    assert ev.sensitivity[CLASSES[1]] == 1.0  # all 67 test BENIGN_WITHOUT_CALLBACK are assessment 2
    cells = ref.table().loc[md.ASSESSMENT]
    assert cells["accuracy"].startswith("0.715 [")
    assert cells["test ROIs / lesions / patients"] == "326 / 189 / 151"


def test_majority_class_answers_the_largest_training_class(rows):
    """The majority rule answers MALIGNANT (544 of 1546 training ROIs): 129 / 326 test ROIs right."""
    ev = md.reference_rules(rows, n_boot=0).evaluations[md.MAJORITY]
    assert ev.accuracy == pytest.approx(129 / 326)
    assert ev.auc_macro == pytest.approx(0.5)


# ------------------------------------------------------------------ structural leakage


def test_leakage_structure_of_the_three_schemes(rows):
    """The official and patient-grouped splits share no patient; the ROI-level split leaks lesions."""
    leak = md.leakage_structure(rows, seed=0, n_boot=0)
    official, roi, grouped = (leak.loc[md.SPLIT_SCHEMES[k]] for k in md.SPLIT_SCHEMES)
    assert official["test ROIs"] == 326 and official["patients on both sides"] == 0
    assert official["same patient in training"] == "0 (0%)"
    assert grouped["patients on both sides"] == 0
    n_leaked = int(roi["presumed same lesion, other view in training"].split()[0])
    assert n_leaked > 0.5 * roi["test ROIs"]
    assert official["assessment-rule accuracy"] == "0.715"
    assert official[f"test {CLASSES[1]} with assessment 2"] == "67 / 67"


def test_scheme_sides_rejects_an_unknown_scheme(rows):
    """A scheme name outside the three is refused with the valid names."""
    with pytest.raises(ValueError, match="official, roi_level, patient_grouped"):
        md.scheme_sides(rows, "random")


# ------------------------------------------------------------------ a user's download


def _download(tmp_path: Path) -> Path:
    """A folder holding copies of the shipped tables (a download without its images)."""
    root = tmp_path / "download"
    root.mkdir()
    for path in shipped_tables().values():
        shutil.copyfile(path, root / path.name)
    return root


def test_check_download_same_records(tmp_path):
    """An unmodified download holds the same records as the shipped tables."""
    curation = curate(_download(tmp_path), check_images=False, progress=False)
    check = md.check_download(curation)
    assert check.differences.empty
    assert check.summary.loc["testing", "same records"] == 326
    assert check.summary.loc["training", "same records"] == 1546
    assert "same records" in check.note


def test_check_download_names_the_differences(tmp_path):
    """A changed value, a removed and an added record are each reported; only the splits present are checked."""
    root = _download(tmp_path)
    (root / SPLIT_FILES["train"]).unlink()
    path = root / SPLIT_FILES["test"]
    text = path.read_text()
    header, first, second, rest = text.split("\n", 3)
    assert first.startswith("P_00038,2,LEFT,CC,1,calcification,PUNCTATE-PLEOMORPHIC,CLUSTERED,4,")
    changed = first.replace("CLUSTERED,4,", "CLUSTERED,5,", 1)
    records = rest.split("\nP_")
    dropped = "P_" + records[1].split(",")[0]
    kept = [records[0]] + records[2:]
    added = "P_09999,2,LEFT,CC,1,calcification,AMORPHOUS,CLUSTERED,4,BENIGN,3," + ",".join(
        ["Calc-Test_P_09999_LEFT_CC/a/b/000000.dcm"] * 3
    )
    path.write_text(
        "\n".join([header, changed, second, "\nP_".join(kept).rstrip("\n"), added]) + "\n"
    )
    check = md.check_download(curate(root, check_images=False, progress=False))
    assert list(check.summary.index) == ["testing"]
    d = check.differences
    assessment = d[d["field"] == "assessment"]
    assert len(assessment) == 1 and assessment.iloc[0][
        ["shipped tables", "your tables"]
    ].tolist() == ["4", "5"]
    assert d[(d["your tables"] == "present")]["roi_id"].str.contains("P_09999").all()
    assert d[(d["your tables"] == "absent")]["roi_id"].str.contains(dropped).any()
    row = check.summary.loc["testing"]
    assert row["records with other values"] == 1 and row["only in your table"] == 1
    assert row["only in the shipped table"] >= 1
    assert "differ" in check.note


def test_check_download_on_the_phantom_says_there_is_nothing_to_check(rows):
    """A phantom curation has no download to compare."""
    curation = CurationResult(rows, pd.DataFrame(), pd.DataFrame(), {}, is_phantom=True)
    check = md.check_download(curation)
    assert check.summary.empty and "phantom" in check.note


# ------------------------------------------------------------------ provenance


def test_real_tables_provenance_label_and_banner():
    """The metadata label names the real tables; a phantom build's banner says which labels are real and which simulated."""
    prov = md.provenance()
    assert prov.data == REAL_TABLES and REAL_TABLES_LABEL in prov.label()
    assert not prov.is_simulated and prov.banner() == ""
    banner = Provenance(data="phantom", data_detail="scale 1").banner()
    assert "PHANTOM data" in banner and REAL_TABLES_LABEL in banner and "Table 1" in banner
    random = Provenance(data="cbis-ddsm").with_weights("random").banner()
    assert "randomly initialised" in random and REAL_TABLES_LABEL in random
    assert Provenance(data="cbis-ddsm").with_weights("imagenet").banner() == ""


def test_lesion_matching_on_the_shipped_tables_is_presumed(rows):
    """Per split, some two-view breasts hold different ROI counts in CC and MLO; 3 training id pairs differ in pathology."""
    table = md.lesion_matching(rows)
    assert list(table.columns) == ["training", "testing"]
    assert table.loc["breasts seen in both views"].tolist() == [565, 123]
    assert table.loc["… whose CC and MLO views hold different numbers of ROIs"].tolist() == [38, 5]
    assert table.loc["… whose CC and MLO pathologies differ"].tolist() == [3, 0]
    assert "likely" not in " ".join(md.SPLIT_SCHEMES.values())
