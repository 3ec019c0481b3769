"""What the reader sees: one table of metric display names, and the number formats of the book's tables.

A metric is named in code by its :class:`mcalc.evaluate.evaluation.Evaluation` field ("auc_pooled"), per class with
the class in brackets ("auc[BENIGN]"); the book shows :data:`METRIC_NAMES`' words instead. To name a
new metric, add one entry here.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

#: Code identifier → display name, for every metric the book shows (add new metrics here).
METRIC_NAMES = {
    "accuracy": "accuracy",
    "accuracy_standardised": "accuracy standardised to the paper's test mix",
    "malignant_sensitivity_at_spec80": "MALIGNANT sensitivity at specificity 0.8 (one-vs-rest)",
    "auc_pooled": "AUC (pooled, as the paper)",
    "auc_macro": "AUC (macro, one-vs-rest)",
    "auc": "AUC",
    "sensitivity_at_spec80": "sensitivity at specificity 0.8",
    "sensitivity_at_specificity": "sensitivity at specificity 0.8",
    "sensitivity_macro": "sensitivity (macro mean over classes)",
    "specificity_macro": "specificity (macro mean over classes)",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "loss_kl": "loss (KL divergence)",
    "loss": "loss (KL divergence)",
    "brier": "Brier score",
    "brier_score": "Brier score",
    "ece": "expected calibration error",
    "f1_macro": "F1 (macro)",
    "balanced_accuracy": "balanced accuracy",
}
#: The headline metrics of Table 4 and its kin, in the book's order (the paper's three and ours beside).
TABLE4_METRICS = (
    "accuracy",
    "accuracy_standardised",
    "auc_pooled",
    "auc_macro",
    "sensitivity_at_spec80",
    "brier",
)
PER_CLASS = re.compile(r"^(?P<metric>[a-z0-9_]+)\[(?P<cls>[A-Za-z0-9_]+)\]$")
#: Other column names as a reader should read them.
COLUMN_NAMES = {
    "ci_low": "CI low",
    "ci_high": "CI high",
    "n": "n",
    "n_rois": "ROIs",
    "n_lesions": "lesions",
    "n_patients": "patients",
}
SMALL = 1e-3  # non-zero values below this (in magnitude) are written in scientific notation
#: Column names that hold shares (a part of a whole): shown as percentages.
SHARE = re.compile(r"\b(share|fraction|proportion)\b|\(%\)|percent", re.IGNORECASE)


def metric_name(key: object) -> object:
    """The display name of a metric identifier ("auc[BENIGN]" → "AUC, BENIGN"); anything else unchanged."""
    if not isinstance(key, str):
        return key
    if key in METRIC_NAMES:
        return METRIC_NAMES[key]
    per_class = PER_CLASS.match(key)
    if per_class and per_class["metric"] in METRIC_NAMES:
        return f"{METRIC_NAMES[per_class['metric']]}, {per_class['cls']}"
    return key


def column_name(name: object) -> object:
    """A column or index name for the reader: a metric's display name, else underscores as spaces."""
    if not isinstance(name, str):
        return name
    if name in COLUMN_NAMES:
        return COLUMN_NAMES[name]
    shown = metric_name(name)
    return shown if shown != name else name.replace("_", " ")


def is_share(column: object) -> bool:
    """True for a column whose name says it holds shares (fractions of a whole)."""
    last = column[-1] if isinstance(column, tuple) else column
    first = column[0] if isinstance(column, tuple) else column
    return any(isinstance(c, str) and SHARE.search(c) for c in (first, last))


def integral(values) -> bool:
    """True for numbers that are all whole (a count), at least one of them 2 or more (not a 0/1 metric)."""
    finite = [float(v) for v in values if v is not None and not _missing(v)]
    return bool(finite) and all(v.is_integer() for v in finite) and max(map(abs, finite)) >= 2


def _missing(value: object) -> bool:
    """True for None or NaN."""
    try:
        return value is None or math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def number(value: object, precision: int = 3, *, count: bool = False, share: bool = False) -> str:
    """A number as the reader should read it: '—' when missing, a count as an integer ('1,546'), a share
    as a percentage ('69.8%'), a small non-zero value in scientific notation ('1.4e-07'), else
    ``precision`` decimals."""
    if _missing(value):
        return "—"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return str(value)
    v = float(value)
    if count:
        return f"{v:,.0f}"
    if share:
        return f"{100 * v:.1f}%"
    if v != 0 and abs(v) < SMALL:
        return f"{v:.1e}"
    return f"{v:.{precision}f}"


#: The columns of the official CBIS-DDSM calcification case-description tables: what each records
#: (Lee et al. 2017; the BI-RADS terms as in the ACR atlas). The book's data dictionary.
CASE_COLUMNS = {
    "patient_id": "the patient (P_00005); one patient may have several lesions and mammograms",
    "breast density": "BI-RADS breast density, 1 (almost entirely fatty) to 4 (extremely dense)",
    "left or right breast": "the breast side, LEFT or RIGHT",
    "image view": "the mammographic view: CC (cranio-caudal) or MLO (medio-lateral oblique)",
    "abnormality id": "the number of the abnormality within the mammogram (1, 2, …)",
    "abnormality type": "always 'calcification' in these tables (masses have their own)",
    "calc type": "BI-RADS calcification morphology (several joined by '-'): see the primer in chapter 1",
    "calc distribution": "BI-RADS distribution of the calcifications: see the primer in chapter 1",
    "assessment": "the radiologist's BI-RADS assessment category, 0 to 5",
    "pathology": "the label the paper classifies: BENIGN, BENIGN_WITHOUT_CALLBACK (not biopsied) or MALIGNANT",
    "subtlety": "how subtle the finding was judged, 1 (subtle) to 5 (obvious)",
    "image file path": "the full mammogram's DICOM file, relative to the download",
    "cropped image file path": "the cropped ROI's DICOM file (on disk, crop and mask are sometimes swapped)",
    "ROI mask file path": "the binary mask of the ROI on the full mammogram (DICOM)",
}


def data_dictionary(tables: dict) -> pd.DataFrame:
    """The data dictionary of the case-description CSVs (``split`` → path): per column what it records,
    its distinct values in both tables, and up to four of the most frequent."""
    import pandas as pd

    frames = [pd.read_csv(path, dtype=str) for path in tables.values()]
    rows = pd.concat(frames, ignore_index=True)
    out = []
    for column in rows.columns:
        values = rows[column].dropna().str.strip()
        distinct = values.nunique()
        common = values.value_counts().head(4).index.tolist() if distinct <= 60 else []
        unlisted = "(one per record)" if distinct == len(values) else "(too many to list)"
        out.append(
            {
                "column": column,
                "what it records": CASE_COLUMNS.get(
                    column, "not described (a column mcalc does not know)"
                ),
                "distinct values": values.nunique(),
                "most frequent": ", ".join(common) if common else unlisted,
            }
        )
    return pd.DataFrame(out).set_index("column")


def ci_cell(value: float | None, ci: tuple[float, float] | None = None) -> str:
    """'0.734 [0.690, 0.771]' (or the value alone, or '—' when there is none)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if ci is None or any(c is None or math.isnan(c) for c in ci):
        return f"{value:.3f}"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
