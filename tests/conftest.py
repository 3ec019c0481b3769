"""Shared test helpers and fixtures: one DICOM writer, the real tables beside the repository, phantoms,
the notebook outputs a display call makes.

Test modules import the plain helpers (``from conftest import write_dicom``); fixtures are found by
pytest. Fixtures that build a phantom are session-scoped and cached by their settings, so modules
asking for the same phantom share one.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pack_bits
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

REPO = Path(__file__).resolve().parents[1]
#: The real CBIS-DDSM case-description tables, read (never copied) from beside the repository.
SHARED_TABLES = REPO.parent / "shared" / "data" / "cbis-ddsm"
#: The official calcification tables' header, spelled out here (not taken from mcalc) so that the
#: tests that write tables check mcalc against the published schema.
CALC_HEADER = [
    "patient_id",
    "breast density",
    "left or right breast",
    "image view",
    "abnormality id",
    "abnormality type",
    "calc type",
    "calc distribution",
    "assessment",
    "pathology",
    "subtlety",
    "image file path",
    "cropped image file path",
    "ROI mask file path",
]


def shared_tables() -> Path:
    """The folder of the real CBIS-DDSM calcification tables, or skip the calling test with a reason."""
    needed = ("calc_case_description_train_set.csv", "calc_case_description_test_set.csv")
    if not all((SHARED_TABLES / name).is_file() for name in needed):
        pytest.skip(f"the real CBIS-DDSM case-description tables are not at {SHARED_TABLES}")
    return SHARED_TABLES


def curate_quietly(root: Path, **kwargs):
    """mcalc.data.curation.curate() without a progress bar, its exclusion warnings swallowed."""
    from mcalc.data import curation
    from mcalc.data.case_tables import CurationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CurationWarning)
        return curation.curate(root, progress=False, **kwargs)


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    bits_allocated: int | None = None,
    slope: float | None = None,
    intercept: float | None = None,
) -> Path:
    """Write an uncompressed single-frame greyscale mammography DICOM holding ``pixels``.

    uint8 pixels are stored in 8 bits, anything else as uint16 in 16 bits; ``bits_allocated=1``
    packs a 0/1 array into 1-bit pixel data. Missing parent folders are created.
    """
    bits = bits_allocated or (8 if pixels.dtype == np.uint8 else 16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, 0
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept or 0.0
    if bits == 1:
        ds.PixelData = pack_bits(pixels)
    else:
        dtype = np.uint8 if bits == 8 else np.uint16
        ds.PixelData = np.ascontiguousarray(pixels.astype(dtype)).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def textured_rois(
    root: Path, n: int, seed: int, shape: Callable[[int], tuple[int, int]]
) -> tuple[list[str], np.ndarray]:
    """``n`` rectangular 16-bit ROI DICOMs of three textures (label ``i % 3``): (paths, labels)."""
    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for i in range(n):
        label = i % 3
        h, w = shape(i)
        yy, xx = np.mgrid[0:h, 0:w]
        base = 2000 + 1500 * np.sin(xx / (3 + 4 * label)) * np.cos(yy / (5 + label))
        img = base + rng.normal(0, 300, (h, w)) + 800 * label
        paths.append(str(write_dicom(root / f"roi_{i:02d}.dcm", np.clip(img, 0, 65535))))
        labels.append(label)
    return paths, np.array(labels)


@pytest.fixture(scope="session")
def make_phantom(tmp_path_factory: pytest.TempPathFactory):
    """Generate (once per session and settings) a phantom: ``make_phantom(scale, seed, layout)`` → root."""
    from mcalc.data import phantom as ph

    made: dict[tuple[float, int, str], Path] = {}

    def make(scale: float, seed: int = 0, layout: str = "uid") -> Path:
        key = (scale, seed, layout)
        if key not in made:
            root = tmp_path_factory.mktemp(f"phantom_{layout}_{seed}") / "data"
            config = ph.PhantomConfig(scale=scale, seed=seed, workers=1, layout=layout)
            ph.generate_phantom(root, config, progress=False)
            made[key] = root
        return made[key]

    return make


def displayed(monkeypatch: pytest.MonkeyPatch, show: Callable, *args, **kwargs) -> list:
    """The notebook outputs (nbformat ``display_data``) that ``show(*args, **kwargs)`` displays, as a kernel records them."""
    import base64

    import IPython.display
    import nbformat
    from IPython.core.formatters import format_display_data

    outputs = []

    def record(obj, metadata=None, **_):
        data, md = format_display_data(obj)
        data = {
            k: base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in data.items()
        }
        outputs.append(
            nbformat.v4.new_output("display_data", data=data, metadata={**md, **(metadata or {})})
        )

    monkeypatch.setattr(IPython.display, "display", record)
    show(*args, **kwargs)
    return outputs


#: The backbone's input side in the tests: the smallest InceptionResNetV2 accepts (the fastest).
BACKBONE_SIZE = 75


@pytest.fixture(scope="session")
def random_weights():
    """The backbone's "random" weights (no file: a seeded initialisation), resolved once."""
    from mcalc.learn.weights import resolve_weights

    return resolve_weights("random")


