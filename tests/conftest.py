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

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", curation.CurationWarning)
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
