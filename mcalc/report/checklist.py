"""The reporting checklist the book follows, item by item, as data; the appendix page is generated from it.

The checklist is CLAIM, the Checklist for Artificial Intelligence in Medical Imaging (Mongan, Moy and
Kahn, Radiology: Artificial Intelligence 2020), not TRIPOD+AI: this study evaluates an image
classifier of mammographic ROIs on a public imaging collection, and CLAIM's items are the ones such a
study has to answer (the images' source and preprocessing, the reference standard and who annotated
it, the partition level — patient, image or lesion —, the model's architecture, initialisation and
training, how the final model was chosen). TRIPOD+AI is written for clinical prediction models of
individual patients' outcomes from predictors, with items (participants' recruitment, predictor
measurement, sample size for a prediction model, model updating) that a ROI classifier on a
retrospective public collection leaves mostly empty.

Every item says where the book reports it — a page (``book/….md``) or a chapter template
(``notebooks/….py``) and a heading on it — or that it does not and why. The item names paraphrase
CLAIM's topics. ``tests/test_checklist.py`` fails when an item points at a heading that no longer
exists. :func:`write_page` writes the appendix page (the book build calls it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PAGE",
    "Item",
    "ITEMS",
    "missing_sections",
    "page",
    "write_page",
]

#: The checklist this module walks, as the page names it.
CHECKLIST = "CLAIM (Checklist for Artificial Intelligence in Medical Imaging, 2020)"
#: Where the page is written, relative to the book's source folder (beside the executed chapters).
PAGE = Path("book/executed/checklist.md")

METHODS = "book/methods.md"
INTRO = "book/intro.md"
CH1 = "notebooks/01_data_curation.py"
CH2 = "notebooks/02_preprocessing.py"
CH3 = "notebooks/03_optimizer.py"
CH4 = "notebooks/04_glcm_baselines.py"
CH5 = "notebooks/05_comparison.py"
CH6 = "notebooks/06_leakage_audit.py"
CH7 = "notebooks/07_seed_variance.py"
CH8 = "notebooks/08_copies.py"


@dataclass(frozen=True)
class Item:
    """One checklist item: its number and topic, where the book reports it, or why it does not."""

    number: int
    topic: str
    #: (file, heading) pairs where the book reports it (empty: not reported)
    where: tuple[tuple[str, str], ...] = ()
    #: what the book says there, or why it reports nothing
    note: str = ""


ITEMS: tuple[Item, ...] = (
    Item(1, "Title or abstract names the AI method", ((INTRO, ""),), "the book's title page"),
    Item(
        2,
        "Structured summary",
        ((INTRO, ""), (CH5, "Verdict: one row per claim of the plan")),
        "the verdict on each claim at the top of the first page, in place of an abstract",
    ),
    Item(
        3,
        "Scientific and clinical background",
        ((CH1, "Sample ROIs per class, and what the radiologist's words mean"),),
        "a short primer on BI-RADS calcification morphology and distribution beside the sample ROIs; "
        "the clinical background beyond it is the paper's",
    ),
    Item(
        4,
        "Objectives and hypotheses",
        ((CH5, "The analysis plan, fixed before any result"),),
        "the paper's claims, each with the quantity, margin and test fixed before the data",
    ),
    Item(
        5,
        "Study design (retrospective, prospective)",
        ((METHODS, "The pipeline, as reproduced"),),
        "a retrospective reanalysis of a public collection",
    ),
    Item(6, "Study goal (model creation, feasibility, reproduction)", ((INTRO, ""),)),
    Item(7, "Data sources", ((METHODS, "The pipeline, as reproduced"), (CH1, ""))),
    Item(
        8,
        "Eligibility: inclusion and exclusion",
        ((CH1, "What curation excluded or corrected"),),
        "every exclusion recorded with its reason",
    ),
    Item(
        9,
        "Data preprocessing",
        ((METHODS, "Assumptions the paper leaves open"), (CH2, "")),
    ),
    Item(
        10,
        "Selection of data subsets",
        ((CH1, "Table 1 — images per class, training and testing"),),
    ),
    Item(
        11,
        "Definitions of data elements (labels, descriptors)",
        ((CH1, "The metadata behind the labels"),),
    ),
    Item(
        12,
        "De-identification",
        (),
        "not reported: the public collection is de-identified by its publisher; no new images are shared",
    ),
    Item(
        13,
        "Handling of missing data",
        ((CH1, "What curation excluded or corrected"),),
        "missing or unreadable files are recorded exclusions, never silent drops",
    ),
    Item(
        14,
        "Reference standard (ground truth) definition",
        ((METHODS, "A reference point: the labels and the BI-RADS assessment"),),
    ),
    Item(
        15,
        "Rationale for the reference standard",
        ((METHODS, "A reference point: the labels and the BI-RADS assessment"),),
        "the collection's pathology labels, as the paper used them",
    ),
    Item(
        16,
        "Who annotated the reference standard, and their qualifications",
        (),
        "not reported: set by the collection's publishers, not by this study",
    ),
    Item(17, "Annotation tools", (), "not applicable: no new annotation"),
    Item(18, "Inter- and intra-rater variability", (), "not applicable: no new annotation"),
    Item(
        19,
        "Data partitions and their sizes",
        (
            (CH1, "Table 1 — images per class, training and testing"),
            (CH1, "Patients, lesions and views"),
        ),
    ),
    Item(
        20,
        "Level of partition (patient, image, lesion)",
        ((METHODS, "Uncertainty: patients, not ROIs"), (CH6, "")),
        "patient-disjoint splits; the leakage audit measures ROI-level splitting",
    ),
    Item(
        21,
        "Intended sample size and how it was set",
        ((METHODS, "Uncertainty: patients, not ROIs"),),
        "fixed by the collection; what it can detect is stated with each interval",
    ),
    Item(22, "Model description", ((CH2, "Table 2 — the architecture, read off the built model"),)),
    Item(23, "Software libraries and versions", ((INTRO, "How to re-run it"),)),
    Item(
        24,
        "Initialisation of model parameters",
        ((CH2, "Backbone features, computed once and cached"),),
        "ImageNet weights, frozen; the provenance label says when they were random",
    ),
    Item(
        25,
        "Training details (optimizer, schedule, augmentation, stopping)",
        ((METHODS, "The pipeline, as reproduced"), (CH3, "")),
    ),
    Item(
        26,
        "How the final model was selected",
        ((CH5, "What could explain 94% and AUC 0.96 on the official split?"),),
        "chosen on a validation split grouped by patient; choosing on the test set is measured",
    ),
    Item(27, "Ensembling", (), "not applicable: no ensembles"),
    Item(28, "Performance metrics", ((METHODS, "Uncertainty: patients, not ROIs"),)),
    Item(
        29,
        "Statistical measures of significance and uncertainty",
        (
            (METHODS, "Uncertainty: patients, not ROIs"),
            (CH5, "The network against the classical baselines, paired"),
        ),
    ),
    Item(
        30,
        "Robustness or sensitivity analysis",
        (
            (CH5, "Sensitivity analyses, pre-stated in the plan"),
            (CH6, ""),
            (CH7, ""),
            (CH8, "The paired differences of every Table 4 metric"),
        ),
        "the plan's pre-stated sensitivity analyses, the leakage audit, seed and optimizer variance, "
        "and the two copies of the data (DICOM and Kaggle JPEG)",
    ),
    Item(31, "Methods for explainability", (), "not reported: no saliency or explanation method"),
    Item(
        32,
        "Validation on external data",
        (),
        "not reported: no external test set; the official test split comes from the same collection",
    ),
    Item(
        33,
        "Flow of participants or cases",
        ((CH1, "What curation excluded or corrected"), (CH1, "Patients, lesions and views")),
    ),
    Item(
        34,
        "Demographic and clinical characteristics",
        ((CH1, "The metadata behind the labels"),),
        "BI-RADS assessment and pathology only: the collection carries no demographics",
    ),
    Item(
        35,
        "Performance on all partitions",
        ((CH3, "Table 3 and Table 4 rows for this optimizer, beside the paper's"),),
    ),
    Item(
        36,
        "Estimates of performance with their precision",
        ((CH3, "All metrics on the official test split, per class"),),
        "patient-level 95% intervals beside the patients, lesions and ROIs they rest on",
    ),
    Item(
        37,
        "Failure analysis",
        ((CH3, "All metrics on the official test split, per class"),),
        "confusion matrices per model",
    ),
    Item(38, "Limitations", ((INTRO, "What produced these pages: read this first"),)),
    Item(
        39, "Implications for practice", (), "not reported: a reproduction makes no clinical claim"
    ),
    Item(40, "Registration", (), "not applicable: no registered study"),
    Item(
        41,
        "Where the full protocol can be accessed",
        ((INTRO, "The results as data"),),
        "the code, the run records and the notebooks are the protocol",
    ),
    Item(42, "Sources of funding", (), "not reported: none"),
)


def _headings(path: Path) -> list[str]:
    """The headings of a Markdown page or a jupytext chapter template (its ``# ##`` markdown lines)."""
    prefix = "# " if Path(path).suffix == ".py" else ""  # a template's markdown lines start "# "
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        m = re.match(rf"^{prefix}#{{1,6}} (.+?)\s*$", line)
        if m:
            out.append(m.group(1))
    return out


def missing_sections(root: Path, items: tuple[Item, ...] = ITEMS) -> list[str]:
    """'item N: FILE § HEADING' for every place an item points at that does not exist under ``root``."""
    missing = []
    for item in items:
        for file, heading in item.where:
            path = Path(root) / file
            if not path.is_file():
                missing.append(f"item {item.number}: {file} (no such file)")
            elif heading and heading not in _headings(path):
                missing.append(f"item {item.number}: {file} § {heading}")
    return missing


def _link(file: str, heading: str) -> str:
    """A link from the page (beside the executed chapters) to the file, naming the section."""
    stem = Path(file).stem
    executed = {"03_optimizer": "03_optimizer_adam"}.get(stem, stem)  # one template, four chapters
    target = f"{executed}.ipynb" if file.startswith("notebooks/") else f"../{Path(file).name}"
    label = f"chapter {stem[:2].lstrip('0')}" if file.startswith("notebooks/") else stem
    return f"[{label}]({target})" + (f", “{heading}”" if heading else "")


def page(items: tuple[Item, ...] = ITEMS) -> str:
    """The appendix page: one table row per item, where the book reports it or why not."""
    lines = [
        "# Appendix: reporting checklist",
        "",
        f"This page walks {CHECKLIST} item by item (topics paraphrased): where the book reports each, "
        "or that it does not and why. CLAIM rather than TRIPOD+AI because this is an imaging AI "
        "study of a public image collection, whose questions (image preprocessing, reference "
        "standard, partition level, model initialisation and selection) are CLAIM's; TRIPOD+AI is "
        "written for prediction models of patients' outcomes. The page is generated from "
        "`mcalc.report.checklist`, and a test fails when an item points at a section that no longer "
        "exists.",
        "",
        "| item | topic | where the book reports it | note |",
        "|---|---|---|---|",
    ]
    for item in items:
        where = "; ".join(_link(f, h) for f, h in item.where) or "—"
        lines.append(f"| {item.number} | {item.topic} | {where} | {item.note} |")
    reported = sum(bool(i.where) for i in items)
    lines += ["", f"{reported} of {len(items)} items are reported; the others say why not.", ""]
    return "\n".join(lines)


def write_page(source: Path) -> Path:
    """Write the checklist page under a book source folder; return its path."""
    target = Path(source) / PAGE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page(), encoding="utf-8")
    return target
