"""Tests of the Kaggle JPEG re-release of CBIS-DDSM (mcalc.data.kaggle): layout, curation, pixels, label."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import curate_quietly
from PIL import Image

from mcalc.data import curation as cu
from mcalc.data import images, kaggle
from mcalc.data import phantom as ph
from mcalc.data.curation import data_provenance
from mcalc.data.images import MAX_IMAGE_PIXELS, read_image
from mcalc.data.layouts import Resolved
from mcalc.data.phantom.writing import write_jpeg
from mcalc.errors import DataError
from mcalc.learn.preprocessing import normalize_intensity
from mcalc.records.provenance import KAGGLE_JPEG_LABEL, Provenance
from mcalc.run.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]
SCALE = 0.03
COMPARED = ["roi_id", "split", "patient_id", "pathology", "label", "status", "crop_mask_swapped"]
SAME_REASON = {"not_jpeg": "not_dicom", "corrupt_jpeg": "corrupt_dicom"}


def jpeg_bytes(pixels: np.ndarray, quality: int) -> np.ndarray:
    """Pixels after a round trip through Pillow's JPEG encoder."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())))


@pytest.fixture(scope="module")
def pair(make_phantom) -> tuple[Path, Path]:
    """The same phantom (seed, scale, quirks) in the UID DICOM layout and in the Kaggle JPEG layout."""
    return make_phantom(SCALE, seed=0, layout="uid"), make_phantom(
        SCALE, seed=0, layout=kaggle.LAYOUT
    )


@pytest.fixture(scope="module")
def curated(pair) -> tuple[cu.CurationResult, cu.CurationResult]:
    """Both phantoms curated."""
    return curate_quietly(pair[0]), curate_quietly(pair[1])


@pytest.fixture()
def tree(pair, tmp_path) -> Path:
    """A private copy of the Kaggle-layout phantom, without its phantom marker (a 'real' download)."""
    out = tmp_path / "archive"
    shutil.copytree(pair[1], out)
    (out / "phantom.json").unlink()
    return out


def usable_entry(root: Path, role: str) -> tuple[str, Path]:
    """(ROI id, file) of a usable ROI's crop or mask in a Kaggle tree, as the curated manifest has it."""
    row = curate_quietly(root).usable().iloc[0]
    return row["roi_id"], Path(row[f"{role}_path"])


# ------------------------------------------------------------------------------------ the layout


def test_phantom_writes_the_kaggle_layout(pair):
    """csv/ with the tables and dicom_info.csv; jpeg/<series UID>/1-N.jpg, 8-bit greyscale JPEGs."""
    root = pair[1]
    assert {p.name for p in (root / "csv").iterdir()} == {*ph.CSV_NAMES.values(), "dicom_info.csv"}
    assert not list(root.rglob("*.dcm"))
    info = pd.read_csv(root / "csv" / "dicom_info.csv", dtype=str)
    assert {"image_path", "SeriesInstanceUID", "SeriesDescription", "PatientID"} <= set(info)
    assert info["image_path"].str.fullmatch(r"CBIS-DDSM/jpeg/2\.25\.\d+/1-[12]\.jpg").all()
    assert set(info["SeriesDescription"]) == set(kaggle.ROLE_NAMES.values())
    listed = {root / "jpeg" / p.split("jpeg/", 1)[1] for p in info["image_path"]}
    quirks = pd.read_csv(root / "quirks.csv")
    on_disk = set((root / "jpeg").rglob("*.jpg"))
    assert on_disk <= listed and len(listed - on_disk) == (quirks["kind"] == "missing_file").sum()
    table = pd.read_csv(root / "csv" / ph.CSV_NAMES["train"], dtype=str)
    first = table.iloc[0]
    uid = first["ROI mask file path"].split("/")[2]  # the table still names the DICOMs
    folder = sorted((root / "jpeg" / uid).glob("*.jpg"))
    assert [p.name for p in folder] == ["1-1.jpg", "1-2.jpg"]
    with Image.open(folder[0]) as im:
        assert (im.format, im.mode) == ("JPEG", "L")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("CBIS-DDSM/jpeg/1.3.6.1.4/1-204.jpg", ("1.3.6.1.4", "1-204.jpg")),
        ("jpeg/1.3.6.1.4/2-072.jpg", ("1.3.6.1.4", "2-072.jpg")),
        ("/kaggle/input/cbis-ddsm/jpeg/1.3.6.1.4/1-1.jpg", ("1.3.6.1.4", "1-1.jpg")),
        ("C:\\data\\archive\\JPEG\\1.3.6.1.4\\1-1.jpeg", ("1.3.6.1.4", "1-1.jpeg")),
        ("1.3.6.1.4/1-1.jpg", ("1.3.6.1.4", "1-1.jpg")),
        ("CBIS-DDSM/jpeg/../1-1.jpg", None),
        ("CBIS-DDSM/dicom/1.3.6.1.4/1-1.dcm", None),
        ("1-1.jpg", None),
    ],
)
def test_image_path_variants(value, expected):
    """Known image_path spellings map to (series folder, file); anything else (or '..') to None."""
    assert kaggle._split_image_path(value) == expected