@pytest.fixture(scope="session")
def shared_backbone(random_weights):
    """The one InceptionResNetV2 a test session builds (per xdist worker): 75 px, random weights, seed 0,
    with a copy of its initial weights. Building one takes seconds; use the ``backbone`` fixture."""
    from mcalc.learn.model import build_backbone

    backbone = build_backbone(BACKBONE_SIZE, random_weights, seed=0)
    return backbone, backbone.get_weights()


@pytest.fixture
def backbone(shared_backbone):
    """The shared backbone as built: its initial weights, frozen (a test that fine-tunes it changes both
    in place, and build_model leaves them as it finds them but for freezing)."""
    from mcalc.learn.finetune import set_backbone_trainable

    model, initial = shared_backbone
    set_backbone_trainable(model, "none")
    model.set_weights(initial)
    return model


def ci_executed(output: str) -> tuple[Path | None, Path | None, str]:
    """The CI profile's executed notebook ``output`` and its results folder, when ``make notebooks-ci``
    (which ``make test`` runs before the unit tests) left it up to date with the sources now: its
    recorded build key is the one these sources, parameters and data give, and the files it wrote
    are as it wrote them. Else (None, None, why), for the caller to execute its own or skip.

    A test that only checks what a notebook shows reads that execution instead of running the
    notebook again; the build key makes a stale one (an edit since) count as absent.
    """
    import contextlib

    from mcalc.records.cache import source_digest
    from mcalc.run import pipeline as pl
    from mcalc.run.profiles import get_profile
    from mcalc.run.rebuild import data_digest, up_to_date

    with contextlib.chdir(REPO):  # the profile's folders are relative to the repository
        profile = get_profile("ci")
        (run,) = [r for r in pl.plan(profile) if r.output == output]
        notebook = Path(profile.out_dir) / f"{output}.ipynb"
        if not notebook.is_file():
            return None, None, f"{notebook} is absent (make notebooks-ci writes it)"
        context = pl.BuildContext(source_digest(), data_digest(Path(profile.data_folder())))
        key = pl.execution_key(run, profile, context)
        if not up_to_date(notebook, key, Path(profile.results_dir), run.writes):
            return None, None, f"{notebook} is not up to date with the sources (make notebooks-ci)"
        return REPO / notebook, REPO / profile.results_dir, ""


# --------------------------------------------------------------------------------------------------
# What makes a test slow: markers (registered in pyproject.toml)

