"""Tests of the offline CBIS-DDSM-shaped phantom (mcalc.data.phantom) and its calibration."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.errors import InvalidDicomError
from scipy import ndimage

from mcalc import study
from mcalc.data import phantom as ph
from mcalc.data.calibration import derive_calibration, normalise_term, shipped_tables
from mcalc.data.curation import curate
from mcalc.data.phantom import breast, generate, lesions, writing
from mcalc.errors import DataError

SCALE = 0.03


def read_table(root: Path, split: str) -> pd.DataFrame:
    """One phantom case-description table as text."""
    return pd.read_csv(root / ph.CSV_NAMES[split], dtype=str, keep_default_na=False)


def all_rows(root: Path) -> pd.DataFrame:
    """Both tables with a split column."""
    return pd.concat([read_table(root, s).assign(split=s) for s in study.SPLITS], ignore_index=True)


def roi_id(row: pd.Series) -> str:
    """ROI id from the top folder of the crop path."""
    return row["cropped image file path"].split("/")[0]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, ph.PhantomSummary, ph.PhantomConfig]:
    """A small UID-layout phantom rendered in this process."""
    out = tmp_path_factory.mktemp("phantom") / "a"
    config = ph.PhantomConfig(scale=SCALE, seed=0, workers=1)
    return out, ph.generate_phantom(out, config, progress=False), config


@pytest.fixture(scope="module")
def quirks(small) -> pd.DataFrame:
    """quirks.csv of the small phantom."""
    return pd.read_csv(small[0] / "quirks.csv", dtype=str, keep_default_na=False)


# ------------------------------------------------------------------ calibration


def test_calibration_is_unchanged_by_deriving_it_at_run_time():
    """The calibration derived from the shipped tables is byte for byte what the retired packaged files held.

    Until the real tables shipped with mcalc, the same figures were written once to
    ``mcalc/data/calc_calibration.csv`` and ``calc_structure.json``; these are those files' SHA-256, so
    a change of the derivation (and with it of every phantom) cannot pass unnoticed. The per-class
    figures added since (``by_pathology``) are left out of the old file's hash and checked by
    :func:`test_phantom_clusters_per_class_like_the_real_tables`.
    """
    table, info = derive_calibration()
    csv_text = table.to_csv(index=False, lineterminator="\n")
    retired = copy.deepcopy(info)
    for split in retired["splits"].values():
        del split["by_pathology"]
    json_text = json.dumps(retired, indent=2, sort_keys=True) + "\n"
    assert hashlib.sha256(csv_text.encode()).hexdigest() == (
        "f48b2c4b901c73748c0a50e221b397e4b33f2fd230ac796d2cb7edbd8a66fef2"
    )
    assert hashlib.sha256(json_text.encode()).hexdigest() == (
        "c03872eaec6cfd967e61ec25d81593cbb6618a7f6f90ceaa800b85e54f346367"
    )
    pd.testing.assert_frame_equal(ph.load_calibration(), table)
    assert ph.load_structure() == info


def test_calibration_reproduces_real_totals():
    """Counts per split x pathology are the real table sizes; spelling is normalised."""
    cal = ph.load_calibration()
    totals = cal.groupby(["split", "pathology"])["count"].sum()
    assert totals["train"].to_dict() == {
        "BENIGN": 528,
        "BENIGN_WITHOUT_CALLBACK": 474,
        "MALIGNANT": 544,
    }
    assert totals["test"].to_dict() == {
        "BENIGN": 130,
        "BENIGN_WITHOUT_CALLBACK": 67,
        "MALIGNANT": 129,
    }
    assert not cal["calc_type"].str.contains("LUCENT_CENTERED").any()
    assert "PLEOMORPHIC-PLEOMORPHIC" not in set(cal["calc_type"])
    stats = ph.load_structure()["splits"]
    assert (stats["train"]["patients"], stats["test"]["patients"]) == (602, 151)


def test_normalise_term():
    """The calibration folds synonyms and repeated components, keeping the order of the rest."""
    assert normalise_term("LUCENT_CENTERED") == "LUCENT_CENTER"
    assert normalise_term("PLEOMORPHIC-PLEOMORPHIC") == "PLEOMORPHIC"
    assert normalise_term("PUNCTATE-PLEOMORPHIC") == "PUNCTATE-PLEOMORPHIC"
    assert normalise_term("") == "N/A"


# ------------------------------------------------------------------ sizes and structure


def test_counts_follow_scale(small):
    """ROIs per split x class are round(scale x real) (at least 1) in the summary and the CSVs."""
    out, summary, config = small
    real = ph.load_calibration().groupby(["split", "pathology"])["count"].sum()
    rows = all_rows(out)
    for split in study.SPLITS:
        got = rows[rows["split"] == split]["pathology"].value_counts()
        for cls in study.CLASSES:
            expected = max(1, round(SCALE * int(real[(split, cls)])))
            assert got.get(cls, 0) == expected == summary.counts.loc[split, cls]
    assert summary.n_rois == len(rows)
    for split in study.SPLITS:
        assert summary.n_patients[split] == rows[rows["split"] == split]["patient_id"].nunique()
        real_patients = ph.load_structure()["splits"][split]["patients"]
        assert abs(summary.n_patients[split] - SCALE * real_patients) <= max(
            3, 0.25 * SCALE * real_patients
        )


@pytest.mark.parametrize("scale", [0.02, 0.005])
def test_tiny_scales_keep_every_class(scale):
    """Even tiny phantoms have all three classes in both splits."""
    patients = ph.plan_phantom(ph.PhantomConfig(scale=scale))
    found = {
        (p["split"], les["pathology"])
        for p in patients
        for br in p["breasts"]
        for les in br["lesions"]
    }
    assert found == {(s, c) for s in study.SPLITS for c in study.CLASSES}


def test_full_scale_plan_matches_real_structure():
    """scale 1 plans the real ROI counts with about the real numbers of patients and images."""
    patients = ph.plan_phantom(ph.PhantomConfig(scale=1.0, seed=0))
    stats = ph.load_structure()["splits"]
    for split in study.SPLITS:
        sub = [p for p in patients if p["split"] == split]
        images = [img for p in sub for img in p["images"]]
        assert sum(len(img["rois"]) for img in images) == stats[split]["rois"]
        assert abs(len(sub) - stats[split]["patients"]) <= 0.06 * stats[split]["patients"]
        assert abs(len(images) - stats[split]["images"]) <= 0.08 * stats[split]["images"]
        assert max(len(img["rois"]) for img in images) >= 3  # several abnormalities per image


@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_phantom_clusters_per_class_like_the_real_tables(tmp_path, scale):
    """Patients, lesions and ROIs per split x class, counted by the same code on the phantom's tables
    and on the real ones: equal at scale 1, scaled within a quarter (and 3 patients) below it."""
    patients = ph.plan_phantom(ph.PhantomConfig(scale=scale, seed=4))
    tables = {}
    for split in study.SPLITS:
        tables[split] = tmp_path / ph.CSV_NAMES[split]
        writing.write_csv(tables[split], writing.csv_rows(patients, split))
    got = derive_calibration(tables)[1]["splits"]
    real = ph.load_structure()["splits"]
    assert real["test"]["by_pathology"]["BENIGN_WITHOUT_CALLBACK"]["patients"] == 17
    for split in study.SPLITS:
        for cls in study.CLASSES:
            g, r = got[split]["by_pathology"][cls], real[split]["by_pathology"][cls]
            assert g["rois"] == max(1, round(scale * r["rois"]))
            for unit in ("patients", "lesions"):
                if scale == 1.0:
                    assert g[unit] == r[unit], (split, cls, unit)
                else:
                    assert abs(g[unit] - scale * r[unit]) <= max(3, 0.25 * scale * r[unit])
            if scale == 1.0:
                assert g["patient_layouts"] == r["patient_layouts"]


def test_patients_disjoint_between_splits(small):
    """No patient appears in both splits."""
    rows = all_rows(small[0])
    train = set(rows.loc[rows["split"] == "train", "patient_id"])
    test = set(rows.loc[rows["split"] == "test", "patient_id"])
    assert train and test and not train & test


def test_cc_mlo_siblings_present(small):
    """Lesions seen in both views: same breast and abnormality id, identical descriptors, CC and MLO."""
    rows = all_rows(small[0])
    key = [
        "patient_id",
        "left or right breast",
        "abnormality id",
        "calc type",
        "calc distribution",
        "pathology",
        "assessment",
        "subtlety",
    ]
    views = rows.groupby(key)["image view"].agg(lambda v: "+".join(sorted(v)))
    pairs = int((views == "CC+MLO").sum())
    assert pairs >= 0.25 * len(rows)


def test_crop_and_siblings_look_alike():
    """The same lesion in both views is the same particle set, moved but not reshaped."""
    desc = {
        "calc_type": "PLEOMORPHIC",
        "calc_distribution": "CLUSTERED",
        "subtlety": 4,
        "density": 2,
    }
    cc = ph.lesion_particles(desc, np.random.default_rng(5), "CC")
    mlo = lesions.other_view(
        ph.lesion_particles(desc, np.random.default_rng(5), "MLO"), np.random.default_rng(6)
    )
    assert cc.shape == mlo.shape
    np.testing.assert_allclose(cc[:, lesions._R], mlo[:, lesions._R])
    assert not np.allclose(cc[:, :4], mlo[:, :4])


# ------------------------------------------------------------------ tables


def test_tables_have_the_official_schema(small):
    """Official header, quoted trailing newline on every crop path, N/A for missing values."""
    out = small[0]
    for split in study.SPLITS:
        text = (out / ph.CSV_NAMES[split]).read_text()
        header = next(csv.reader(io.StringIO(text)))
        assert header == ph.CSV_HEADER
        table = read_table(out, split)
        assert table["cropped image file path"].str.endswith(".dcm\n").all()
        assert table["ROI mask file path"].str.endswith("/000000.dcm").all()
        assert table["image file path"].str.endswith("/000000.dcm").all()
        assert (table["abnormality type"] == "calcification").all()
        assert not (table == "").any().any()
        prefix = ph.SPLIT_PREFIX[split] + "_"
        assert table["image file path"].str.startswith(prefix).all()
        assert "\r" not in text


def test_header_is_the_real_one():
    """The header equals the real calc table's header byte for byte (the shipped official table)."""
    with open(shipped_tables()["train"], newline="") as fh:
        assert next(csv.reader(fh)) == ph.CSV_HEADER