def test_dicom_info_header_variants(tmp_path):
    """Headers compared without case/underscores, ';' accepted; a row with a bad path is listed, not used."""
    path = tmp_path / "dicom_info.csv"
    path.write_text(
        "Image_Path;series_instance_uid;Series Description;patient_id\n"
        "CBIS-DDSM/jpeg/1.2.3/1-1.jpg;1.2.3;cropped images;Calc-Test_P_00001_LEFT_CC_1\n"
        "CBIS-DDSM/jpeg/1.2.3/1-2.jpg;1.2.3;;Calc-Test_P_00001_LEFT_CC_1\n"
        "../../etc/passwd;9.9;full mammogram images;x\n"
    )
    entries, skipped = kaggle.read_dicom_info(path)
    assert [(e.folder, e.name, e.role) for e in entries] == [
        ("1.2.3", "1-1.jpg", "crop"),
        ("1.2.3", "1-2.jpg", None),
    ]
    assert len(skipped) == 1 and "line 4" in skipped[0]
    path.write_text("file_path,SeriesInstanceUID\nCBIS-DDSM/dicom/1.2.3/1-1.dcm,1.2.3\n")
    with pytest.raises(DataError, match="no 'image_path' column"):
        kaggle.read_dicom_info(path)


# ------------------------------------------------------------------------- same records as DICOM


def test_kaggle_phantom_curates_to_the_same_records(curated):
    """Same ROIs, labels, splits, statuses, corrected swaps; exclusion reasons the JPEG counterparts."""
    dicom, jpeg = curated
    assert (dicom.layout, jpeg.layout) == ("dicom", kaggle.LAYOUT)
    pd.testing.assert_frame_equal(dicom.manifest[COMPARED], jpeg.manifest[COMPARED])
    reasons = jpeg.manifest["reason"].replace(SAME_REASON)
    pd.testing.assert_series_equal(dicom.manifest["reason"], reasons)
    assert jpeg.swaps["roi_id"].tolist() == dicom.swaps["roi_id"].tolist() != []
    assert len(jpeg.exclusions) >= 3
    usable = jpeg.usable()
    assert usable["crop_path"].str.endswith(".jpg").all()
    assert all(Path(p).is_file() for p in usable[["full_path", "crop_path", "mask_path"]].stack())


def test_crops_equal_up_to_jpeg_loss(curated):
    """Each usable crop read from its JPEG is the DICOM crop to within JPEG loss (0-255 scale)."""
    dicom, jpeg = curated
    for (_, a), (_, b) in zip(dicom.usable().iterrows(), jpeg.usable().iterrows()):
        x = normalize_intensity(read_image(a["crop_path"]))
        y = normalize_intensity(read_image(b["crop_path"]))
        assert x.shape == y.shape
        assert float(np.abs(x - y).mean()) < 10.0, a["roi_id"]
        assert np.corrcoef(x.ravel(), y.ravel())[0, 1] > 0.9, a["roi_id"]
        assert not np.array_equal(np.round(x), np.round(y))  # lossy, and visibly so


