"""Tests of the curation of CBIS-DDSM downloads (mcalc.curation): the real tables and tiny DICOM trees."""

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
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from mcalc import curation as cu
from mcalc.errors import DataError

REPO = Path(__file__).resolve().parents[1]
FULL_SHAPE = (40, 32)
CROP_SHAPE = (10, 8)
HEADER = [
    "patient_id", "breast density", "left or right breast", "image view", "abnormality id", "abnormality type",
    "calc type", "calc distribution", "assessment", "pathology", "subtlety", "image file path",
    "cropped image file path", "ROI mask file path",
]


def shared_tables() -> Path:
    """The real CBIS-DDSM case-description tables beside the repository, or skip."""
    path = REPO.parent / "shared" / "data" / "cbis-ddsm"
    if not (path / cu.TABLE_FILES[("calc", "train")]).is_file():
        pytest.skip(f"the real CBIS-DDSM case-description tables are not at {path}")
    return path


def curate_quietly(root: Path, **kwargs) -> cu.CurationResult:
    """curate() without a progress bar, its exclusion warnings swallowed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cu.CurationWarning)
        return cu.curate(root, progress=False, **kwargs)


# ------------------------------------------------------------------------------- the real tables


@pytest.fixture(scope="module")
def real() -> cu.CurationResult:
    """The real calc tables curated without images."""
    return curate_quietly(shared_tables(), check_images=False)


@pytest.mark.parametrize("split, n, counts, patients, images", [
    ("train", 1546, {"MALIGNANT": 544, "BENIGN": 528, "BENIGN_WITHOUT_CALLBACK": 474}, 602, 1227),
    ("test", 326, {"MALIGNANT": 129, "BENIGN": 130, "BENIGN_WITHOUT_CALLBACK": 67}, 151, 284),
])
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
    raw = (shared_tables() / cu.TABLE_FILES[("calc", "train")]).read_text()
    assert '.dcm\n"' in raw
    assert (m["crop_path"].map(lambda p: Path(p).parts[-4]) == m["roi_id"]).all()


def test_real_density_zero_becomes_na_with_a_note(real):
    """Density 0 (out of range 1-4) of P_01743 in the test table → NA, the row kept and noted."""
    with open(shared_tables() / cu.TABLE_FILES[("calc", "test")], newline="") as fh:
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
    raw = pd.concat([pd.read_csv(shared_tables() / cu.TABLE_FILES[("calc", s)], dtype=str, keep_default_na=False)
                     for s in ("train", "test")])
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
    assert real.manifest["calc_distribution"].isna().sum() == (raw["calc distribution"] == "N/A").sum()


def test_real_bwc_is_almost_assessment_2(real):
    """BENIGN_WITHOUT_CALLBACK vs BI-RADS assessment 2: train 467 of 474, test 67 of 67."""
    m = real.manifest
    figures = {}
    for split in ("train", "test"):
        s = m[m["split"] == split]
        bwc = s["pathology"] == "BENIGN_WITHOUT_CALLBACK"
        figures[split] = (int((bwc & (s["assessment"] == 2)).sum()), int(bwc.sum()))
    assert figures == {"train": (467, 474), "test": (67, 67)}


def test_real_mass_tables_parse():
    """The mass tables (density column 'breast_density', mask path with the newline) parse too."""
    root = shared_tables()
    headers = {k: next(csv.reader(open(root / n, newline=""))) for k, n in cu.TABLE_FILES.items()}
    assert "breast_density" in headers[("mass", "train")] and "breast density" in headers[("calc", "train")]
    result = curate_quietly(root, abnormality="mass", check_images=False)
    m = result.manifest
    assert set(result.tables) == {("mass", "train"), ("mass", "test")}
    assert m["split"].value_counts().to_dict() == {"train": 1318, "test": 378}
    assert m["density"].notna().all() and m["density"].between(1, 4).all()
    assert m["mass_shape"].notna().sum() > 1600 and m["calc_type"].isna().all()
    assert not m["mask_path"].str.contains("\n").any()
    assert (m["abnormality_type"] == "mass").all() and m["roi_id"].str.startswith("Mass-").all()
    assert set(m["status"]) == {"unchecked"}


def test_crlf_and_na_variant_parses_the_same(tmp_path):
    """A copy of a real table with CRLF line ends and 'NA' for missing parses to the same frame."""
    name = cu.TABLE_FILES[("calc", "test")]
    text = (shared_tables() / name).read_text()
    assert "N/A" in text and "\r\n" not in text
    variant = text.replace("N/A", "NA").replace("\n", "\r\n")
    (tmp_path / name).write_bytes(variant.encode())
    original = cu.read_case_table(shared_tables() / name, "test", "calcification")
    copy = cu.read_case_table(tmp_path / name, "test", "calc")
    pd.testing.assert_frame_equal(original, copy)
    missing = original["calc_type"].isna().sum() + original["calc_distribution"].isna().sum()
    assert missing == text.count(",N/A,") > 0


# ----------------------------------------------------------------------------- table edge cases


def write_table(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    """A case-description table with the official quoting."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def table_row(patient="P_00001", side="LEFT", view="CC", abn=1, pathology="BENIGN", density="2",
              calc_type="PUNCTATE", split="train") -> list[str]:
    """One calc table record with UID-looking paths."""
    folder = f"Calc-{cu.SPLIT_PREFIX[split]}_{patient}_{side}_{view}"
    return [patient, density, side, view, str(abn), "calcification", calc_type, "CLUSTERED", "3", pathology, "3",
            f"{folder}/1.2.3/1.2.4/000000.dcm", f"{folder}_{abn}/1.2.5/1.2.6/000001.dcm\n",
            f"{folder}_{abn}/1.2.5/1.2.6/000000.dcm"]