# ------------------------------------------------------------------ DICOM files


def test_every_file_is_a_valid_dicom_except_quirks(small, quirks):
    """Right modality, bit depth, spacing and shapes; binary full-size masks; faults only where recorded."""
    out, _, config = small
    damaged = set(quirks["file"])
    rows = all_rows(out)
    checked = 0
    for _, row in rows.iterrows():
        full_rel = f"{ph.DICOM_ROOT}/{row['image file path']}"
        crop_rel = f"{ph.DICOM_ROOT}/{row['cropped image file path'].strip()}"
        mask_rel = f"{ph.DICOM_ROOT}/{row['ROI mask file path']}"
        if {full_rel, crop_rel, mask_rel} & damaged:
            continue
        full, crop, mask = (pydicom.dcmread(out / rel) for rel in (full_rel, crop_rel, mask_rel))
        for ds, bits, spacing in (
            (full, 16, config.full_pixel_spacing_mm),
            (crop, 16, config.crop_pixel_spacing_mm),
            (mask, 8, config.full_pixel_spacing_mm),
        ):
            assert ds.Modality == "MG" and ds.PhotometricInterpretation == "MONOCHROME2"
            assert ds.BitsAllocated == bits and ds.BitsStored == bits
            assert [float(v) for v in ds.PixelSpacing] == pytest.approx([spacing, spacing])
        assert full.PatientID == row["image file path"].split("/")[0]
        assert crop.PatientID == mask.PatientID == roi_id(row)
        m = mask.pixel_array
        assert m.shape == full.pixel_array.shape == config.full_shape
        assert set(np.unique(m)) == {0, 255}
        c = crop.pixel_array
        assert 80 <= max(c.shape) <= 720
        checked += 1
    assert checked >= len(rows) - 3 * len(damaged) and checked > 0