# -------------------------------------------------------------------------- crop vs mask, JPEG


@pytest.mark.parametrize("quality", [50, 75, 95])
def test_jpeg_masks_are_near_binary_but_not_binary(quality):
    """A 0/255 mask through Pillow's JPEG encoder: not exactly binary, but within the tolerance."""
    yy, xx = np.mgrid[:200, :160]
    mask = (((yy - 90) / 40.0) ** 2 + ((xx - 70) / 25.0) ** 2 < 1).astype(np.uint8) * 255
    mask[20:30, 120:150] = 255  # a second, thin blob: more edges, more ringing
    ringing = jpeg_bytes(mask, quality)
    assert not images.is_binary(ringing)
    assert images.is_near_binary(ringing)


def test_crops_are_not_near_binary_and_masks_are(curated):
    """Every usable phantom crop, as a JPEG, fails the near-binary test; every mask passes it."""
    usable = curated[1].usable()
    for crop, mask in zip(usable["crop_path"], usable["mask_path"]):
        assert not images.is_near_binary(images.read_jpeg_pixels(crop)), crop
        assert images.is_near_binary(images.read_jpeg_pixels(mask)), mask


def test_content_decides_when_sizes_do_not(tmp_path):
    """Crop and mask of the full image's size: the near-binary JPEG is the mask, whatever dicom_info says."""
    rng = np.random.default_rng(0)
    full = (rng.normal(120, 30, (96, 80))).clip(0, 255).astype(np.uint8)
    mask = np.zeros((96, 80), np.uint8)
    mask[30:60, 20:50] = 255
    paths = {}
    for name, pixels in (("full", full), ("a", mask), ("b", full[::-1])):
        paths[name] = str(tmp_path / f"{name}.jpg")
        write_jpeg(Path(paths[name]), pixels)
    res = Resolved(
        full=paths["full"], claimed_crop=paths["a"], claimed_mask=paths["b"], claims_known=True
    )
    chk = kaggle.check_files(res)
    assert (chk.reason, chk.crop, chk.mask, chk.swapped) == ("", paths["b"], paths["a"], True)
    res.claims_known = False
    chk = kaggle.check_files(res)
    assert not chk.swapped and "by content" in chk.note


# ------------------------------------------------------------------------------- bad trees


def test_missing_dicom_info_is_a_clear_error(tree, capsys):
    """A jpeg/ folder without dicom_info.csv: DataError naming it; the CLI exits 2 with one line."""
    assert cli_main(["curate", str(tree), "--out", str(tree.parent / "m.csv"), "--quiet"]) == 0
    seen = capsys.readouterr()
    assert f"read as the {KAGGLE_JPEG_LABEL}" in seen.out
    assert "mcalc curate: warning: 1 ROI(s) excluded" in seen.err  # the phantom's quirks
    (tree / "csv" / "dicom_info.csv").unlink()
    with pytest.raises(DataError, match="dicom_info.csv"):
        curate_quietly(tree)
    assert cli_main(["curate", str(tree), "--out", str(tree.parent / "m.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "dicom_info.csv" in err and "\n" not in err and "Traceback" not in err


def test_missing_jpeg_is_an_exclusion(tree):
    """A usable ROI's crop deleted: that ROI, and only it, excluded as missing_file naming the file."""
    before = curate_quietly(tree)
    roi, crop = usable_entry(tree, "crop")
    crop.unlink()
    after = curate_quietly(tree)
    row = after.manifest.set_index("roi_id").loc[roi]
    assert (row["status"], row["reason"]) == ("excluded", "missing_file")
    assert str(crop) in row["detail"]
    assert len(after.exclusions) == len(before.exclusions) + 1


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda p: p.write_text("<html>503 Service Unavailable</html>"), "not_jpeg"),
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "corrupt_jpeg"),
    ],
    ids=["not-a-jpeg", "truncated"],
)
@pytest.mark.parametrize("role", ["crop", "mask", "full"])
def test_unreadable_jpeg_is_an_exclusion(tree, damage, reason, role):
    """A crop, mask or full image that is not a JPEG, or is cut short: excluded with the file named."""
    roi, path = usable_entry(tree, role)
    damage(path)
    row = curate_quietly(tree).manifest.set_index("roi_id").loc[roi]
    assert (row["status"], row["reason"]) == ("excluded", reason)
    assert str(path) in row["detail"]


