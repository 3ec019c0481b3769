"""Offline CBIS-DDSM-shaped phantom: the study's embedded default data set.

No CBIS-DDSM image can be downloaded offline, so mcalc generates a stand-in with the layout of a
real download: the official calcification case-description CSVs at the top of a folder, and below
``CBIS-DDSM/`` one DICOM file per full mammogram and one cropped ROI plus one ROI mask per
abnormality, together with ``phantom.json`` (generator version, configuration, seed; it marks the
folder as a phantom) and ``quirks.csv`` (the download faults injected on purpose).

Sizes and descriptors are sampled from figures derived from the real tables shipped with mcalc
(``mcalc/data/calc_case_description_{train,test}_set.csv``; see :mod:`mcalc.data.calibration`):
split x pathology x calc type x distribution x assessment x subtlety x density, and per split and
pathology the real patients' layouts (breasts, lesions seen in both CC and MLO or in one view), so that
ROIs cluster into patients per class as in the real tables. ``scale=1`` gives the real sizes (1546 +
326 ROIs) and the real numbers of patients and lesions per split and class.

Pixels depend on the rendering descriptors only (calc type, calc distribution, subtlety, breast
density, view): pathology and assessment never reach the renderer, so any class information in the
images comes through the descriptors, as in real data. The parenchyma is power-law (1/f^beta, beta=3)
noise whose glandular fraction grows with density; calcifications are drawn as spheres, shells and
capsules whose size, count and arrangement follow the BI-RADS calc type and distribution, with a
contrast set by subtlety. Every lesion is defined in millimetres and drawn twice: on the fine grid of
its crop and, block-averaged, on the coarse grid of the full image, so both agree. A lesion seen in
CC and MLO is the same particle set, rotated and compressed differently.

The package's modules: :mod:`~mcalc.data.phantom.config` (settings, names, calibration),
:mod:`~mcalc.data.phantom.breast` (parenchyma), :mod:`~mcalc.data.phantom.lesions` (calcifications),
:mod:`~mcalc.data.phantom.plan` (patients, lesions, file names), :mod:`~mcalc.data.phantom.render` (one
patient's images), :mod:`~mcalc.data.phantom.writing` (DICOM, JPEG, CSVs, quirks) and
:mod:`~mcalc.data.phantom.generate` (the whole phantom: generate, ensure, verify) and
:mod:`~mcalc.data.phantom.store` (one folder per layout, scale and seed; the digest of the code that writes it).
"""

from __future__ import annotations

from mcalc.data.phantom.breast import (
    parenchyma,
)
from mcalc.data.phantom.config import (
    CSV_HEADER,
    CSV_NAMES,
    DICOM_ROOT,
    LAYOUTS,
    MAX_SCALE,
    OWNED_NAMES,
    PHANTOM_VERSION,
    QUIRK_COLUMNS,
    QUIRK_KINDS,
    SPLIT_PREFIX,
    PhantomConfig,
    PhantomSummary,
    load_calibration,
    load_structure,
)
from mcalc.data.phantom.generate import (
    check_room,
    ensure_phantom,
    estimate_bytes,
    generate_phantom,
    phantom_files,
    verify_phantom,
)
from mcalc.data.phantom.lesions import (
    lesion_particles,
    render_roi,
)
from mcalc.data.phantom.plan import (
    plan_phantom,
)
from mcalc.data.phantom.render import (
    render_patient,
)
from mcalc.data.phantom.store import (
    PHANTOM_STORE,
    generator_code,
    phantom_folder,
)

__all__ = [
    "CSV_HEADER",
    "CSV_NAMES",
    "DICOM_ROOT",
    "LAYOUTS",
    "MAX_SCALE",
    "OWNED_NAMES",
    "PHANTOM_STORE",
    "PHANTOM_VERSION",
    "PhantomConfig",
    "PhantomSummary",
    "QUIRK_COLUMNS",
    "QUIRK_KINDS",
    "SPLIT_PREFIX",
    "check_room",
    "ensure_phantom",
    "estimate_bytes",
    "generate_phantom",
    "generator_code",
    "lesion_particles",
    "load_calibration",
    "load_structure",
    "parenchyma",
    "phantom_files",
    "phantom_folder",
    "plan_phantom",
    "render_patient",
    "render_roi",
    "verify_phantom",
]
