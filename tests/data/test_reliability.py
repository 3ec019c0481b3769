"""Reliability under bad input: faulty downloads, caches, determinism, no pickles (damaged DICOMs and odd
pixel formats: tests/data/test_images.py).

Every bad input must end in a clear DataError naming the file (or row / column / class) or in a
reported exclusion; nothing is lost silently.
"""

from __future__ import annotations

import ast
import csv
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from conftest import CALC_HEADER, write_dicom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcalc import study
from mcalc.data import case_tables as tb
from mcalc.data import curation as cu
from mcalc.errors import DataError
from tests.data.test_images import to_float_pixel_data

REPO = Path(__file__).resolve().parents[2]
FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
FULL_SHAPE = (32, 24)
CROP_SHAPE = (12, 10)


def texture(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Textured 16-bit pixels."""
    return np.random.default_rng(seed).integers(100, 4000, shape).astype(np.uint16)


def binary_mask(shape: tuple[int, int] = FULL_SHAPE, on: int = 255, off: int = 0) -> np.ndarray:
    """A binary 8-bit mask with one lesion block."""
    mask = np.full(shape, off, np.uint8)
    mask[4:10, 3:9] = on
    return mask


# ------------------------------------------------------------------------------ faulty downloads

#: fault → (status, reason) that curation must give the ROI
FAULTS = {
    None: ("ok", ""),
    "swap": ("ok", ""),
    "monochrome1_mask": ("ok", ""),
    "one_bit_mask": ("ok", ""),
    "mask_size": ("ok", ""),  # kept with a note: classification needs only the crop
    "zero_crop": ("excluded", "empty_crop"),
    "unknown_pathology": ("excluded", "unknown_pathology"),
    "missing_mask": ("excluded", "missing_file"),
    "truncated_crop": ("excluded", "corrupt_dicom"),
    "html_full": ("excluded", "not_dicom"),
    "float_crop": ("excluded", "unsupported_image"),  # the preprocessing cannot read it
    "duplicate": ("ok", ""),  # the first record is kept, the repeat is excluded
}


def faulty_download(root: Path, faults: list[str | None]) -> None:
    """A UID-layout calc train table + DICOM tree with one ROI (own patient) per fault."""
    rows = []
    for i, fault in enumerate(faults):
        pid = f"P_{i + 1:05d}"
        image = f"Calc-Training_{pid}_LEFT_CC"
        full_rel = f"{image}/1.1/1.2/000000.dcm"
        crop_rel, mask_rel = f"{image}_1/2.1/2.2/000001.dcm", f"{image}_1/2.1/2.2/000000.dcm"
        base = root / "CBIS-DDSM"
        crop = (
            np.zeros(CROP_SHAPE, np.uint16)
            if fault == "zero_crop"
            else texture(CROP_SHAPE, 100 + i)
        )
        mask_shape = (FULL_SHAPE[0] - 4, FULL_SHAPE[1]) if fault == "mask_size" else FULL_SHAPE
        write_dicom(base / full_rel, texture(FULL_SHAPE, i))
        if fault == "monochrome1_mask":
            write_dicom(base / mask_rel, binary_mask(on=0, off=255), photometric="MONOCHROME1")
        elif fault == "one_bit_mask":
            write_dicom(base / mask_rel, binary_mask(on=1), bits_allocated=1)
        else:
            write_dicom(base / mask_rel, binary_mask(mask_shape))
        write_dicom(base / crop_rel, crop)
        if fault == "swap":
            (base / crop_rel).rename(base / "tmp.dcm")
            (base / mask_rel).rename(base / crop_rel)
            (base / "tmp.dcm").rename(base / mask_rel)
        elif fault == "missing_mask":
            (base / mask_rel).unlink()
        elif fault == "truncated_crop":
            data = (base / crop_rel).read_bytes()
            (base / crop_rel).write_bytes(data[: len(data) - 7])
        elif fault == "html_full":
            (base / full_rel).write_text("<html>404 Not Found</html>\n")
        elif fault == "float_crop":
            to_float_pixel_data(base / crop_rel)
        pathology = "MALIGANT" if fault == "unknown_pathology" else ("BENIGN", "MALIGNANT")[i % 2]
        record = [
            pid,
            "2",
            "LEFT",
            "CC",
            "1",
            "calcification",
            "PUNCTATE",
            "CLUSTERED",
            "4",
            pathology,
            "3",
            full_rel,
            crop_rel + "\n",
            mask_rel,
        ]
        rows += [record, record] if fault == "duplicate" else [record]
    with open(root / tb.TABLE_FILES[("calc", "train")], "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CALC_HEADER)
        writer.writerows(rows)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(faults=st.lists(st.sampled_from(list(FAULTS)), min_size=1, max_size=6))
def test_faulty_download_nothing_lost(tmp_path_factory, faults):
    """Any mix of faults: one manifest row per table record, each fault excluded with its reason or corrected."""
    root = tmp_path_factory.mktemp("download")
    faulty_download(root, faults)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tb.CurationWarning)
        result = cu.curate(root, progress=False, workers=1)
    m = result.manifest
    assert len(m) == len(faults) + faults.count("duplicate")
    for i, fault in enumerate(faults):
        rows = m[m["patient_id"] == f"P_{i + 1:05d}"]
        assert (rows["status"].iloc[0], rows["reason"].iloc[0]) == FAULTS[fault], (
            fault,
            rows["detail"].iloc[0],
        )
        assert bool(rows["crop_mask_swapped"].iloc[0]) == (fault == "swap")
        if fault == "duplicate":
            assert list(rows["reason"]) == ["", "duplicate"]
        if rows["status"].iloc[0] == "ok":
            assert len(np.unique(pydicom.dcmread(rows["mask_path"].iloc[0]).pixel_array)) == 2
            assert Path(rows["crop_path"].iloc[0]).name == "000001.dcm" or fault == "swap"
    excluded = m[m["status"] == "excluded"]
    assert list(result.exclusions["roi_id"]) == list(excluded["roi_id"])
    assert (result.exclusions["detail"] != "").all()
    assert len(result.usable()) == len(m) - len(excluded)


@FAST
@given(column=st.sampled_from(CALC_HEADER))
def test_table_missing_any_required_column_names_it(tmp_path_factory, column):
    """Dropping any column of the official calc header is a DataError naming that column and the table."""
    root = tmp_path_factory.mktemp("table")
    header = [h for h in CALC_HEADER if h != column]
    path = root / tb.TABLE_FILES[("calc", "train")]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerow(["x"] * len(header))
    with pytest.raises(DataError, match=f"missing required column.*{column}") as err:
        cu.curate(root, check_images=False, progress=False)
    assert path.name in str(err.value)


# ------------------------------------------------------------------------------ a class absent from a split


def small_manifest(n_per_class: int = 12) -> pd.DataFrame:
    """Manifest rows with label and patient_id, two ROIs per patient, every class present."""
    rows = [
        {"patient_id": f"P_{k * 100 + i // 2:05d}", "label": k, "pathology": study.CLASSES[k]}
        for k in range(len(study.CLASSES))
        for i in range(n_per_class)
    ]
    return pd.DataFrame(rows)


@settings(max_examples=6, deadline=None)
@given(absent=st.sampled_from(range(len(study.CLASSES))))
def test_class_absent_is_a_data_error_naming_it(absent):
    """validation_split and evaluate refuse data with a class missing and name that class."""
    from mcalc.evaluate.evaluation import evaluate
    from mcalc.learn.splits import validation_split

    m = small_manifest()
    kept = m[m["label"] != absent].reset_index(drop=True)
    with pytest.raises(DataError, match=study.CLASSES[absent]):
        validation_split(kept, n_val=6)
    y = kept["label"].to_numpy()
    proba = np.full((len(y), len(study.CLASSES)), 1 / len(study.CLASSES))
    with pytest.raises(DataError, match=study.CLASSES[absent]):
        evaluate(y, proba, n_boot=0)
    train, val = validation_split(m, n_val=6)  # the full manifest splits fine
    assert len(train) + len(val) == len(m)


# ------------------------------------------------------------------------------ caches


def test_glcm_cache_resumes_and_rebuilds_a_corrupt_file(tmp_path, monkeypatch):
    """baselines.glcm_matrix: a partial earlier run is reused, a corrupt cache file rebuilt, the values identical."""
    from mcalc.evaluate import baselines

    paths = [
        str(write_dicom(tmp_path / f"roi{i}.dcm", texture((20 + i, 16), 10 + i))) for i in range(4)
    ]
    real = baselines.glcm_feature_matrix
    asked: list[list[str]] = []

    def spy(ps, levels=64, workers=2, progress=True):
        asked.append(list(ps))
        return real(ps, levels=levels, workers=1, progress=False)

    monkeypatch.setattr(baselines, "glcm_feature_matrix", spy)
    cache = tmp_path / "cache"
    first = baselines.glcm_matrix(paths[:2], 16, cache, progress=False)  # an earlier, shorter run
    full = baselines.glcm_matrix(paths, 16, cache, progress=False)
    assert asked == [paths[:2], paths[2:]]
    np.testing.assert_array_equal(full[:2], first)
    np.testing.assert_array_equal(
        full, real(paths, levels=16, workers=1, progress=False).astype(full.dtype)
    )
    files = sorted((cache / "glcm").rglob("*.npz"))
    assert len(files) == 4
    files[0].write_bytes(files[0].read_bytes()[:50])  # a torn write
    with pytest.warns(UserWarning, match="corrupt cache file"):
        again = baselines.glcm_matrix(paths, 16, cache, progress=False)
    assert len(asked) == 3 and len(asked[2]) == 1
    np.testing.assert_array_equal(again, full)
    assert (
        baselines.glcm_matrix(paths, 16, cache, progress=False).tolist() == full.tolist()
        and len(asked) == 3
    )


# ------------------------------------------------------------------------------ determinism


def relative_manifest(result: cu.CurationResult, root: Path) -> pd.DataFrame:
    """The manifest with the root folder removed from paths and messages."""
    m = result.manifest.copy()
    for col in ("full_path", "crop_path", "mask_path", "detail", "note"):
        m[col] = m[col].str.replace(str(root), "<root>", regex=False)
    return m


@pytest.mark.slow
def test_phantom_and_curation_deterministic(tmp_path):
    """The same phantom seed gives byte-identical files and an identical manifest; another seed does not."""
    from mcalc.data import phantom as ph

    manifests, roots = [], []
    for name in ("a", "b"):
        root = tmp_path / name
        ph.generate_phantom(root, ph.PhantomConfig(scale=0.02, seed=11, workers=1), progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tb.CurationWarning)
            manifests.append(relative_manifest(cu.curate(root, progress=False, workers=1), root))
        roots.append(root)
    pd.testing.assert_frame_equal(manifests[0], manifests[1])
    usable = manifests[0][manifests[0]["status"] == "ok"]
    for rel in usable["crop_path"].head(5):
        rel = rel.replace("<root>/", "")
        assert (roots[0] / rel).read_bytes() == (roots[1] / rel).read_bytes()
    other = ph.plan_phantom(ph.PhantomConfig(scale=0.02, seed=12))
    same = ph.plan_phantom(ph.PhantomConfig(scale=0.02, seed=11))
    assert {p["patient_id"] for p in other} != {p["patient_id"] for p in same}


@pytest.mark.slow
def test_glcm_baselines_cross_validation_deterministic():
    """cross_validated_proba twice with the same seed gives identical probabilities (SVM and k-NN)."""
    from mcalc.evaluate import baselines as bl

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    X = rng.normal(size=(60, 14)) + y[:, None] * 0.5
    groups = np.array([f"P_{i // 2:03d}" for i in range(60)])
    for make in (lambda: bl.make_svm(3), lambda: bl.make_knn(5)):
        a = bl.cross_validated_proba(X, y, make(), n_splits=5, seed=3, groups=groups)
        b = bl.cross_validated_proba(X, y, make(), n_splits=5, seed=3, groups=groups)
        np.testing.assert_array_equal(a, b)
        assert a.shape == (60, 3) and np.allclose(a.sum(axis=1), 1)


# ------------------------------------------------------------------------------ nothing loads pickles

PICKLE_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "dill",
    "joblib",
    "shelve",
    "marshal",
    "cloudpickle",
}


def unsafe_calls(source: str, name: str) -> list[str]:
    """Places in Python source that could run code from data: pickle modules, eval/exec, pickled np.load."""
    found = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            found += [
                f"{name}:{node.lineno} imports {m}"
                for m in mods
                if m.split(".")[0] in PICKLE_MODULES
            ]
        elif isinstance(node, ast.Call):
            func = node.func
            fname = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if fname in ("eval", "exec") and isinstance(func, ast.Name):
                found.append(f"{name}:{node.lineno} calls {fname}()")
            if fname in ("read_pickle", "to_pickle"):
                found.append(f"{name}:{node.lineno} calls {fname}()")
            keywords = {k.arg: k.value for k in node.keywords}
            if "allow_pickle" in keywords and not (
                isinstance(keywords["allow_pickle"], ast.Constant)
                and keywords["allow_pickle"].value is False
            ):
                found.append(f"{name}:{node.lineno} passes allow_pickle other than False")
            is_np_load = (
                isinstance(func, ast.Attribute)
                and func.attr == "load"
                and isinstance(func.value, ast.Name)
                and func.value.id in ("np", "numpy")
            )
            if is_np_load and "allow_pickle" not in keywords:
                found.append(f"{name}:{node.lineno} np.load without allow_pickle=False")
    return found


def test_unsafe_call_finder_finds_them():
    """The scanner flags each kind of unsafe call (so the next test can fail)."""
    snippets = [
        "import pickle",
        "from joblib import load",
        "eval('1')",
        "exec('x = 1')",
        "np.load('a.npy')",
        "np.load('a.npz', allow_pickle=True)",
        "pd.read_pickle('a')",
    ]
    for snippet in snippets:
        assert unsafe_calls(snippet, "snippet"), snippet
    assert (
        unsafe_calls(
            "np.load('a.npz', allow_pickle=False)\nmodel.evaluate(x)\nre.compile('x')", "ok"
        )
        == []
    )


def test_nothing_loads_pickles_or_evaluates_code():
    """mcalc, its notebooks and tools never unpickle, eval or exec; every np.load has allow_pickle=False."""
    files = [
        p
        for folder in ("mcalc", "notebooks", "tools")
        for p in sorted((REPO / folder).rglob("*.py"))
    ]
    assert any(p.name == "cache.py" for p in files)
    problems = [
        hit
        for p in files
        for hit in unsafe_calls(p.read_text(encoding="utf-8"), str(p.relative_to(REPO)))
    ]
    assert problems == []
    text = "\n".join(p.read_text(encoding="utf-8") for p in files)
    assert "allow_pickle=True" not in text and "pickle.load" not in text