def test_crop_matches_the_full_image_under_the_mask(small, quirks):
    """The crop is the mask's bounding box at fine resolution: block-averaged it equals the full image there."""
    out, _, config = small
    damaged = set(quirks["file"])
    k = config.factor
    correlations = []
    off = 0
    for _, row in all_rows(out).iterrows():
        rels = [
            f"{ph.DICOM_ROOT}/{p}"
            for p in (
                row["image file path"],
                row["cropped image file path"].strip(),
                row["ROI mask file path"],
            )
        ]
        if set(rels) & damaged:
            continue
        full, crop, mask = (pydicom.dcmread(out / rel).pixel_array.astype(float) for rel in rels)
        rows_, cols_ = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        r0, r1, c0, c1 = rows_[0], rows_[-1] + 1, cols_[0], cols_[-1] + 1
        assert crop.shape == ((r1 - r0) * k, (c1 - c0) * k)
        region = full[r0:r1, c0:c1]
        coarse = crop.reshape(r1 - r0, k, c1 - c0, k).mean(axis=(1, 3))
        residual = coarse - region  # what is left: the full image's own quantum noise
        # a crowded breast (BWC patients hold up to a dozen lesions a breast, as in the real tables)
        # may get lesions placed over one another; a few such ROIs are allowed, not more
        off += not (abs(residual.mean()) < 0.002 * 65535 and residual.std() < 0.008 * 65535)
        correlations.append(np.corrcoef(coarse.ravel(), region.ravel())[0, 1])
        if int(row["subtlety"]) >= 4:  # the lesion's brightest detail lies inside the mask
            tophat = ndimage.white_tophat(crop, size=2 * k + 1)
            i, j = np.unravel_index(np.argmax(tophat), tophat.shape)
            assert mask[r0 + i // k, c0 + j // k] > 0
    assert len(correlations) > 10 and np.median(correlations) > 0.9
    assert off <= max(1, 0.05 * len(correlations)), off


def test_quirks_are_what_is_on_disk(small, quirks):
    """Each recorded quirk is present: swapped crop/mask, truncated, non-DICOM, missing files."""
    out, summary, config = small
    assert set(quirks["kind"]) == set(ph.QUIRK_KINDS)
    assert list(quirks.columns) == ph.QUIRK_COLUMNS
    pd.testing.assert_frame_equal(quirks.astype(str), summary.quirks.astype(str))
    ids = set(all_rows(out).apply(roi_id, axis=1))
    for _, q in quirks.iterrows():
        assert q["roi_id"] in ids
        path = out / q["file"]
        if q["kind"] == "missing_file":
            assert not path.exists()
        elif q["kind"] == "not_dicom":
            with pytest.raises(InvalidDicomError):
                pydicom.dcmread(path)
        elif q["kind"] == "truncated_dicom":
            with pytest.raises(Exception):  # noqa: B017 - any pydicom/numpy read error
                pydicom.dcmread(path).pixel_array  # noqa: B018
        else:
            stored_as_crop = pydicom.dcmread(path).pixel_array
            stored_as_mask = pydicom.dcmread(path.with_name("000000.dcm")).pixel_array
            assert stored_as_crop.shape == config.full_shape and set(np.unique(stored_as_crop)) == {
                0,
                255,
            }
            assert stored_as_mask.dtype == np.uint16 and stored_as_mask.shape != config.full_shape
    present = {p.relative_to(out).as_posix() for p in (out / ph.DICOM_ROOT).rglob("*.dcm")}
    expected = set()
    for _, row in all_rows(out).iterrows():
        for col in ("image file path", "cropped image file path", "ROI mask file path"):
            expected.add(f"{ph.DICOM_ROOT}/{row[col].strip()}")
    assert present == expected - set(quirks.loc[quirks["kind"] == "missing_file", "file"])


def test_quirk_count_follows_fraction():
    """At least one quirk of each kind from 20 ROIs on, about the fraction above that, none when disabled."""
    assert writing._quirk_kinds(19, 0.01) == []
    assert sorted(set(writing._quirk_kinds(20, 0.01))) == sorted(ph.QUIRK_KINDS)
    assert len(writing._quirk_kinds(1872, 0.01)) == 19
    assert writing._quirk_kinds(1872, 0.0) == []


# ------------------------------------------------------------------ determinism, folders, layouts


@pytest.mark.slow
def test_same_seed_same_bytes_across_workers(small, tmp_path):
    """Same seed: identical tables, quirks and DICOM bytes, whether rendered in 1 or 2 processes."""
    out_a, _, config = small
    out_b = tmp_path / "b"
    ph.generate_phantom(out_b, ph.PhantomConfig(scale=SCALE, seed=0, workers=2), progress=False)
    for name in (*ph.CSV_NAMES.values(), "quirks.csv"):
        assert (out_a / name).read_bytes() == (out_b / name).read_bytes()
    files = sorted(p.relative_to(out_a) for p in (out_a / ph.DICOM_ROOT).rglob("*.dcm"))
    assert files == sorted(p.relative_to(out_b) for p in (out_b / ph.DICOM_ROOT).rglob("*.dcm"))
    for rel in files:
        assert (out_a / rel).read_bytes() == (out_b / rel).read_bytes(), rel


def test_different_seed_differs(small):
    """Another seed gives other patients and descriptors."""
    out_a = small[0]
    plan = ph.plan_phantom(ph.PhantomConfig(scale=SCALE, seed=1))
    ids_b = {p["patient_id"] for p in plan}
    assert ids_b != set(all_rows(out_a)["patient_id"])


def test_render_is_deterministic_and_seed_dependent():
    """render_roi: same rng seed -> same pixels; another seed -> other pixels."""
    desc = {"calc_type": "PUNCTATE", "calc_distribution": "CLUSTERED", "subtlety": 3, "density": 3}
    a = ph.render_roi(desc, np.random.default_rng(1))
    b = ph.render_roi(desc, np.random.default_rng(1))
    c = ph.render_roi(desc, np.random.default_rng(2))
    assert a.dtype == np.uint16 and np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_refuses_foreign_folder_and_regenerates_a_phantom(tmp_path):
    """A non-empty folder without phantom.json is refused; a previous phantom is replaced cleanly."""
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="phantom.json"):
        ph.generate_phantom(foreign, ph.PhantomConfig(scale=0.005, workers=1), progress=False)
    assert (foreign / "notes.txt").read_text() == "mine"
    out = tmp_path / "ph"
    ph.generate_phantom(out, ph.PhantomConfig(scale=0.005, seed=1, workers=1), progress=False)
    first = set(all_rows(out)["patient_id"])
    ph.generate_phantom(out, ph.PhantomConfig(scale=0.005, seed=2, workers=1), progress=False)
    second = all_rows(out)
    assert set(second["patient_id"]) != first
    ids = {p.name for p in (out / ph.DICOM_ROOT).iterdir()}
    expected = set(second["image file path"].str.split("/").str[0]) | set(
        second.apply(roi_id, axis=1)
    )
    assert ids == expected  # nothing left over from the first phantom
    meta = json.loads((out / "phantom.json").read_text())
    assert (
        meta["complete"] and meta["config"]["seed"] == 2 and meta["version"] == ph.PHANTOM_VERSION
    )


