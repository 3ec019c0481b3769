"""Tests of the curation of CBIS-DDSM downloads (mcalc.data.curation): the real tables and tiny DICOM trees."""

from __future__ import annotations

import csv
import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from conftest import curate_quietly, shared_tables, write_dicom

from mcalc import study
from mcalc.data import case_tables as tb
from mcalc.data import curation as cu
from mcalc.errors import DataError
from mcalc.records import manifest as mf
from tests.data.test_case_tables import table_row, write_table

FULL_SHAPE = (40, 32)
CROP_SHAPE = (10, 8)


# ------------------------------------------------------------------------------- the real tables


@pytest.fixture(scope="module")
def real() -> cu.CurationResult:
    """The real calc tables curated without images."""
    return curate_quietly(shared_tables(), check_images=False)


@pytest.mark.parametrize(
    "split, n, counts, patients, images",
    [
        (
            "train",
            1546,
            {"MALIGNANT": 544, "BENIGN": 528, "BENIGN_WITHOUT_CALLBACK": 474},
            602,
            1227,
        ),
        ("test", 326, {"MALIGNANT": 129, "BENIGN": 130, "BENIGN_WITHOUT_CALLBACK": 67}, 151, 284),
    ],
)
def test_real_calc_table_counts(real, split, n, counts, patients, images):
    """ROIs per class, patients and distinct mammograms of the official calc tables."""
    m = real.manifest[real.manifest["split"] == split]
    assert len(m) == n
    assert m["pathology"].value_counts().to_dict() == counts
    assert m["patient_id"].nunique() == patients
    assert len(m[["patient_id", "side", "view"]].drop_duplicates()) == images
    assert m["image_id"].nunique() == images
    assert set(m["status"]) == {"unchecked"}  # no image was opened
    assert m["roi_id"].is_unique
    assert m["source_line"].is_monotonic_increasing and m["source_line"].iloc[0] == 2


def test_real_tables_no_patient_in_both_splits_and_clean_paths(real):
    """Splits are patient-disjoint; the quoted newlines inside the crop paths are gone."""
    m = real.manifest
    train, test = (set(m.loc[m["split"] == s, "patient_id"]) for s in ("train", "test"))
    assert train and test and not train & test
    for col in ("full_path", "crop_path", "mask_path"):
        assert not m[col].str.contains(r"[\r\n]").any()
        assert m[col].str.endswith(".dcm").all()
    # the raw file does have them
    raw = (shared_tables() / tb.TABLE_FILES[("calc", "train")]).read_text()
    assert '.dcm\n"' in raw
    assert (m["crop_path"].map(lambda p: Path(p).parts[-4]) == m["roi_id"]).all()


def test_real_density_zero_becomes_na_with_a_note(real):
    """Density 0 (out of range 1-4) of P_01743 in the test table → NA, the row kept and noted."""
    with open(shared_tables() / tb.TABLE_FILES[("calc", "test")], newline="") as fh:
        raw = [r for r in csv.DictReader(fh) if r["breast density"] == "0"]
    assert {r["patient_id"] for r in raw} == {"P_01743"}
    m = real.manifest
    rows = m[m["patient_id"] == "P_01743"]
    assert len(rows) == len(raw) >= 1
    assert rows["density"].isna().all()
    assert rows["note"].str.contains("density 0").all()
    assert set(rows["status"]) == {"unchecked"}
    others = m[m["patient_id"] != "P_01743"]
    assert others["density"].notna().all() and others["density"].between(1, 4).all()


def test_real_calc_types_normalised(real):
    """One spelling of LUCENT_CENTER, no repeated terms, compounds in one canonical (sorted) order."""
    raw = pd.concat(
        [
            pd.read_csv(
                shared_tables() / tb.TABLE_FILES[("calc", s)], dtype=str, keep_default_na=False
            )
            for s in ("train", "test")
        ]
    )
    assert raw["calc type"].str.contains("LUCENT_CENTERED").any()
    assert (raw["calc type"] == "PLEOMORPHIC-PLEOMORPHIC").any()
    types = real.manifest["calc_type"].dropna()
    terms = [t.split("-") for t in types]
    assert not any("LUCENT_CENTERED" in t for t in terms)
    assert any("LUCENT_CENTER" in t for t in terms)
    assert "PLEOMORPHIC-PLEOMORPHIC" not in set(types)
    assert all(t == sorted(set(t)) for t in terms)
    assert {"AMORPHOUS-PLEOMORPHIC", "PLEOMORPHIC-PUNCTATE"} <= set(types)
    # N/A is missing, not a category
    assert (raw["calc type"] == "N/A").sum() == real.manifest["calc_type"].isna().sum() > 0
    assert (
        real.manifest["calc_distribution"].isna().sum() == (raw["calc distribution"] == "N/A").sum()
    )


def test_real_bwc_is_almost_assessment_2(real):
    """BENIGN_WITHOUT_CALLBACK vs BI-RADS assessment 2: train 467 of 474, test 67 of 67."""
    m = real.manifest
    figures = {}
    for split in ("train", "test"):
        s = m[m["split"] == split]
        bwc = s["pathology"] == "BENIGN_WITHOUT_CALLBACK"
        figures[split] = (int((bwc & (s["assessment"] == 2)).sum()), int(bwc.sum()))
    assert figures == {"train": (467, 474), "test": (67, 67)}