def test_missing_columns_is_a_data_error(tmp_path):
    """A table without required columns → DataError naming them and the file."""
    drop = {"pathology", "ROI mask file path"}
    header = [h for h in HEADER if h not in drop]
    rows = [[v for h, v in zip(HEADER, table_row()) if h not in drop]]
    path = write_table(tmp_path / cu.TABLE_FILES[("calc", "train")], rows, header)
    with pytest.raises(DataError, match="pathology") as err:
        cu.read_case_table(path, "train", "calc")
    assert "ROI mask file path" in str(err.value) and path.name in str(err.value)
    with pytest.raises(DataError, match="missing required column"):
        cu.curate(tmp_path, check_images=False, progress=False)


def test_table_rows_marked_not_dropped(tmp_path):
    """Unknown pathology, a duplicate ROI, a malformed record and out-of-range values are kept and marked."""
    rows = [
        table_row("P_00001"),
        table_row("P_00002", pathology="UNPROVEN"),
        table_row("P_00001"),  # the same ROI again
        table_row("P_00003", density="7", calc_type=" lucent_centered-PUNCTATE-LUCENT_CENTER "),
        table_row("P_00004")[:-3],  # a short record
        table_row("P_00005", view="XCC"),
    ]
    path = write_table(tmp_path / "t.csv", rows)
    df = cu.read_case_table(path, "train", "calc")
    assert len(df) == len(rows)
    assert list(df["source_line"]) == [2, 4, 6, 8, 10, 11]  # quoted newlines make records span two lines
    assert list(df["status"]) == ["ok", "excluded", "excluded", "ok", "excluded", "excluded"]
    assert list(df["reason"]) == ["", "unknown_pathology", "duplicate", "", "invalid_record", "invalid_record"]
    assert "line 2" in df.loc[2, "detail"] and "UNPROVEN" in df.loc[1, "detail"]
    assert "fields" in df.loc[4, "detail"] and "XCC" in df.loc[5, "detail"]
    assert pd.isna(df.loc[3, "density"]) and "density 7" in df.loc[3, "note"]
    assert df.loc[3, "calc_type"] == "LUCENT_CENTER-PUNCTATE"
    assert pd.isna(df.loc[1, "label"]) and df.loc[0, "label"] == cu.CLASSES.index("BENIGN")
    assert df.loc[0, "roi_id"] == "Calc-Training_P_00001_LEFT_CC_1" and df.loc[0, "image_id"] == "P_00001_LEFT_CC"