def test_nbia_layout(tmp_path):
    """The NBIA layout: descriptive folders under each CSV top folder, 1-1.dcm / 1-2.dcm."""
    out = tmp_path / "nbia"
    config = ph.PhantomConfig(scale=0.01, seed=4, layout="nbia", workers=1, quirk_fraction=0.0)
    ph.generate_phantom(out, config, progress=False)
    rows = all_rows(out)
    for _, row in rows.iterrows():
        full_top = row["image file path"].split("/")[0]
        fulls = list(
            (out / ph.DICOM_ROOT / full_top).glob(
                "*-DDSM-NA-*/1.000000-full mammogram images-*/1-1.dcm"
            )
        )
        assert len(fulls) == 1
        roi_files = sorted(
            (out / ph.DICOM_ROOT / roi_id(row)).glob("*-DDSM-NA-*/1.000000-ROI mask images-*/*.dcm")
        )
        assert [p.name for p in roi_files] == ["1-1.dcm", "1-2.dcm"]
        shapes = [pydicom.dcmread(p).pixel_array.shape for p in roi_files]
        assert shapes[0] == config.full_shape and shapes[1] != config.full_shape


def test_config_is_validated():
    """Bad settings are refused with a message."""
    with pytest.raises(ValueError, match="layout"):
        ph.PhantomConfig(layout="flat")
    with pytest.raises(ValueError, match="multiple"):
        ph.PhantomConfig(full_pixel_spacing_mm=0.4, crop_pixel_spacing_mm=0.07)
    with pytest.raises(ValueError, match="scale"):
        ph.PhantomConfig(scale=0)