#: The causes a test's fixtures do not tell, by file (relative to tests/) and test name ("*": every
#: test of the file): ``backbone`` (builds an InceptionResNetV2, e.g. through compute_features, or
#: trains on one), ``kernel`` (starts a Jupyter kernel: papermill, a book build, a notebook sweep).
#: A test asking for ``backbone`` / ``shared_backbone`` is marked ``backbone`` without being listed.
#: ``MCALC_TEST_CAUSES=FILE pytest ...`` appends to FILE each test that started a kernel or built a
#: backbone in the test process, to check this table against.
SLOW_BECAUSE: dict[str, dict[str, tuple[str, ...]]] = {
    "chapters/test_steps_end_to_end.py": {"*": ("backbone",)},  # its phantom's features
    "test_study.py": {
        "test_two_class_data_set_runs_end_to_end_under_both_binary_tasks": ("backbone",),
        "test_binary_biopsied_on_three_class_data_reports_its_exclusions": ("backbone",),
    },
    "data/test_kaggle.py": {"test_ci_notebooks_run_on_a_kaggle_download": ("kernel", "backbone")},
    "report/test_present.py": {
        "test_a_failing_cell_is_one_line_and_the_kernel_log_is_kept": ("kernel",)
    },
    "run/test_parameters.py": {
        "test_papermill_with_a_bad_parameter_stops_at_the_check_naming_it": ("kernel",)
    },
    "run/test_rebuild.py": {
        "test_concurrent_executions_run_each_kernel_in_the_output_folder": ("kernel",)
    },
    "run/test_sweep.py": {
        "test_serial_sweep_resumes_retries_once_and_lists_failures": ("kernel",),
        "test_a_sweep_is_shown_as_a_table_and_a_figure_of_each_axis": ("kernel",),
        "test_local_cluster_survives_a_killed_worker_and_runs_a_duplicate_once": (
            "kernel",
            "cluster",
        ),
        "test_dask_sweep_of_the_optimizer_template_gives_the_serial_numbers": ("kernel", "cluster"),
        "test_a_damaged_record_is_run_again_and_force_runs_every_point": ("kernel",),
        "test_a_serial_sweep_keeps_one_warm_kernel_and_each_point_starts_clean": ("kernel",),
    },
    "run/test_sweep_cluster.py": {"*": ("kernel",)},
}

#: Markers that make a test slow (``make units`` leaves out -m "not slow").
SLOW_CAUSES = ("backbone", "kernel", "cluster")


@pytest.hookimpl(tryfirst=True)  # before -m selects (pytest's own hook)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with what makes it slow, and every such test ``slow``."""
    tests = Path(__file__).resolve().parent
    for item in items:
        if {"backbone", "shared_backbone"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.backbone)
        try:
            where = Path(str(item.path)).resolve().relative_to(tests).as_posix()
        except ValueError:
            where = ""
        name = getattr(item, "originalname", item.name)
        for test, causes in SLOW_BECAUSE.get(where, {}).items():
            if test in ("*", name):
                for cause in causes:
                    item.add_marker(getattr(pytest.mark, cause))
        if any(item.get_closest_marker(cause) for cause in SLOW_CAUSES):
            item.add_marker(pytest.mark.slow)


_RECORD: dict = {}  # MCALC_TEST_CAUSES: the file, the running test, what it started


def _record_causes() -> None:
    """Count kernel starts and backbone builds in this process, by the test running (its setup included)."""
    import keras
    from jupyter_client.manager import KernelManager

    pre_start, build = KernelManager._async_pre_start_kernel, keras.applications.InceptionResNetV2

    async def counted_pre_start(self, **kw):
        _RECORD["seen"].add("kernel")
        return await pre_start(self, **kw)

    def counted_build(*args, **kw):
        _RECORD["seen"].add("backbone")
        return build(*args, **kw)

    KernelManager._async_pre_start_kernel = counted_pre_start
    keras.applications.InceptionResNetV2 = counted_build


def pytest_sessionstart(session: pytest.Session) -> None:
    """With MCALC_TEST_CAUSES=FILE: record what each test starts (see SLOW_BECAUSE)."""
    import os

    if os.environ.get("MCALC_TEST_CAUSES"):
        _RECORD.update(file=os.environ["MCALC_TEST_CAUSES"], seen=set())
        _record_causes()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    """Write down what the test started (setup, call and teardown), and whether its markers say so."""
    if not _RECORD:
        return (yield)
    _RECORD["seen"] = set()
    try:
        return (yield)
    finally:
        marked = {c for c in SLOW_CAUSES if item.get_closest_marker(c)}
        with open(_RECORD["file"], "a", encoding="utf-8") as fh:
            for cause in sorted(_RECORD["seen"]):
                flag = "" if cause in marked else "  UNMARKED"
                fh.write(f"{item.nodeid} {cause}{flag}\n")