def test_series_missing_from_dicom_info_is_an_exclusion(tree):
    """A ROI whose series dicom_info.csv does not list: excluded, saying so."""
    roi, crop = usable_entry(tree, "crop")
    info_path = tree / "csv" / "dicom_info.csv"
    info = pd.read_csv(info_path, dtype=str)
    info[~info["image_path"].str.contains(crop.parent.name, regex=False)].to_csv(
        info_path, index=False
    )
    row = curate_quietly(tree).manifest.set_index("roi_id").loc[roi]
    assert (row["status"], row["reason"]) == ("excluded", "missing_file")
    assert crop.parent.name in row["detail"] and "not listed" in row["detail"]


def test_crop_in_another_series_is_found_by_its_folder_name(tree):
    """A crop listed under a series the table does not name: found through its PatientID (ROI folder)."""
    before = curate_quietly(tree).manifest.set_index("roi_id")
    roi, crop = usable_entry(tree, "crop")
    info_path = tree / "csv" / "dicom_info.csv"
    info = pd.read_csv(info_path, dtype=str)
    moved = tree / "jpeg" / "9.9.9" / "1-1.jpg"
    moved.parent.mkdir()
    crop.rename(moved)
    at = info["image_path"].str.endswith(f"{crop.parent.name}/{crop.name}")
    assert at.sum() == 1
    info.loc[at, ["image_path", "SeriesInstanceUID"]] = ["CBIS-DDSM/jpeg/9.9.9/1-1.jpg", "9.9.9"]
    info.to_csv(info_path, index=False)
    after = curate_quietly(tree).manifest.set_index("roi_id")
    assert after.loc[roi, "status"] == "ok" and after.loc[roi, "crop_path"] == str(moved)
    assert (after["status"] == before["status"]).all()
    info.loc[at, "PatientID"] = "somebody else"
    info.to_csv(info_path, index=False)
    row = curate_quietly(tree).manifest.set_index("roi_id").loc[roi]
    assert (row["status"], row["reason"]) == ("excluded", "missing_file")
    assert "lists only" in row["detail"]


def test_jpeg_linked_outside_the_root_is_never_opened(tree, tmp_path):
    """A crop that is a symbolic link to a file outside the data root: excluded as outside_root."""
    roi, crop = usable_entry(tree, "crop")
    elsewhere = tmp_path / "elsewhere.jpg"
    shutil.copy(crop, elsewhere)
    crop.unlink()
    crop.symlink_to(elsewhere)
    row = curate_quietly(tree).manifest.set_index("roi_id").loc[roi]
    assert (row["status"], row["reason"]) == ("excluded", "outside_root")
    assert str(crop) in row["detail"]


def test_jpeg_folder_may_be_a_link_to_another_disk(tree, tmp_path):
    """ROOT/jpeg a symbolic link to the images elsewhere (a mounted disk): read as if it were there."""
    before = curate_quietly(tree).manifest
    disk = tmp_path / "disk" / "jpeg"
    disk.parent.mkdir()
    shutil.move(tree / "jpeg", disk)
    (tree / "jpeg").symlink_to(disk, target_is_directory=True)
    after = curate_quietly(tree).manifest
    pd.testing.assert_frame_equal(before[COMPARED], after[COMPARED])


def test_no_jpeg_at_all_is_a_clear_error(tree):
    """dicom_info.csv and tables but an empty jpeg/ folder: one DataError naming the Kaggle layout."""
    shutil.rmtree(tree / "jpeg")
    (tree / "jpeg").mkdir()
    with pytest.raises(DataError, match="Kaggle JPEG re-release"):
        curate_quietly(tree)


# ------------------------------------------------------------------------------- provenance