# ------------------------------------------------------------------ pixels depend on descriptors only


def bright_pixels(img: np.ndarray) -> int:
    """Pixels of small bright detail (white top-hat) above a fixed level."""
    tophat = ndimage.white_tophat(img.astype(float), size=31)
    return int((tophat > 0.04 * 65535).sum())


def test_parenchyma_brightens_with_density():
    """Denser breasts are brighter on average (more fibroglandular tissue)."""
    means = [
        float(
            np.mean(
                [ph.parenchyma((128, 128), d, np.random.default_rng(s)).mean() for s in range(8)]
            )
        )
        for d in (1, 2, 3, 4)
    ]
    assert means == sorted(means) and means[3] - means[0] > 0.1
    noise = breast.power_law_noise((256, 256), 3.0, np.random.default_rng(0))
    spec = np.abs(np.fft.fft2(noise)) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(256), np.fft.fftfreq(256), indexing="ij"))
    low, high = spec[(f > 0.02) & (f < 0.04)].mean(), spec[(f > 0.16) & (f < 0.32)].mean()
    slope = np.log(high / low) / np.log(0.24 / 0.03)
    assert -3.5 < slope < -2.5  # power ~ 1/f^3


def test_contrast_grows_with_subtlety():
    """More bright calcification pixels at higher subtlety, the same lesion geometry otherwise."""
    base = {"calc_type": "PLEOMORPHIC", "calc_distribution": "CLUSTERED", "density": 2}
    counts = {
        s: sum(
            bright_pixels(ph.render_roi({**base, "subtlety": s}, np.random.default_rng(seed)))
            for seed in range(4)
        )
        for s in (1, 3, 5)
    }
    assert counts[1] < counts[3] < counts[5]