def test_find_case_tables(tmp_path):
    """Tables found at the root or below it, only those present; none → DataError."""
    with pytest.raises(DataError, match="calc_case_description"):
        cu.find_case_tables(tmp_path)
    (tmp_path / "tables" / "csv").mkdir(parents=True)
    write_table(tmp_path / "tables" / "csv" / cu.TABLE_FILES[("calc", "test")], [table_row(split="test")])
    assert cu.find_case_tables(tmp_path) == {("calc", "test"): tmp_path / "tables" / "csv" /
                                             cu.TABLE_FILES[("calc", "test")]}
    write_table(tmp_path / cu.TABLE_FILES[("calc", "train")], [table_row()])
    assert set(cu.find_case_tables(tmp_path, "calcification")) == {("calc", "train"), ("calc", "test")}
    with pytest.raises(DataError, match="mass"):
        cu.find_case_tables(tmp_path, "mass")
    with pytest.raises(ValueError):
        cu.find_case_tables(tmp_path, "cyst")


# ------------------------------------------------------------------------------ tiny DICOM trees


def write_dicom(path: Path, pixels: np.ndarray) -> Path:
    """Write an uncompressed MONOCHROME2 DICOM file (8 bits for uint8 pixels, 16 otherwise)."""
    bits = 8 if pixels.dtype == np.uint8 else 16
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit, ds.PixelRepresentation = bits - 1, 0
    ds.PixelData = np.ascontiguousarray(pixels.astype(np.uint8 if bits == 8 else np.uint16)).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def pixels(kind: str, rng: np.random.Generator, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Full image / crop (textured uint16) or mask (binary uint8) pixels."""
    if kind == "mask":
        mask = np.zeros(shape or FULL_SHAPE, np.uint8)
        mask[5:15, 6:14] = 255
        return mask
    return rng.integers(200, 4000, shape or (FULL_SHAPE if kind == "full" else CROP_SHAPE)).astype(np.uint16)


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
    "missing_crop": "missing_file", "truncated_mask": "corrupt_dicom", "html_crop": "not_dicom",
    "small_mask": "mask_size_mismatch", "empty_crop": "empty_crop", "duplicate": "duplicate",
    "missing_full": "missing_file", "truncated_full_header": "corrupt_dicom",
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
        image_folder = f"Calc-{cu.SPLIT_PREFIX[split]}_{patient}_{side}_{view}"
        roi_folder = f"{image_folder}_{abn}"
        if image_folder not in fulls:
            if layout == "uid":
                full_csv = f"{image_folder}/{uid()}/{uid()}/000000.dcm"
                full_disk = root / "CBIS-DDSM" / full_csv
            else:
                full_csv = f"{image_folder}/{uid()}/{uid()}/000000.dcm"
                full_disk = (root / "CBIS-DDSM" / image_folder / "08-07-2016-DDSM-NA-12345" /
                             "1.000000-full mammogram images-67890" / "1-1.dcm")
            write_dicom(full_disk, pixels("full", rng))
            fulls[image_folder] = (full_csv, full_disk)
        full_csv, full_disk = fulls[image_folder]
        series = f"{roi_folder}/{uid()}/{uid()}"
        crop_csv, mask_csv = f"{series}/000001.dcm", f"{series}/000000.dcm"
        if layout == "uid":
            crop_disk, mask_disk = root / "CBIS-DDSM" / crop_csv, root / "CBIS-DDSM" / mask_csv
        else:
            folder = root / "CBIS-DDSM" / roi_folder / "08-07-2016-DDSM-NA-23456" / "1.000000-ROI mask images-78901"
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
        record = [patient, "3", side, view, str(abn), "calcification", "PUNCTATE-PLEOMORPHIC", "N/A", "4", pathology,
                  "3", full_csv, crop_csv + "\n", mask_csv]
        rows[split].append(record)
        if fault == "duplicate":
            rows[split].append(list(record))
        truth[roi_folder] = {"full": full_disk, "crop": crop_disk, "mask": mask_disk, "fault": fault,
                             "pathology": pathology}
    for split, records in rows.items():
        if records:
            write_table(root / cu.TABLE_FILES[("calc", split)], records)
    return truth


def n_table_rows(root: Path) -> int:
    """Records of all calc tables under root (csv module)."""
    total = 0
    for split in ("train", "test"):
        path = root / cu.TABLE_FILES[("calc", split)]
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
    """Missing, truncated, non-DICOM, wrong-size, empty, unknown, duplicate: each excluded and reported."""
    truth = build_download(tmp_path, FAULTY, layout)
    with pytest.warns(cu.CurationWarning) as record:
        result = cu.curate(tmp_path, progress=False)
    m = result.manifest
    assert len(m) == n_table_rows(tmp_path) == len(FAULTY) + 1  # the duplicate row is a row too
    assert list(m.columns) == cu.MANIFEST_COLUMNS
    by_roi = m.groupby("roi_id")
    for roi, t in truth.items():
        rows = by_roi.get_group(roi)
        if t["fault"] is None and t["pathology"] in cu.CLASSES:
            assert list(rows["status"]) == ["ok"]
        elif t["pathology"] not in cu.CLASSES:
            assert list(rows["reason"]) == ["unknown_pathology"]
        elif t["fault"] == "duplicate":
            assert list(rows["status"]) == ["ok", "excluded"] and rows["reason"].iloc[1] == "duplicate"
        else:
            assert list(rows["reason"]) == [EXPECTED_REASON[t["fault"]]], roi
    excluded = m[m["status"] == "excluded"]
    assert len(result.exclusions) == len(excluded)
    assert list(result.exclusions.columns) == cu.EXCLUSION_COLUMNS
    assert (result.exclusions["detail"] != "").all()
    # the detail names the file at fault
    detail = result.exclusions.set_index("roi_id")["detail"]
    html = next(roi for roi, t in truth.items() if t["fault"] == "html_crop")
    assert str(truth[html]["crop"]) in detail[html]
    small = next(roi for roi, t in truth.items() if t["fault"] == "small_mask")
    assert "20x16" in detail[small] and f"{FULL_SHAPE[0]}x{FULL_SHAPE[1]}" in detail[small]
    # one warning per kind of exclusion, with its count
    messages = [str(w.message) for w in record if issubclass(w.category, cu.CurationWarning)]
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
        assert not os.path.isabs(row[col]) and row[col].startswith("dl") and Path(row[col]).is_file()


def test_index_dicom_tree(tmp_path):
    """The index maps top series folders (full image and ROI) to the .dcm files beneath them."""
    truth = build_download(tmp_path, CLEAN[:2], "nbia")
    (tmp_path / "CBIS-DDSM" / "notes.txt").write_text("not a series")
    index = cu.index_dicom_tree(tmp_path)
    assert set(index) == {"Calc-Training_P_00005_RIGHT_CC", "Calc-Training_P_00005_RIGHT_CC_1",
                          "Calc-Training_P_00005_RIGHT_CC_2"}
    assert index["Calc-Training_P_00005_RIGHT_CC"] == [truth["Calc-Training_P_00005_RIGHT_CC_1"]["full"]]
    assert sorted(index["Calc-Training_P_00005_RIGHT_CC_2"]) == sorted(
        [truth["Calc-Training_P_00005_RIGHT_CC_2"]["crop"], truth["Calc-Training_P_00005_RIGHT_CC_2"]["mask"]])


def test_write_and_read_manifest_round_trip(tmp_path):
    """write_curation writes three files atomically; read_manifest restores the dtypes."""
    build_download(tmp_path / "dl", FAULTY, "uid")
    result = curate_quietly(tmp_path / "dl")
    paths = cu.write_curation(result, tmp_path / "out" / "manifest.csv")
    assert paths == {"manifest": tmp_path / "out" / "manifest.csv",
                     "exclusions": tmp_path / "out" / "manifest.exclusions.csv",
                     "swaps": tmp_path / "out" / "manifest.swaps.csv"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths.values())
    back = cu.read_manifest(paths["manifest"])
    pd.testing.assert_frame_equal(back, result.manifest)
    assert back["label"].dtype == "Int64" and back["crop_mask_swapped"].dtype == bool
    ex = pd.read_csv(paths["exclusions"], dtype=str, keep_default_na=False)
    assert len(ex) == len(result.exclusions) > 0
    with pytest.raises(DataError, match="missing column"):
        pd.DataFrame({"roi_id": ["x"]}).to_csv(tmp_path / "bad.csv", index=False)
        cu.read_manifest(tmp_path / "bad.csv")