def test_provenance_names_the_kaggle_release(pair, tree):
    """The phantom and a 'real' Kaggle download carry the release's label and a banner saying why."""
    phantom = data_provenance(pair[1])
    assert phantom.data == "phantom" and KAGGLE_JPEG_LABEL in phantom.label()
    assert "GLCM" in phantom.banner()
    real = data_provenance(tree).with_weights("imagenet")
    assert real.data == "cbis-ddsm" and not real.is_simulated
    assert f"real {KAGGLE_JPEG_LABEL}" in real.label() and "GLCM" in real.banner()
    dicom = data_provenance(pair[0])
    assert KAGGLE_JPEG_LABEL not in dicom.label()
    assert Provenance(data="cbis-ddsm").with_weights("imagenet").banner() == ""
    assert Provenance.from_dict(real.to_dict()).label() == real.label()


@pytest.mark.slow
def test_ci_notebooks_run_on_a_kaggle_download(tree, tmp_path, monkeypatch):
    """Notebooks 01-02 (CI profile) on a Kaggle-layout download: they run and print the release's label."""
    import nbformat

    from mcalc.run.pipeline import run_profile
    from mcalc.run.profiles import get_profile

    monkeypatch.chdir(REPO)
    profile = get_profile(
        "ci",
        data_source="cbis-ddsm",
        data_root=str(tree),
        results_dir=str(tmp_path / "results"),
        cache_dir=str(tmp_path / "cache"),
        out_dir=str(tmp_path / "notebooks"),
    )
    done = run_profile(profile, only=["01", "02"])
    assert [p.name for p, _ in done] == ["01_data_curation.ipynb", "02_preprocessing.ipynb"]
    for path, _ in done:
        text = nbformat.writes(nbformat.read(path, as_version=4))
        assert f"real {KAGGLE_JPEG_LABEL}" in text, path.name


# --------------------------------------------------- issue 27: crafted and damaged input