def lesion_area(kind: str, seed: int) -> int:
    """Pixels the calcifications of one rendered ROI cover: subtlety 5 minus subtlety 1, same seed and background."""
    desc = {"calc_type": kind, "calc_distribution": "CLUSTERED", "density": 2}
    strong = ph.render_roi({**desc, "subtlety": 5}, np.random.default_rng(seed)).astype(float)
    faint = ph.render_roi({**desc, "subtlety": 1}, np.random.default_rng(seed)).astype(float)
    return int(((strong - faint) > 0.02 * 65535).sum())


def test_calc_type_changes_the_pixels():
    """Calc types differ in what they draw: coarse > round > punctate in calcified area."""
    area = {
        kind: sum(lesion_area(kind, s) for s in range(4))
        for kind in ("PUNCTATE", "ROUND_AND_REGULAR", "COARSE")
    }
    assert area["COARSE"] > 2 * area["ROUND_AND_REGULAR"] > 0
    assert area["ROUND_AND_REGULAR"] > 2 * area["PUNCTATE"] > 0


def test_pathology_never_reaches_the_pixels():
    """Identical descriptors and seeds, different pathology and assessment: identical pixels."""
    desc = {
        "calc_type": "AMORPHOUS-PLEOMORPHIC",
        "calc_distribution": "SEGMENTAL",
        "subtlety": 3,
        "density": 4,
    }
    a = ph.render_roi({**desc, "pathology": "MALIGNANT", "assessment": 5}, np.random.default_rng(9))
    b = ph.render_roi(
        {**desc, "pathology": "BENIGN_WITHOUT_CALLBACK", "assessment": 2}, np.random.default_rng(9)
    )
    assert np.array_equal(a, b)
    config = ph.PhantomConfig(scale=SCALE, seed=0)
    patient = next(p for p in ph.plan_phantom(config) if len(p["images"]) >= 2)
    other = copy.deepcopy(patient)
    for br in other["breasts"]:
        for les in br["lesions"]:
            les["pathology"] = "MALIGNANT" if les["pathology"] != "MALIGNANT" else "BENIGN"
            les["assessment"] = 2 if les["assessment"] != 2 else 5
    files_a, files_b = ph.render_patient(patient, config), ph.render_patient(other, config)
    assert files_a.keys() == files_b.keys()
    for key in files_a:
        assert np.array_equal(files_a[key][0], files_b[key][0])