# ------------------------------------------------------------------------------ tiny DICOM trees


def pixels(kind: str, rng: np.random.Generator, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Full image / crop (textured uint16) or mask (binary uint8) pixels."""
    if kind == "mask":
        mask = np.zeros(shape or FULL_SHAPE, np.uint8)
        mask[5:15, 6:14] = 255
        return mask
    return rng.integers(200, 4000, shape or (FULL_SHAPE if kind == "full" else CROP_SHAPE)).astype(
        np.uint16
    )


#: ROI specs of the synthetic downloads: (split, patient, side, view, abnormality id, pathology, fault)
CLEAN = [
    ("train", "P_00005", "RIGHT", "CC", 1, "MALIGNANT", None),
    ("train", "P_00005", "RIGHT", "CC", 2, "BENIGN", "swap"),
    ("train", "P_00007", "LEFT", "MLO", 1, "BENIGN_WITHOUT_CALLBACK", "same_path"),
    ("test", "P_00009", "LEFT", "CC", 1, "BENIGN", "full_size_crop_swap"),
]
FAULTY = [
    ("train", "P_00010", "LEFT", "CC", 1, "MALIGNANT", None),
    ("train", "P_00011", "LEFT", "CC", 1, "BENIGN", "missing_crop"),
    ("train", "P_00012", "LEFT", "CC", 1, "BENIGN", "truncated_mask"),
    ("train", "P_00013", "LEFT", "CC", 1, "BENIGN", "html_crop"),
    ("train", "P_00014", "LEFT", "CC", 1, "MALIGNANT", "small_mask"),
    ("train", "P_00015", "LEFT", "CC", 1, "MALIGNANT", "empty_crop"),
    ("train", "P_00016", "LEFT", "CC", 1, "UNPROVEN", None),
    ("train", "P_00017", "LEFT", "CC", 1, "BENIGN", "duplicate"),
    ("test", "P_00018", "RIGHT", "MLO", 1, "MALIGNANT", "missing_full"),
    ("test", "P_00018", "RIGHT", "MLO", 2, "BENIGN", "missing_full"),
    ("test", "P_00019", "RIGHT", "MLO", 1, "BENIGN", "truncated_full_header"),
]
EXPECTED_REASON = {
    "missing_crop": "missing_file",
    "truncated_mask": "corrupt_dicom",
    "html_crop": "not_dicom",
    "empty_crop": "empty_crop",
    "duplicate": "duplicate",
    "missing_full": "missing_file",
    "truncated_full_header": "corrupt_dicom",
}


def build_download(root: Path, specs: list[tuple], layout: str, seed: int = 0) -> dict[str, dict]:
    """Write the calc tables and a DICOM tree (UID or NBIA layout) for the ROI specs; returns the truth per ROI."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[list[str]]] = {"train": [], "test": []}
    truth: dict[str, dict] = {}
    fulls: dict[str, Path] = {}
    n = [0]

    def uid() -> str:
        """The next UID-looking folder name."""
        n[0] += 1
        return f"1.3.6.1.4.1.9590.100.1.2.{n[0]}"

    for split, patient, side, view, abn, pathology, fault in specs:
        image_folder = f"Calc-{tb.SPLIT_PREFIX[split]}_{patient}_{side}_{view}"
        roi_folder = f"{image_folder}_{abn}"
        if image_folder not in fulls:
            if layout == "uid":
                full_csv = f"{image_folder}/{uid()}/{uid()}/000000.dcm"
                full_disk = root / "CBIS-DDSM" / full_csv
            else:
                full_csv = f"{image_folder}/{uid()}/{uid()}/000000.dcm"
                full_disk = (
                    root
                    / "CBIS-DDSM"
                    / image_folder
                    / "08-07-2016-DDSM-NA-12345"
                    / "1.000000-full mammogram images-67890"
                    / "1-1.dcm"
                )
            write_dicom(full_disk, pixels("full", rng))
            fulls[image_folder] = (full_csv, full_disk)
        full_csv, full_disk = fulls[image_folder]
        series = f"{roi_folder}/{uid()}/{uid()}"
        crop_csv, mask_csv = f"{series}/000001.dcm", f"{series}/000000.dcm"
        if layout == "uid":
            crop_disk, mask_disk = root / "CBIS-DDSM" / crop_csv, root / "CBIS-DDSM" / mask_csv
        else:
            folder = (
                root
                / "CBIS-DDSM"
                / roi_folder
                / "08-07-2016-DDSM-NA-23456"
                / "1.000000-ROI mask images-78901"
            )
            crop_disk, mask_disk = folder / "1-2.dcm", folder / "1-1.dcm"
        crop_px = pixels("crop", rng, FULL_SHAPE if fault == "full_size_crop_swap" else None)
        mask_px = pixels("mask", rng, (20, 16) if fault == "small_mask" else None)
        if fault == "empty_crop":
            crop_px[:] = 1000
        if fault in ("swap", "full_size_crop_swap"):
            crop_disk, mask_disk = mask_disk, crop_disk
        write_dicom(crop_disk, crop_px)
        write_dicom(mask_disk, mask_px)
        if fault == "missing_crop":
            crop_disk.unlink()
        elif fault == "truncated_mask":
            data = mask_disk.read_bytes()
            mask_disk.write_bytes(data[: int(len(data) * 0.6)])
        elif fault == "html_crop":
            crop_disk.write_text("<html><body>503 Service Unavailable</body></html>\n")
        elif fault == "missing_full" and full_disk.exists():
            full_disk.unlink()
        elif fault == "truncated_full_header":
            full_disk.write_bytes(full_disk.read_bytes()[:200])
        if fault == "same_path":
            crop_csv = mask_csv
        record = [
            patient,
            "3",
            side,
            view,
            str(abn),
            "calcification",
            "PUNCTATE-PLEOMORPHIC",
            "N/A",
            "4",
            pathology,
            "3",
            full_csv,
            crop_csv + "\n",
            mask_csv,
        ]
        rows[split].append(record)
        if fault == "duplicate":
            rows[split].append(list(record))
        truth[roi_folder] = {
            "full": full_disk,
            "crop": crop_disk,
            "mask": mask_disk,
            "fault": fault,
            "pathology": pathology,
        }
    for split, records in rows.items():
        if records:
            write_table(root / tb.TABLE_FILES[("calc", split)], records)
    return truth


def n_table_rows(root: Path) -> int:
    """Records of all calc tables under root (csv module)."""
    total = 0
    for split in ("train", "test"):
        path = root / tb.TABLE_FILES[("calc", split)]
        if path.is_file():
            with open(path, newline="") as fh:
                total += sum(1 for _ in csv.reader(fh)) - 1
    return total


@pytest.mark.parametrize("layout", ["uid", "nbia"])
def test_clean_tree_resolves_and_corrects_swaps(tmp_path, layout):
    """Every ROI of a clean tree is usable; crop and mask are told apart by content; swaps recorded."""
    truth = build_download(tmp_path, CLEAN, layout)
    result = curate_quietly(tmp_path)
    m = result.manifest.set_index("roi_id")
    assert len(m) == len(CLEAN) == n_table_rows(tmp_path)
    assert set(m["status"]) == {"ok"} and set(m["reason"]) == {""}
    for roi, t in truth.items():
        assert Path(m.at[roi, "full_path"]) == t["full"]
        assert Path(m.at[roi, "crop_path"]) == t["crop"]
        assert Path(m.at[roi, "mask_path"]) == t["mask"]
        crop = pydicom.dcmread(m.at[roi, "crop_path"]).pixel_array
        assert crop.dtype == np.uint16 and np.ptp(crop) > 0
    swapped = {roi for roi, t in truth.items() if t["fault"] in ("swap", "full_size_crop_swap")}
    assert set(m.index[m["crop_mask_swapped"]]) == swapped
    assert set(result.swaps["roi_id"]) == swapped
    assert list(result.swaps.columns) == ["roi_id", "crop_path", "mask_path"]
    same = next(roi for roi, t in truth.items() if t["fault"] == "same_path")
    assert "by content" in m.at[same, "note"]
    assert result.exclusions.empty and not result.is_phantom
    summary = result.summary()
    assert summary.loc["train", "MALIGNANT"] == 1 and summary.loc["test", "BENIGN"] == 1
    assert summary.loc["total", "total"] == len(CLEAN)
    assert len(result.usable()) == len(CLEAN)


@pytest.mark.parametrize("layout", ["uid", "nbia"])
def test_faulty_tree_excludes_each_fault_with_its_reason(tmp_path, layout):
    """Missing, truncated, non-DICOM, empty, unknown, duplicate: each excluded and reported; a wrong-size mask kept."""
    truth = build_download(tmp_path, FAULTY, layout)
    with pytest.warns(tb.CurationWarning) as record:
        result = cu.curate(tmp_path, progress=False)
    m = result.manifest
    assert len(m) == n_table_rows(tmp_path) == len(FAULTY) + 1  # the duplicate row is a row too
    assert list(m.columns) == mf.MANIFEST_COLUMNS
    by_roi = m.groupby("roi_id")
    for roi, t in truth.items():
        rows = by_roi.get_group(roi)
        if t["fault"] is None and t["pathology"] in study.CLASSES:
            assert list(rows["status"]) == ["ok"]
        elif t["pathology"] not in study.CLASSES:
            assert list(rows["reason"]) == ["unknown_pathology"]
        elif t["fault"] == "small_mask":  # kept (only the crop is used), the mismatch noted
            assert list(rows["status"]) == ["ok"]
            assert "mask size mismatch" in rows["note"].iloc[0] and "20x16" in rows["note"].iloc[0]
        elif t["fault"] == "duplicate":
            assert (
                list(rows["status"]) == ["ok", "excluded"] and rows["reason"].iloc[1] == "duplicate"
            )
        else:
            assert list(rows["reason"]) == [EXPECTED_REASON[t["fault"]]], roi
    excluded = m[m["status"] == "excluded"]
    assert len(result.exclusions) == len(excluded)
    assert list(result.exclusions.columns) == mf.EXCLUSION_COLUMNS
    assert (result.exclusions["detail"] != "").all()
    # the detail names the file at fault
    detail = result.exclusions.set_index("roi_id")["detail"]
    html = next(roi for roi, t in truth.items() if t["fault"] == "html_crop")
    assert str(truth[html]["crop"]) in detail[html]
    # one warning per kind of exclusion, with its count
    messages = [str(w.message) for w in record if issubclass(w.category, tb.CurationWarning)]
    counts = Counter(excluded["reason"])
    assert len(messages) == len(counts)
    for reason, n in counts.items():
        assert any(msg.startswith(f"{n} ROI(s) excluded: {reason} ") for msg in messages)
    assert counts["missing_file"] == 3  # one missing crop + the two ROIs of the missing full image


def test_check_images_false_opens_nothing(tmp_path):
    """Without image checks rows are 'unchecked'; table faults are still excluded; absent files noted."""
    build_download(tmp_path, FAULTY, "uid")
    result = curate_quietly(tmp_path, check_images=False)
    m = result.manifest
    assert len(m) == len(FAULTY) + 1
    assert set(m["status"]) == {"unchecked", "excluded"}
    assert set(m.loc[m["status"] == "excluded", "reason"]) == {"unknown_pathology", "duplicate"}
    missing = m[m["roi_id"] == "Calc-Training_P_00011_LEFT_CC_1"]
    assert missing["note"].str.contains("files not found").all()
    assert result.summary().loc["total", "total"] == 0
    assert result.summary("unchecked").loc["total", "total"] == (m["status"] == "unchecked").sum()


def test_relative_root_gives_relative_paths_and_phantom_flag(tmp_path, monkeypatch):
    """Paths are the caller's root joined with the file's place below it; phantom.json marks a phantom."""
    build_download(tmp_path / "dl", CLEAN[:1], "nbia")
    (tmp_path / "dl" / "phantom.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    result = curate_quietly(Path("dl"))
    row = result.manifest.iloc[0]
    assert row["status"] == "ok" and result.is_phantom
    for col in ("full_path", "crop_path", "mask_path"):
        assert (
            not os.path.isabs(row[col]) and row[col].startswith("dl") and Path(row[col]).is_file()
        )


def test_write_and_read_manifest_round_trip(tmp_path):
    """write_curation writes three files atomically; read_manifest restores the dtypes."""
    build_download(tmp_path / "dl", FAULTY, "uid")
    result = curate_quietly(tmp_path / "dl")
    paths = cu.write_curation(result, tmp_path / "out" / "manifest.csv")
    assert paths == {
        "manifest": tmp_path / "out" / "manifest.csv",
        "exclusions": tmp_path / "out" / "manifest.exclusions.csv",
        "swaps": tmp_path / "out" / "manifest.swaps.csv",
    }
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in paths.values()
    )
    back = mf.read_manifest(paths["manifest"])
    pd.testing.assert_frame_equal(back, result.manifest)
    assert back["label"].dtype == "Int64" and back["crop_mask_swapped"].dtype == bool
    ex = pd.read_csv(paths["exclusions"], dtype=str, keep_default_na=False)
    assert len(ex) == len(result.exclusions) > 0
    with pytest.raises(DataError, match="missing column"):
        pd.DataFrame({"roi_id": ["x"]}).to_csv(tmp_path / "bad.csv", index=False)
        mf.read_manifest(tmp_path / "bad.csv")


# ------------------------------------------------------------------------------ more on the real tables


def test_real_one_manifest_row_per_record_paths_below_root(real):
    """len(manifest) is the number of records the csv module reads; every path is the root joined with it."""
    root = shared_tables()
    n = 0
    for split in ("train", "test"):
        with open(root / tb.TABLE_FILES[("calc", split)], newline="") as fh:
            n += sum(1 for _ in csv.DictReader(fh))
    assert len(real.manifest) == n
    for col in ("full_path", "crop_path", "mask_path"):
        assert real.manifest[col].str.startswith(str(root)).all()
    assert (real.manifest["label"] == real.manifest["pathology"].map(study.CLASSES.index)).all()


@pytest.mark.parametrize("column", ["breast density", "cropped image file path"])
def test_real_table_without_a_required_column(tmp_path, column):
    """The real test table with one required column removed → DataError naming the column and the file."""
    name = tb.TABLE_FILES[("calc", "test")]
    frame = pd.read_csv(shared_tables() / name, dtype=str, keep_default_na=False)
    frame.drop(columns=column).to_csv(tmp_path / name, index=False)
    with pytest.raises(DataError, match=column) as err:
        curate_quietly(tmp_path, check_images=False)
    assert str(tmp_path / name) in str(err.value)


def test_real_root_with_only_the_calc_test_table(tmp_path):
    """A root holding only the calc test table curates to a test-only manifest of its 326 ROIs."""
    name = tb.TABLE_FILES[("calc", "test")]
    (tmp_path / name).write_bytes((shared_tables() / name).read_bytes())
    result = curate_quietly(tmp_path, check_images=False)
    assert list(result.tables) == [("calc", "test")]
    assert len(result.manifest) == 326 and set(result.manifest["split"]) == {"test"}
    assert (
        result.manifest["note"].str.contains("files not found").all()
    )  # no DICOM tree: said per row


# ------------------------------------------------------------------------------ phantom round trips

QUIRK_REASON = {
    "missing_file": "missing_file",
    "truncated_dicom": "corrupt_dicom",
    "not_dicom": "not_dicom",
}


@pytest.fixture(scope="module", params=["uid", "nbia"])
def phantom(request, make_phantom):
    """A tiny phantom in one layout and its curation: (root, curation, quirks)."""
    root = make_phantom(0.03, seed=3, layout=request.param)
    quirks = pd.read_csv(root / "quirks.csv", dtype=str, keep_default_na=False)
    return root, curate_quietly(root), quirks


def test_phantom_every_row_accounted_for(phantom):
    """Every CSV row of the phantom is in the manifest, ok or excluded; the report lists the excluded ones."""
    root, result, _ = phantom
    m = result.manifest
    ids = set()
    for split in ("train", "test"):
        with open(root / tb.TABLE_FILES[("calc", split)], newline="") as fh:
            ids |= {(split, r["cropped image file path"].split("/")[0]) for r in csv.DictReader(fh)}
    assert len(m) == len(ids) == n_table_rows(root)
    assert set(zip(m["split"], m["roi_id"])) == ids
    ok, excluded = m["status"] == "ok", m["status"] == "excluded"
    assert ok.sum() + excluded.sum() == len(m)
    assert (m.loc[ok, "reason"] == "").all() and (m.loc[excluded, "reason"] != "").all()
    pd.testing.assert_frame_equal(
        result.exclusions, m.loc[excluded, mf.EXCLUSION_COLUMNS].reset_index(drop=True)
    )
    assert result.is_phantom and result.summary().loc["total", "total"] == ok.sum()


def test_phantom_exclusions_are_exactly_the_damaged_files(phantom):
    """The excluded ROIs are those quirks.csv damaged, with the matching reason; the detail names the file."""
    root, result, quirks = phantom
    damaged = quirks[quirks["kind"] != "crop_mask_swapped"]
    assert set(damaged["kind"]) == set(QUIRK_REASON)  # big enough to hold every kind of damage
    ex = result.exclusions.set_index("roi_id")
    assert set(ex.index) == set(damaged["roi_id"])
    for _, q in damaged.iterrows():
        assert ex.at[q["roi_id"], "reason"] == QUIRK_REASON[q["kind"]], q.to_dict()
        detail, bad = ex.at[q["roi_id"], "detail"], str(root / q["file"])
        # a missing NBIA file cannot be named by its own path: the detail names its ROI folder instead
        assert bad in detail or (q["kind"] == "missing_file" and q["roi_id"] in detail), (
            detail,
            bad,
        )


def test_phantom_swaps_corrected(phantom):
    """The ROIs whose crop and mask were swapped on disk are ok, flagged, and listed in the swaps table."""
    root, result, quirks = phantom
    swaps = quirks[quirks["kind"] == "crop_mask_swapped"]
    assert len(swaps) >= 1
    m = result.manifest.set_index("roi_id")
    assert (m.loc[list(swaps["roi_id"]), "status"] == "ok").all()
    assert (
        set(m.index[m["crop_mask_swapped"]]) == set(swaps["roi_id"]) == set(result.swaps["roi_id"])
    )
    for _, q in swaps.iterrows():  # the file written as the crop now holds the mask
        assert m.at[q["roi_id"], "mask_path"] == str(root / q["file"])


def test_phantom_crop_and_mask_by_content(phantom):
    """For ok rows (swapped ones included) the crop is the non-binary image, the mask binary and full-size."""
    _, result, quirks = phantom
    ok = result.usable()
    swapped = ok["roi_id"].isin(set(quirks.loc[quirks["kind"] == "crop_mask_swapped", "roi_id"]))
    for _, row in pd.concat([ok[swapped], ok[~swapped].head(4)]).iterrows():
        full = pydicom.dcmread(row["full_path"]).pixel_array
        crop = pydicom.dcmread(row["crop_path"]).pixel_array
        mask = pydicom.dcmread(row["mask_path"]).pixel_array
        assert mask.shape == full.shape and len(np.unique(mask)) == 2, row["roi_id"]
        assert len(np.unique(crop)) > 2 and crop.shape != full.shape, row["roi_id"]


def test_phantom_manifest_round_trip(phantom, tmp_path):
    """write_curation / read_manifest keep every value and dtype of a phantom's manifest."""
    result = phantom[1]
    paths = cu.write_curation(result, tmp_path / "manifest.csv")
    pd.testing.assert_frame_equal(mf.read_manifest(paths["manifest"]), result.manifest)
    assert list(pd.read_csv(paths["swaps"])["roi_id"]) == list(result.swaps["roi_id"])


# ------------------------------------------------------------------------------ more hand-made bad input


def roi_files(root: Path, roi_folder: str, files: dict[str, np.ndarray | None]) -> None:
    """Write the ROI files {path below the ROI folder: pixels} of a UID-layout ROI."""
    for rel, px in files.items():
        if px is not None:
            write_dicom(root / "CBIS-DDSM" / roi_folder / rel, px)


def test_two_series_both_named_000000(tmp_path):
    """As in one real calc row: crop and mask in their own series folders, both 000000.dcm; content decides."""
    rng = np.random.default_rng(1)
    rows = []
    for patient, swap in (("P_00021", False), ("P_00022", True)):
        rec = table_row(patient)
        image, roi = rec[11].split("/")[0], rec[12].split("/")[0]
        write_dicom(tmp_path / "CBIS-DDSM" / rec[11], pixels("full", rng))
        crop, mask = pixels("crop", rng), pixels("mask", rng)
        roi_files(
            tmp_path,
            roi,
            {
                "7.1/7.2/000000.dcm": mask if swap else crop,
                "8.1/8.2/000000.dcm": crop if swap else mask,
            },
        )
        rec[12], rec[13] = f"{roi}/7.1/7.2/000000.dcm\n", f"{roi}/8.1/8.2/000000.dcm"
        rows.append(rec)
        assert image != roi
    write_table(tmp_path / tb.TABLE_FILES[("calc", "train")], rows)
    m = curate_quietly(tmp_path).manifest.set_index("roi_id")
    assert set(m["status"]) == {"ok"}
    plain, swapped = (
        m.loc["Calc-Training_P_00021_LEFT_CC_1"],
        m.loc["Calc-Training_P_00022_LEFT_CC_1"],
    )
    assert (
        "/7.2/" in plain["crop_path"]
        and "/8.2/" in plain["mask_path"]
        and not plain["crop_mask_swapped"]
    )
    assert (
        "/8.2/" in swapped["crop_path"]
        and "/7.2/" in swapped["mask_path"]
        and swapped["crop_mask_swapped"]
    )


def test_same_file_twice_without_a_second_file_is_reported(tmp_path):
    """Both table paths naming one file and no other file in the ROI folder: excluded, never guessed."""
    rng = np.random.default_rng(2)
    rec = table_row("P_00023")
    roi = rec[12].split("/")[0]
    write_dicom(tmp_path / "CBIS-DDSM" / rec[11], pixels("full", rng))
    roi_files(tmp_path, roi, {"1.2.5/1.2.6/000000.dcm": pixels("mask", rng)})
    rec[12] = rec[13] + "\n"
    write_table(tmp_path / tb.TABLE_FILES[("calc", "train")], [rec])
    row = curate_quietly(tmp_path).manifest.iloc[0]
    assert (row["status"], row["reason"]) == ("excluded", "missing_file")
    assert roi in row["detail"]


def test_all_zero_crop_excluded(tmp_path):
    """An all-zero crop is excluded as empty, naming the crop file."""
    rng = np.random.default_rng(3)
    rec = table_row("P_00024")
    write_dicom(tmp_path / "CBIS-DDSM" / rec[11], pixels("full", rng))
    roi = rec[12].split("/")[0]
    roi_files(
        tmp_path,
        roi,
        {
            "1.2.5/1.2.6/000001.dcm": np.zeros(CROP_SHAPE, np.uint16),
            "1.2.5/1.2.6/000000.dcm": pixels("mask", rng),
        },
    )
    write_table(tmp_path / tb.TABLE_FILES[("calc", "train")], [rec])
    row = curate_quietly(tmp_path).manifest.iloc[0]
    assert (row["status"], row["reason"]) == ("excluded", "empty_crop")
    assert row["crop_path"] in row["detail"]


def test_undecided_roi_is_excluded_with_the_shared_detail(tmp_path):
    """Two binary ROI files of a size other than the full image's: the row is excluded as undecided."""
    rng = np.random.default_rng(4)
    rec = table_row("P_00025")
    write_dicom(tmp_path / "CBIS-DDSM" / rec[11], pixels("full", rng))
    roi = rec[12].split("/")[0]
    two = np.zeros(CROP_SHAPE, np.uint16)
    two[5:9, 5:9] = 1
    roi_files(tmp_path, roi, {"1.2.5/1.2.6/000001.dcm": two, "1.2.5/1.2.6/000000.dcm": two * 255})
    write_table(tmp_path / tb.TABLE_FILES[("calc", "train")], [rec])
    row = curate_quietly(tmp_path).manifest.iloc[0]
    assert (row["status"], row["reason"]) == ("excluded", "crop_mask_undecided")
    assert row["detail"].startswith(
        "cannot tell crop from mask: 2 of the two files are binary and 0"
    )
    assert row["crop_path"] in row["detail"] and row["mask_path"] in row["detail"]


@pytest.mark.parametrize("layout", ["uid", "nbia"])
def test_every_exclusion_detail_names_a_file_or_the_row(tmp_path, layout):
    """Each exclusion's detail names one of the ROI's files (or its folder) or the table file and line."""
    build_download(tmp_path, FAULTY, layout)
    result = curate_quietly(tmp_path)
    m = result.manifest
    assert len(result.exclusions) == (m["status"] == "excluded").sum() > 0
    for _, e in result.exclusions.iterrows():
        row = m[
            (m["source_file"] == e["source_file"]) & (m["source_line"] == e["source_line"])
        ].iloc[0]
        names = [
            row["full_path"],
            row["crop_path"],
            row["mask_path"],
            e["roi_id"],
            f"{e['source_file']} line {e['source_line']}",
        ]
        assert any(n and n in e["detail"] for n in names), (e["reason"], e["detail"])


def test_read_manifest_rejects_a_bad_flag(tmp_path):
    """A manifest whose crop_mask_swapped is not True/False is a DataError naming the file."""
    row = {c: "" for c in mf.MANIFEST_COLUMNS}
    row.update(crop_mask_swapped="maybe", source_line="2")
    pd.DataFrame([row]).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(DataError, match="crop_mask_swapped") as err:
        mf.read_manifest(tmp_path / "m.csv")
    assert str(tmp_path / "m.csv") in str(err.value)


# ------------------------------------------------------------- damaged tables, escapes, loops (#9)


def damaged_line(kind: str) -> str:
    """One calc record (no quoted line break) damaged as named, as a line of table text."""
    cells = table_row("P_00002")
    cells[12] = cells[12].strip()
    if kind == "empty_path":
        cells[11] = ""
    elif kind == "na_path":
        cells[12] = "N/A"
    elif kind == "short_row":
        cells = cells[:9]
    line = ",".join(cells)
    if kind == "unbalanced_quote":
        line = line.replace(",BENIGN,", ',"BENIGN,', 1)
    return line + "\n"


@pytest.mark.parametrize("check_images", [True, False])
@pytest.mark.parametrize("kind", ["empty_path", "na_path", "short_row", "unbalanced_quote"])
def test_damaged_record_is_an_invalid_record_naming_file_and_line(tmp_path, kind, check_images):
    """An empty / N/A path cell, a short row, an unbalanced quote: an invalid_record row, never a crash."""
    build_download(tmp_path, CLEAN[:1], "uid")  # real files, so the good row can be checked
    table = tmp_path / tb.TABLE_FILES[("calc", "train")]
    table.write_text(table.read_text() + damaged_line(kind))
    m = curate_quietly(tmp_path, check_images=check_images).manifest
    assert len(m) == 2
    assert m.iloc[0]["status"] == ("ok" if check_images else "unchecked")
    row = m.iloc[1]
    assert (row["status"], row["reason"]) == ("excluded", "invalid_record")
    assert row["detail"].startswith(f"{table.name} line {row['source_line']}: ")
    assert row["source_line"] == 4  # header, a record with a quoted line break, then this one


@pytest.mark.parametrize("check_images", [True, False])
@pytest.mark.parametrize(
    "where", ["dotdot", "absolute", "etc_passwd", "symlink_out", "dir_link_out"]
)
def test_paths_outside_the_root_are_excluded_unopened(tmp_path, where, check_images, monkeypatch):
    """A table path leaving the root ('..', absolute, /etc/passwd, a symlink out) is outside_root, never opened."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    truth = build_download(root, CLEAN[:1], "uid")
    t = next(iter(truth.values()))
    table = root / tb.TABLE_FILES[("calc", "train")]
    rows = list(csv.reader(open(table, newline="")))
    rec = rows[1]
    outside.mkdir()
    stolen = outside / "full.dcm"
    stolen.write_bytes(t["full"].read_bytes())
    if where == "dotdot":
        rec[11] = "../../outside/full.dcm"
    elif where == "absolute":
        rec[11] = str(stolen)
    elif where == "etc_passwd":
        rec[11] = "/etc/passwd"
    elif where == "symlink_out":
        t["full"].unlink()
        t["full"].symlink_to(stolen)
    else:
        folder = t["full"].parent
        moved = outside / "series"
        folder.rename(moved)
        folder.symlink_to(moved, target_is_directory=True)
    write_table(table, rows[1:])
    opened = []
    real_open = open

    def spy(file, *args, **kwargs):
        """Record every file opened below the outside folder or /etc."""
        if str(file).startswith((str(outside), "/etc")):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spy)
    row = curate_quietly(root, check_images=check_images).manifest.iloc[0]
    monkeypatch.undo()
    assert (row["status"], row["reason"]) == ("excluded", "outside_root")
    assert "data root" in row["detail"]
    assert opened == []


@pytest.mark.parametrize("layout", ["uid", "nbia"])
def test_outside_root_allows_a_linked_cbis_ddsm_folder(tmp_path, layout):
    """ROOT/CBIS-DDSM may be a link to the disk with the images: its files are inside the data root."""
    disk = tmp_path / "disk"
    build_download(disk, CLEAN[:1], layout)
    root = tmp_path / "root"
    root.mkdir()
    (root / "CBIS-DDSM").symlink_to(disk / "CBIS-DDSM", target_is_directory=True)
    for split in ("train",):
        name = tb.TABLE_FILES[("calc", split)]
        (root / name).write_bytes((disk / name).read_bytes())
    row = curate_quietly(root).manifest.iloc[0]
    assert row["status"] == "ok", row["detail"]


@pytest.mark.parametrize("level", ["root", "cbis"])
def test_symlink_loop_is_skipped_and_reported(tmp_path, level):
    """A symlink loop beside the tables or inside CBIS-DDSM/ is skipped with a warning, never a crash or hang."""
    build_download(tmp_path, CLEAN[:1], "uid")
    where = tmp_path if level == "root" else tmp_path / "CBIS-DDSM"
    (where / "loop_a").symlink_to(where / "loop_b")
    (where / "loop_b").symlink_to(where / "loop_a")
    (where / "self").symlink_to(where / "self")
    with (
        pytest.warns(tb.CurationWarning, match="skipped.*loop_a")
        if level == "root"
        else (warnings.catch_warnings())
    ):
        result = cu.curate(tmp_path, progress=False)
    assert list(result.manifest["status"]) == ["ok"]


def test_a_root_that_is_a_symlink_loop_is_a_data_error(tmp_path):
    """ROOT itself a symlink loop: a DataError saying so."""
    (tmp_path / "root").symlink_to(tmp_path / "root")
    with pytest.raises(DataError, match="not a folder.*symbolic links"):
        tb.find_case_tables(tmp_path / "root")


def damage_crop(path: Path, kind: str) -> None:
    """Rewrite a crop DICOM with one fault that the preprocessing cannot use (or a colour label)."""
    ds = pydicom.dcmread(path)
    px = ds.pixel_array
    if kind == "two_frames":
        ds.NumberOfFrames, ds.Rows = 2, px.shape[0] // 2
    elif kind == "three_samples":
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
        ds.PixelData = np.repeat(px, 3).astype(np.uint16).tobytes()
    elif kind == "bits8_holding_16":
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
    elif kind == "nan_slope":
        ds.RescaleSlope, ds.RescaleIntercept = "NaN", "0"
    else:
        ds.PhotometricInterpretation = kind
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path)


@pytest.mark.parametrize("kind", ["two_frames", "three_samples", "bits8_holding_16", "nan_slope"])
def test_curation_rejects_what_preprocessing_rejects(tmp_path, kind):
    """A crop the preprocessing cannot read is excluded by curation with the same check's message."""
    from mcalc.data.images import read_dicom_image

    truth = build_download(tmp_path, CLEAN[:1], "uid")
    crop = next(iter(truth.values()))["crop"]
    damage_crop(crop, kind)
    with pytest.raises(DataError) as err, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_dicom_image(crop)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = curate_quietly(tmp_path).manifest.iloc[0]
    assert (row["status"], row["reason"]) == ("excluded", "unsupported_image")
    assert str(err.value) in row["detail"]


@pytest.mark.parametrize("photometric", ["RGB", "PALETTE COLOR"])
def test_colour_label_with_one_sample_is_read_as_grey_with_a_note(tmp_path, photometric):
    """RGB / PALETTE COLOR with one sample per pixel: kept, and the row's note says it was read as grey."""
    truth = build_download(tmp_path, CLEAN[:1], "uid")
    damage_crop(next(iter(truth.values()))["crop"], photometric)
    row = curate_quietly(tmp_path).manifest.iloc[0]
    assert row["status"] == "ok"
    assert f"photometric interpretation {photometric}" in row["note"]
    assert "read as grey" in row["note"]


def test_tables_without_any_image_stop_with_the_layouts_tried(tmp_path):
    """A root with tables but no image at all is a DataError naming the root and the layouts tried."""
    build_download(tmp_path, CLEAN, "uid")
    import shutil

    shutil.rmtree(tmp_path / "CBIS-DDSM")
    with pytest.raises(DataError, match="no image found under") as err:
        curate_quietly(tmp_path)
    assert str(tmp_path) in str(err.value) and "NBIA" in str(err.value)
    assert len(curate_quietly(tmp_path, check_images=False).manifest) == len(CLEAN)


def test_curation_outputs_are_written_as_a_set(tmp_path, monkeypatch):
    """A failing write of the exclusions leaves the previous manifest, exclusions and swaps untouched."""
    build_download(tmp_path / "dl", CLEAN, "uid")
    result = curate_quietly(tmp_path / "dl")
    paths = cu.curation_paths(tmp_path / "out" / "m.csv")
    for path in paths.values():
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"previous {path.name}\n")
    original = pd.DataFrame.to_csv

    def failing(self, fh=None, *args, **kwargs):
        """Fail while writing the exclusion report."""
        if list(self.columns) == mf.EXCLUSION_COLUMNS:
            raise OSError(28, "No space left on device")
        return original(self, fh, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", failing)
    with pytest.raises(DataError, match="No space left on device"):
        cu.write_curation(result, paths["manifest"])
    monkeypatch.undo()
    for path in paths.values():
        assert path.read_text() == f"previous {path.name}\n"
    assert sorted(p.name for p in paths["manifest"].parent.iterdir()) == sorted(
        p.name for p in paths.values()
    )  # no temporary file left behind
    cu.write_curation(result, paths["manifest"])
    assert len(mf.read_manifest(paths["manifest"])) == len(CLEAN)


def test_curation_outputs_follow_the_umask(tmp_path):
    """Manifest, exclusions and swaps get the permissions of any new file (0666 less the umask)."""
    build_download(tmp_path / "dl", CLEAN[:1], "uid")
    result = curate_quietly(tmp_path / "dl")
    old = os.umask(0o022)
    try:
        paths = cu.write_curation(result, tmp_path / "out" / "m.csv")
    finally:
        os.umask(old)
    for path in paths.values():
        assert (path.stat().st_mode & 0o777) == 0o644, path
