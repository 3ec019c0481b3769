"""Tests of mcalc.data.case_tables: the official case-description tables, parsed into manifest rows."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from conftest import CALC_HEADER as HEADER
from conftest import curate_quietly, shared_tables

from mcalc import study
from mcalc.data import case_tables as tb
from mcalc.data import curation as cu
from mcalc.errors import DataError


def test_real_mass_tables_parse():
    """The mass tables (density column 'breast_density', mask path with the newline) parse too."""
    root = shared_tables()
    headers = {k: next(csv.reader(open(root / n, newline=""))) for k, n in tb.TABLE_FILES.items()}
    assert (
        "breast_density" in headers[("mass", "train")]
        and "breast density" in headers[("calc", "train")]
    )
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
    name = tb.TABLE_FILES[("calc", "test")]
    text = (shared_tables() / name).read_text()
    assert "N/A" in text and "\r\n" not in text
    variant = text.replace("N/A", "NA").replace("\n", "\r\n")
    (tmp_path / name).write_bytes(variant.encode())
    original = tb.read_case_table(shared_tables() / name, "test", "calcification")
    copy = tb.read_case_table(tmp_path / name, "test", "calc")
    pd.testing.assert_frame_equal(original, copy)
    missing = original["calc_type"].isna().sum() + original["calc_distribution"].isna().sum()
    assert missing == text.count(",N/A,") > 0


def write_table(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    """A case-description table with the official quoting."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def table_row(
    patient="P_00001",
    side="LEFT",
    view="CC",
    abn=1,
    pathology="BENIGN",
    density="2",
    calc_type="PUNCTATE",
    split="train",
) -> list[str]:
    """One calc table record with UID-looking paths."""
    folder = f"Calc-{tb.SPLIT_PREFIX[split]}_{patient}_{side}_{view}"
    return [
        patient,
        density,
        side,
        view,
        str(abn),
        "calcification",
        calc_type,
        "CLUSTERED",
        "3",
        pathology,
        "3",
        f"{folder}/1.2.3/1.2.4/000000.dcm",
        f"{folder}_{abn}/1.2.5/1.2.6/000001.dcm\n",
        f"{folder}_{abn}/1.2.5/1.2.6/000000.dcm",
    ]


def test_missing_columns_is_a_data_error(tmp_path):
    """A table without required columns → DataError naming them and the file."""
    drop = {"pathology", "ROI mask file path"}
    header = [h for h in HEADER if h not in drop]
    rows = [[v for h, v in zip(HEADER, table_row()) if h not in drop]]
    path = write_table(tmp_path / tb.TABLE_FILES[("calc", "train")], rows, header)
    with pytest.raises(DataError, match="pathology") as err:
        tb.read_case_table(path, "train", "calc")
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
    df = tb.read_case_table(path, "train", "calc")
    assert len(df) == len(rows)
    assert list(df["source_line"]) == [
        2,
        4,
        6,
        8,
        10,
        11,
    ]  # quoted newlines make records span two lines
    assert list(df["status"]) == ["ok", "excluded", "excluded", "ok", "excluded", "excluded"]
    assert list(df["reason"]) == [
        "",
        "unknown_pathology",
        "duplicate",
        "",
        "invalid_record",
        "invalid_record",
    ]
    assert "line 2" in df.loc[2, "detail"] and "UNPROVEN" in df.loc[1, "detail"]
    assert "fields" in df.loc[4, "detail"] and "XCC" in df.loc[5, "detail"]
    assert pd.isna(df.loc[3, "density"]) and "density 7" in df.loc[3, "note"]
    assert df.loc[3, "calc_type"] == "LUCENT_CENTER-PUNCTATE"
    assert pd.isna(df.loc[1, "label"]) and df.loc[0, "label"] == study.CLASSES.index("BENIGN")
    assert (
        df.loc[0, "roi_id"] == "Calc-Training_P_00001_LEFT_CC_1"
        and df.loc[0, "image_id"] == "P_00001_LEFT_CC"
    )


def test_find_case_tables(tmp_path):
    """Tables found at the root or below it, only those present; none → DataError."""
    with pytest.raises(DataError, match="calc_case_description"):
        tb.find_case_tables(tmp_path)
    (tmp_path / "tables" / "csv").mkdir(parents=True)
    write_table(
        tmp_path / "tables" / "csv" / tb.TABLE_FILES[("calc", "test")], [table_row(split="test")]
    )
    assert tb.find_case_tables(tmp_path) == {
        ("calc", "test"): tmp_path / "tables" / "csv" / tb.TABLE_FILES[("calc", "test")]
    }
    write_table(tmp_path / tb.TABLE_FILES[("calc", "train")], [table_row()])
    assert set(tb.find_case_tables(tmp_path, "calcification")) == {
        ("calc", "train"),
        ("calc", "test"),
    }
    with pytest.raises(DataError, match="mass"):
        tb.find_case_tables(tmp_path, "mass")
    with pytest.raises(ValueError):
        tb.find_case_tables(tmp_path, "cyst")