def test_unknown_density_and_bad_subtlety():
    """Density outside 1-4 renders as an average breast; subtlety outside 1-5 is a DataError."""
    img = ph.parenchyma((64, 64), 0, np.random.default_rng(0))
    assert img.shape == (64, 64) and 0 < img.mean() < 1
    with pytest.raises(DataError, match="subtlety"):
        ph.render_roi(
            {
                "calc_type": "PUNCTATE",
                "calc_distribution": "CLUSTERED",
                "subtlety": 7,
                "density": 2,
            },
            np.random.default_rng(0),
        )


# ------------------------------------------------------------------ read back by the curation


def test_curation_reads_the_phantom_like_a_download(small, quirks):
    """Curating a phantom: every CSV row is ok or excluded; damaged files excluded, swaps corrected, as recorded."""
    out = small[0]
    result = curate(out, progress=False)
    manifest = result.manifest
    rows = all_rows(out)
    assert len(manifest) == len(rows)
    ok = manifest[manifest["status"] == "ok"]
    excluded = manifest[manifest["status"] != "ok"]
    assert len(ok) + len(excluded) == len(rows)
    assert set(excluded["roi_id"]) == set(result.exclusions["roi_id"])
    damaged = set(quirks.loc[quirks["kind"] != "crop_mask_swapped", "roi_id"])
    swapped = set(quirks.loc[quirks["kind"] == "crop_mask_swapped", "roi_id"])
    assert set(excluded["roi_id"]) == damaged
    assert swapped <= set(ok["roi_id"])
    assert set(ok.loc[ok["crop_mask_swapped"].astype(bool), "roi_id"]) == swapped
    counts = ok.groupby(["split", "pathology"]).size()
    for split in study.SPLITS:
        for cls in study.CLASSES:
            assert counts.get((split, cls), 0) >= 1


# ----------------------------------------------------- issue 27.1: exclusive writes, own manifest


@pytest.fixture()
def phantom_copy(make_phantom, tmp_path) -> Path:
    """A private copy of the session's phantom (its marker and manifest included)."""
    import shutil

    out = tmp_path / "phantom"
    shutil.copytree(make_phantom(SCALE), out)
    return out


def _config() -> ph.PhantomConfig:
    """The configuration of the session's phantom (conftest.make_phantom)."""
    return ph.PhantomConfig(scale=SCALE, seed=0, workers=1)


def test_a_finished_phantom_records_every_file_and_verifies(phantom_copy):
    """phantom.json lists every file with its digest; an untouched phantom verifies."""
    meta = json.loads((phantom_copy / "phantom.json").read_text())
    skip = ("phantom.json", ".mcalc.lock")  # the marker itself, and the lock of its writers
    files = [p for p in phantom_copy.rglob("*") if p.is_file() and p.name not in skip]
    assert len(files) > 50
    assert set(meta["files"]) == {p.relative_to(phantom_copy).as_posix() for p in files}
    assert ph.verify_phantom(phantom_copy, _config()) is None