def _set_declared_size(data: bytes, rows: int, columns: int) -> bytes:
    """A JPEG's bytes with its frame header (SOFn) declaring another size; the scan data unchanged."""
    b, i = bytearray(data), 2
    while i < len(b):
        marker, length = b[i + 1], int.from_bytes(b[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            b[i + 5 : i + 7], b[i + 7 : i + 9] = rows.to_bytes(2, "big"), columns.to_bytes(2, "big")
            return bytes(b)
        i += 2 + length
    raise AssertionError("no frame header")


@pytest.mark.parametrize("rows, columns", [(8000, 9000), (30000, 30000)])
def test_a_crop_declaring_a_huge_size_is_excluded_before_decoding(tree, monkeypatch, rows, columns):
    """A few-KB crop whose header declares more pixels than its mammogram (or the budget): excluded as
    oversized_image naming the file, and never decoded (no gigabytes, no library warning)."""
    import warnings

    roi, crop = usable_entry(tree, "crop")
    crop.write_bytes(_set_declared_size(crop.read_bytes(), rows, columns))
    assert crop.stat().st_size < 100_000
    decoded = []
    real = images.read_jpeg_pixels
    for module in (kaggle, images):  # the layout's check and the image check both decode through it
        monkeypatch.setattr(module, "read_jpeg_pixels", lambda p: decoded.append(p) or real(p))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        row = curate_quietly(tree).manifest.set_index("roi_id").loc[roi]
    assert (row["status"], row["reason"]) == ("excluded", "oversized_image")
    assert str(crop) in row["detail"] and "not decoded" in row["detail"]
    assert str(crop) not in decoded
    if rows * columns > MAX_IMAGE_PIXELS:  # preprocessing's own check, before decoding
        with pytest.raises(DataError, match="too many pixels|over the budget"):
            read_image(crop)


def test_a_crop_cut_short_with_an_end_marker_appended_is_excluded(tree):
    """A crop cut in half with the end-of-image marker appended decodes (the decoder fills the rest
    with grey): excluded as corrupt_jpeg, naming the file, instead of kept as a usable ROI."""
    roi, crop = usable_entry(tree, "crop")
    data = crop.read_bytes()
    crop.write_bytes(data[: len(data) // 2] + b"\xff\xd9")
    row = curate_quietly(tree).manifest.set_index("roi_id").loc[roi]
    assert (row["status"], row["reason"]) == ("excluded", "corrupt_jpeg")
    assert str(crop) in row["detail"] and "cut short" in row["detail"]


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_a_png_or_gif_named_jpg_is_read_with_a_note(tree, fmt):
    """An image that is not a JPEG under a .jpg name is read as it is, and the manifest says so."""
    roi, crop = usable_entry(tree, "crop")
    with Image.open(crop) as im:
        im.load()
        im.save(crop, format=fmt)
    row = curate_quietly(tree).manifest.set_index("roi_id").loc[roi]
    assert row["status"] == "ok"
    assert f"a {fmt} image under a .jpg name" in row["note"]


def test_a_duplicated_dicom_info_row_does_not_exclude_a_good_roi(tree):
    """The same image listed twice in dicom_info.csv is one image: no ROI becomes 'ambiguous'."""
    before = curate_quietly(tree).manifest.set_index("roi_id")
    info_path = tree / "csv" / "dicom_info.csv"
    info = pd.read_csv(info_path, dtype=str)
    pd.concat([info, info.iloc[:10]]).to_csv(info_path, index=False)  # fulls, crops and masks twice
    after = curate_quietly(tree).manifest.set_index("roi_id")
    pd.testing.assert_frame_equal(before[COMPARED[1:]], after[COMPARED[1:]])
    assert "ambiguous_files" not in set(after["reason"].dropna())


def test_a_utf16_dicom_info_is_read(tree):
    """dicom_info.csv saved as UTF-16 (with its byte-order mark, as spreadsheet tools do) is read."""
    before = curate_quietly(tree).manifest
    info_path = tree / "csv" / "dicom_info.csv"
    info_path.write_text(info_path.read_text(encoding="utf-8"), encoding="utf-16")
    pd.testing.assert_frame_equal(before[COMPARED], curate_quietly(tree).manifest[COMPARED])


@pytest.mark.parametrize(
    "content, needle",
    [
        ("utf-16-le", "not a text table in UTF-8"),
        ("header", "lists no image (a header and no rows)"),
    ],
)
def test_an_unusable_dicom_info_is_named(tree, capsys, content, needle):
    """A UTF-16 table without its mark, or a header-only one: one line naming dicom_info.csv (exit 2),
    not 'no image found (are the images downloaded?)'."""
    info_path = tree / "csv" / "dicom_info.csv"
    text = info_path.read_text(encoding="utf-8")
    if content == "header":
        info_path.write_text(text.splitlines()[0] + "\n")
    else:
        info_path.write_bytes(text.encode("utf-16-le"))
    with pytest.raises(DataError, match="dicom_info.csv"):
        curate_quietly(tree)
    code = cli_main(["curate", str(tree), "--out", str(tree.parent / "m.csv"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and "dicom_info.csv" in err and "\n" not in err
    assert "are the images downloaded" not in err


def test_an_empty_jpeg_folder_beside_a_dicom_download_is_ignored(pair, tmp_path):
    """An empty jpeg/ beside a DICOM download (no dicom_info.csv) is not taken for a broken Kaggle copy."""
    root = tmp_path / "dicom"
    shutil.copytree(pair[0], root)
    (root / "phantom.json").unlink()
    before = curate_quietly(root).manifest
    (root / "jpeg").mkdir()
    assert kaggle.layout_of(root) == "dicom"
    pd.testing.assert_frame_equal(before[COMPARED], curate_quietly(root).manifest[COMPARED])


def test_curate_prints_warnings_as_one_line_without_source(tree, capsys):
    """Each curate names its exclusions in lines 'mcalc curate: warning: ...', never a Python warning
    with mcalc's file name and source line."""
    assert cli_main(["curate", str(tree), "--out", str(tree.parent / "m.csv"), "--quiet"]) == 0
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines and all(line.startswith("mcalc curate: warning: ") for line in lines), err
    assert ".py:" not in err and "result = curate(" not in err