@pytest.mark.parametrize("damage", ["rewritten", "cut", "removed", "added", "unfinished"])
def test_a_damaged_phantom_is_named_and_generated_again_not_called_up_to_date(
    phantom_copy, monkeypatch, damage
):
    """A file rewritten (same size: a quirk applied twice, a not-DICOM mask made valid), cut,
    removed or added, or a marker left unfinished: verify names it and ensure_phantom generates the
    data set again (an intact one is kept)."""
    regenerated = []
    monkeypatch.setattr(
        generate, "_generate", lambda out, config, progress: regenerated.append(out)
    )
    assert ph.ensure_phantom(phantom_copy, _config(), progress=False) is None
    assert regenerated == []
    dicom = sorted((phantom_copy / ph.DICOM_ROOT).rglob("*.dcm"))[3]
    rel = dicom.relative_to(phantom_copy).as_posix()
    if damage == "rewritten":
        data = bytearray(dicom.read_bytes())
        data[-10:] = bytes(10)
        dicom.write_bytes(bytes(data))
    elif damage == "cut":
        dicom.write_bytes(dicom.read_bytes()[:1000])
    elif damage == "removed":
        dicom.unlink()
    elif damage == "added":
        rel = "CBIS-DDSM/extra.dcm"
        (phantom_copy / rel).write_bytes(b"x")
    else:
        marker = phantom_copy / "phantom.json"
        marker.write_text(marker.read_text().replace('"complete": true', '"complete": false'))
    problem = ph.verify_phantom(phantom_copy, _config())
    assert problem is not None
    assert (rel in problem) if damage != "unfinished" else ("unfinished" in problem)
    ph.ensure_phantom(phantom_copy, _config(), progress=False)
    assert regenerated == [phantom_copy]


def test_two_generations_of_one_folder_take_turns(tmp_path, monkeypatch):
    """Two processes (here threads, each with its own lock handle) generating one folder: the second
    waits until the first has finished, and says so; they never interleave."""
    import threading
    import time

    events, said = [], []

    def slow(out, config, progress):
        events.append(("start", threading.current_thread().name))
        time.sleep(0.3)
        events.append(("end", threading.current_thread().name))

    monkeypatch.setattr(generate, "_generate", slow)
    monkeypatch.setattr(generate, "_wait_note", said.append)
    out = tmp_path / "phantom"
    threads = [
        threading.Thread(target=ph.generate_phantom, args=(out, _config(), False), name=n)
        for n in ("a", "b")
    ]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert [e[0] for e in events] == ["start", "end", "start", "end"]
    assert events[0][1] == events[1][1] and events[2][1] == events[3][1]
    assert len(said) == 1 and "waiting for another mcalc run" in said[0]


def test_the_lock_file_does_not_make_a_folder_foreign(tmp_path):
    """A folder holding only the lock (a run that ended early) is still an empty folder to write into."""
    from mcalc.records.fsio import LOCK_NAME

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / LOCK_NAME).write_text("")
    generate._check_out(tmp_path / "p")  # no DataError


@pytest.mark.slow
def test_two_real_generations_at_once_leave_one_verified_phantom(make_phantom, tmp_path):
    """Issue 27.1 as a user meets it: two `mcalc phantom` into one folder at once. Both succeed one
    after the other, and the result verifies and is byte for byte the phantom generated alone."""
    import subprocess
    import sys

    out = tmp_path / "phantom"
    argv = [sys.executable, "-m", "mcalc", "phantom", str(out), "--scale", str(SCALE)]
    argv += ["--workers", "1", "--quiet"]
    procs = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert any("waiting for another mcalc run" in e for e in errs)
    assert ph.verify_phantom(out) is None
    assert ph.phantom_files(out) == ph.phantom_files(make_phantom(SCALE))


def test_a_build_generates_a_damaged_phantom_again_before_keying_anything(
    phantom_copy, monkeypatch
):
    """`mcalc notebooks` on a phantom data root that no longer matches its manifest generates it
    again first (an intact one, whatever the number of processes that wrote it, is kept)."""
    from mcalc.run import pipeline as pl
    from mcalc.run.profiles import get_profile

    regenerated = []
    monkeypatch.setattr(
        generate, "_generate", lambda out, config, progress: regenerated.append(out)
    )
    profile = get_profile("ci", data_root=str(phantom_copy), phantom_scale=SCALE)
    pl._repair_phantom(profile, progress=False)
    assert regenerated == []
    next((phantom_copy / ph.DICOM_ROOT).rglob("*.dcm")).write_bytes(b"an HTML error page")
    pl._repair_phantom(profile, progress=False)
    assert regenerated == [phantom_copy]
