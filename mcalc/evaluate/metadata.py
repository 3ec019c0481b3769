"""Metadata-only results, computed from the real CBIS-DDSM calcification tables shipped with mcalc.

Nothing here needs a pixel, so every build computes these on the official tables
(``mcalc/data/calc_case_description_{train,test}_set.csv``, read by :mod:`mcalc.data.curation`'s reader),
whatever data the images come from, under their own provenance label
(:data:`mcalc.records.provenance.REAL_TABLES_LABEL`):

* :func:`table1` — ROIs per class and split: ours from the real tables, the paper's, and, when a
  real download was curated, its usable ROIs after exclusions;
* :func:`structure` — ROIs (CC / MLO), lesions (seen in both views), mammograms and patients per class
  and split (a lesion is patient, side and abnormality id, as in :func:`mcalc.learn.splits.leakage_report`);
* :func:`reference_rules` — the BI-RADS assessment reference rule and the majority class (learned on
  the official training table, evaluated on the test table) with patient-level bootstrap CIs;
* :func:`leakage_structure` — how many test ROIs of each split scheme have the other view of their
  lesion, another lesion of the breast, their mammogram or their patient in training, and what the
  assessment rule reaches on each scheme's test side;
* :func:`lesion_matching` — how far CC/MLO lesion matching by abnormality id holds (it is presumed);
* :func:`check_download` — a user's curated tables against the shipped ones (same records, or the
  differences, e.g. an updated release).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mcalc import paper
from mcalc.data.calibration import shipped_tables
from mcalc.data.case_tables import read_case_table
from mcalc.data.curation import CurationResult
from mcalc.errors import DataError
from mcalc.evaluate.clusters import cluster_ids
from mcalc.evaluate.evaluation import Evaluation, evaluate
from mcalc.learn.splits import (
    SPLIT_SCHEMES,
    leakage_report,
    lesion_matching_report,
    patient_grouped_split,
    roi_level_split,
)
from mcalc.names import ci_cell
from mcalc.records.provenance import REAL_TABLES, Provenance
from mcalc.study import CLASSES, N_BOOT, SPLITS

__all__ = [
    "RECORD_FIELDS",
    "SPLIT_NAMES",
    "SOURCE_DETAIL",
    "provenance",
    "read_real_tables",
    "class_counts",
    "table1",
    "structure",
    "assessment_crosstab",
    "MAJORITY",
    "ASSESSMENT",
    "ReferenceRules",
    "reference_rules",
    "scheme_sides",
    "leak_cells",
    "leakage_structure",
    "lesion_matching",
    "DownloadCheck",
    "check_download",
    "majority_baseline",
    "assessment_rule_table",
    "assessment_rule",
]

#: Fields of a record compared between the shipped tables and a user's download.
RECORD_FIELDS = (
    "patient_id",
    "side",
    "view",
    "abnormality_id",
    "pathology",
    "calc_type",
    "calc_distribution",
    "assessment",
    "subtlety",
    "density",
)
SPLIT_NAMES = {"train": "training", "test": "testing"}
SOURCE_DETAIL = "official calc tables, TCIA 2017 release, shipped with mcalc"


def provenance() -> Provenance:
    """The provenance of every result of this module: the shipped real tables, metadata only."""
    return Provenance(data=REAL_TABLES, data_detail=SOURCE_DETAIL)


def read_real_tables(tables: dict[str, Path] | None = None) -> pd.DataFrame:
    """Both official calc tables (default: the shipped ones) as manifest rows, train then test."""
    tables = shipped_tables() if tables is None else tables
    rows = pd.concat(
        [read_case_table(Path(tables[split]), split, "calc") for split in SPLITS],
        ignore_index=True,
    )
    bad = rows[rows["status"] != "ok"]
    if len(bad):
        first = bad.iloc[0]
        raise DataError(
            f"{first['source_file']} line {first['source_line']}: {first['detail']} "
            "(the real CBIS-DDSM tables should have no unusable record)"
        )
    return rows


def class_counts(rows: pd.DataFrame) -> pd.DataFrame:
    """ROIs per class (rows, paper order) and split (columns)."""
    return (
        pd.crosstab(rows["pathology"], rows["split"])
        .reindex(index=list(paper.PAPER_CLASS_ORDER), columns=list(SPLITS), fill_value=0)
        .astype(int)
    )


def table1(
    curation: CurationResult | None = None, rows: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Table 1: ROIs per class and split from the real tables, the paper's, and a curated download's usable ROIs."""
    rows = read_real_tables() if rows is None else rows
    ours = class_counts(rows)
    printed = paper.table1().reindex(list(paper.PAPER_CLASS_ORDER))
    columns = {}
    for split in SPLITS:
        columns[("official CBIS-DDSM tables (ours)", SPLIT_NAMES[split])] = ours[split]
    columns[("paper", "training")] = printed["Training"]
    columns[("paper", "testing")] = printed["Testing"]
    if curation is not None and not curation.is_phantom:
        usable = class_counts(curation.usable())
        for split in SPLITS:
            columns[("your download, usable after curation", SPLIT_NAMES[split])] = usable[split]
    out = pd.DataFrame(columns, index=pd.Index(paper.PAPER_CLASS_ORDER, name="class"))
    out.loc["total"] = out.sum()
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out.astype(int)


def _lesion_id(rows: pd.DataFrame) -> pd.Series:
    """One lesion per patient, side and abnormality id (its CC and MLO views share them)."""
    return cluster_ids(rows)[1]


def structure(rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per split and class (and all classes): ROIs, CC and MLO ROIs, lesions, lesions in both views, mammograms, patients."""
    rows = read_real_tables() if rows is None else rows
    rows = rows.assign(_lesion=_lesion_id(rows))
    out = {}
    for split in SPLITS:
        in_split = rows[rows["split"] == split]
        for cls in (*CLASSES, "all classes"):
            sub = in_split if cls == "all classes" else in_split[in_split["pathology"] == cls]
            views = sub.groupby("_lesion")["view"].nunique()
            out[(split, cls)] = {
                "ROIs": len(sub),
                "CC ROIs": int((sub["view"] == "CC").sum()),
                "MLO ROIs": int((sub["view"] == "MLO").sum()),
                "lesions": len(views),
                "lesions seen in both views": int((views == 2).sum()),
                "mammograms": int(sub["image_id"].nunique()),
                "patients": int(sub["patient_id"].nunique()),
            }
    table = pd.DataFrame(out).T.astype(int)
    table.index.names = ["split", "class"]
    return table


def assessment_crosstab(rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """ROIs by split and BI-RADS assessment (rows) and pathology (columns)."""
    rows = read_real_tables() if rows is None else rows
    return pd.crosstab([rows["split"], rows["assessment"].astype(int)], rows["pathology"]).reindex(
        columns=list(CLASSES), fill_value=0
    )


def _evaluate(test: pd.DataFrame, proba: np.ndarray, n_boot: int, seed: int) -> Evaluation:
    """Test probabilities of a rule evaluated with patient-level bootstrap CIs (ROIs, lesions, patients counted)."""
    patients, lesions = cluster_ids(test)
    return evaluate(
        test["label"].to_numpy(dtype=int),
        proba,
        n_boot=n_boot,
        seed=seed,
        groups=patients,
        lesions=lesions,
    )


def _evaluate_rule(train: pd.DataFrame, test: pd.DataFrame, n_boot: int, seed: int) -> Evaluation:
    """The assessment rule learned on ``train``, evaluated on ``test`` with patient-level bootstrap CIs."""
    return _evaluate(test, assessment_rule(train, test), n_boot, seed)


#: Names of the two reference rules, as their table rows show them.
MAJORITY = "Majority class"
ASSESSMENT = "BI-RADS assessment only (metadata rule)"


@dataclass
class ReferenceRules:
    """The two rules that never see an image, on the real tables: the assessment rule itself and both test evaluations."""

    rule: (
        pd.DataFrame
    )  # per assessment value: training counts, smoothed probabilities, the rule's class
    evaluations: dict[str, Evaluation]  # MAJORITY and ASSESSMENT, on the official test table

    @property
    def evaluation(self) -> Evaluation:
        """The assessment rule's test evaluation."""
        return self.evaluations[ASSESSMENT]

    def table(self) -> pd.DataFrame:
        """One row per rule: test metrics with patient-level CIs, and the ROIs, lesions, patients they rest on."""
        rows = {}
        for name, ev in self.evaluations.items():
            rows[name] = {
                "accuracy": ci_cell(ev.accuracy, ev.ci.get("accuracy")),
                "AUC (pooled, as the paper's)": ci_cell(ev.auc_pooled, ev.ci.get("auc_pooled")),
                "AUC (macro one-vs-rest)": ci_cell(ev.auc_macro, ev.ci.get("auc_macro")),
                "sensitivity at specificity 0.8": ci_cell(
                    ev.sensitivity_at_spec80, ev.ci.get("sensitivity_at_spec80")
                ),
                f"sensitivity {CLASSES[1]}": ci_cell(
                    ev.sensitivity[CLASSES[1]], ev.ci.get(f"sensitivity[{CLASSES[1]}]")
                ),
                "test ROIs / lesions / patients": f"{ev.n} / {ev.n_lesions} / {ev.n_patients}",
                "intervals": ev.ci_note(),
            }
        out = pd.DataFrame(rows).T
        out.index.name = "rule (official split)"
        return out


def reference_rules(
    rows: pd.DataFrame | None = None, n_boot: int = N_BOOT, seed: int = 0
) -> ReferenceRules:
    """The majority class and the assessment rule, learned on the official training table, evaluated on the test table."""
    rows = read_real_tables() if rows is None else rows
    train, test = rows[rows["split"] == "train"], rows[rows["split"] == "test"]
    majority = majority_baseline(train["label"].to_numpy(dtype=int), len(test))
    return ReferenceRules(
        rule=assessment_rule_table(train),
        evaluations={
            MAJORITY: _evaluate(test, majority, n_boot, seed),
            ASSESSMENT: _evaluate_rule(train, test, n_boot, seed),
        },
    )


def scheme_sides(rows: pd.DataFrame, scheme: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(training-side, test) positions of ``rows`` under a split scheme (validation belongs to training)."""
    if scheme == "official":
        split = rows["split"].to_numpy()
        return np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    splitter = {"roi_level": roi_level_split, "patient_grouped": patient_grouped_split}.get(scheme)
    if splitter is None:
        raise ValueError(f"scheme must be one of {', '.join(SPLIT_SCHEMES)}, not {scheme!r}")
    train, test = splitter(rows, test_fraction=0.2, seed=seed)
    return np.asarray(train), np.asarray(test)


def leak_cells(report: dict) -> dict[str, str | int]:
    """A leakage report as table cells: counts of test ROIs with their share."""
    n = report["n_test"]
    cells: dict[str, str | int] = {"training ROIs": int(report["n_train"]), "test ROIs": int(n)}
    for key, label in (
        ("same_lesion_other_view", "presumed same lesion, other view"),
        ("same_breast_other_view", "same breast, other view"),
        ("same_image", "same mammogram"),
        ("same_patient", "same patient"),
    ):
        cells[f"{label} in training"] = f"{int(report[key])} ({report[key] / n:.0%})" if n else "0"
    cells["patients on both sides"] = int(report["shared_patients"])
    return cells


def leakage_structure(
    rows: pd.DataFrame | None = None, seed: int = 0, n_boot: int = N_BOOT
) -> pd.DataFrame:
    """Per split scheme: test ROIs with a relative in training, and the assessment rule's test accuracy there."""
    rows = read_real_tables() if rows is None else rows
    out = {}
    for scheme, name in SPLIT_SCHEMES.items():
        train_pos, test_pos = scheme_sides(rows, scheme, seed)
        train, test = rows.iloc[train_pos], rows.iloc[test_pos]
        cells = leak_cells(leakage_report(train, test))
        rule = _evaluate_rule(train, test, n_boot, seed)
        bwc = test["pathology"] == CLASSES[1]
        cells["assessment-rule accuracy"] = ci_cell(rule.accuracy, rule.ci.get("accuracy"))
        cells[f"test {CLASSES[1]} with assessment 2"] = (
            f"{int((test.loc[bwc, 'assessment'] == 2).sum())} / {int(bwc.sum())}"
        )
        out[name] = cells
    table = pd.DataFrame(out).T
    table.index.name = "split scheme"
    return table


def lesion_matching(rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per split: breasts whose CC and MLO views hold different numbers of ROIs, id-matched pairs of differing pathology."""
    rows = read_real_tables() if rows is None else rows
    labels = {
        "breasts_two_views": "breasts seen in both views",
        "breasts_count_mismatch": "… whose CC and MLO views hold different numbers of ROIs",
        "id_pairs": "(patient, side, abnormality id) present in both views",
        "id_pairs_pathology_mismatch": "… whose CC and MLO pathologies differ",
        "id_pairs_unmatched": "ids of a two-view breast present in one view only",
    }
    out = {
        SPLIT_NAMES[split]: lesion_matching_report(rows[rows["split"] == split]) for split in SPLITS
    }
    table = pd.DataFrame(out).rename(index=labels)
    table.index.name = "lesion matching by abnormality id"
    return table


@dataclass
class DownloadCheck:
    """A curated download's tables against the shipped ones: counts per split, the differing records, a note."""

    summary: pd.DataFrame
    differences: pd.DataFrame
    note: str


def _records(rows: pd.DataFrame) -> pd.DataFrame:
    """The compared fields of every row, indexed by split and ROI id (text, missing as '')."""
    out = rows[["split", "roi_id", *RECORD_FIELDS]].copy()
    for col in RECORD_FIELDS:
        out[col] = out[col].astype("string").fillna("")
    return out.drop_duplicates(["split", "roi_id"]).set_index(["split", "roi_id"])


def check_download(curation: CurationResult, rows: pd.DataFrame | None = None) -> DownloadCheck:
    """Compare a curated download's table records with the shipped real tables (splits present in the download)."""
    if curation.is_phantom:
        return DownloadCheck(
            pd.DataFrame(),
            pd.DataFrame(),
            "The data are the offline phantom: there is no download to check against the shipped tables.",
        )
    rows = read_real_tables() if rows is None else rows
    mine = curation.manifest[curation.manifest["roi_id"].str.startswith("Calc-")]
    theirs, shipped = _records(mine), _records(rows)
    summary, diffs = {}, []
    for split in SPLITS:
        if split not in set(mine["split"]):
            continue
        a, b = shipped.loc[split], theirs.loc[split]
        common = a.index.intersection(b.index)
        differ = (a.loc[common] != b.loc[common]).any(axis=1)
        for roi in common[differ.to_numpy()]:
            for col in RECORD_FIELDS:
                if a.at[roi, col] != b.at[roi, col]:
                    diffs.append((split, roi, col, a.at[roi, col], b.at[roi, col]))
        for roi in a.index.difference(b.index):
            diffs.append((split, roi, "(record)", "present", "absent"))
        for roi in b.index.difference(a.index):
            diffs.append((split, roi, "(record)", "absent", "present"))
        summary[SPLIT_NAMES[split]] = {
            "records in the shipped table": len(a),
            "records in your table": len(b),
            "same records": int((~differ).sum()),
            "records with other values": int(differ.sum()),
            "only in the shipped table": len(a.index.difference(b.index)),
            "only in your table": len(b.index.difference(a.index)),
        }
    summary_frame = pd.DataFrame(summary).T
    summary_frame.index.name = "split"
    differences = pd.DataFrame(
        diffs, columns=["split", "roi_id", "field", "shipped tables", "your tables"]
    )
    checked = " and ".join(summary)
    if differences.empty:
        note = (
            f"Your {checked} table(s) hold the same records as the shipped 2017 release: the "
            "metadata-only results of this book describe your data too."
        )
    else:
        n_other = int(summary_frame["records with other values"].sum())
        note = (
            f"Your {checked} table(s) differ from the shipped 2017 release (an updated or edited "
            f"release?): {int(summary_frame['only in your table'].sum())} record(s) only in yours, "
            f"{int(summary_frame['only in the shipped table'].sum())} only in the shipped tables, "
            f"{n_other} with other values. The metadata-only results come from the shipped tables, "
            "the image-based results from yours."
        )
    return DownloadCheck(summary_frame, differences, note)


def majority_baseline(
    y_train: np.ndarray, n_test: int, n_classes: int = len(CLASSES)
) -> np.ndarray:
    """Every test row gets the training class frequencies (argmax = majority class, AUC = 0.5)."""
    y = np.asarray(y_train, dtype=np.int64)
    if y.size == 0:
        raise DataError("majority_baseline: y_train is empty")
    freq = np.bincount(y, minlength=n_classes)[:n_classes] / len(y)
    return np.tile(freq, (int(n_test), 1))


def _manifest_labels(
    manifest: pd.DataFrame, what: str, classes: Sequence[str] = CLASSES
) -> np.ndarray:
    """Integer labels from the ``label`` column, or from ``pathology`` names when there is no label."""
    if "label" in manifest.columns:
        y = manifest["label"]
        if y.isna().any():
            raise DataError(
                f"{what}: missing label in row {manifest.index[y.isna().to_numpy()][0]!r}"
            )
        return y.to_numpy().astype(np.int64)
    if "pathology" not in manifest.columns:
        raise DataError(f"{what}: needs a 'label' or 'pathology' column")
    index = {c: k for k, c in enumerate(classes)}
    y = manifest["pathology"].map(index)
    if y.isna().any():
        row = manifest.index[y.isna().to_numpy()][0]
        raise DataError(
            f"{what}: unknown pathology {manifest.loc[row, 'pathology']!r} in row {row!r}"
        )
    return y.to_numpy().astype(np.int64)


def assessment_rule_table(
    manifest_train: pd.DataFrame, alpha: float = 1.0, classes: Sequence[str] = CLASSES
) -> pd.DataFrame:
    """Per BI-RADS assessment value: training class counts, smoothed probabilities and the rule's class.

    Probabilities are (count + alpha) / (total + alpha · n_classes) (additive smoothing); the rule's
    class is the most frequent class (ties to the first in class order). A last row ``"*"`` holds the
    overall training frequencies, used for assessment values never seen in training.
    """
    what = "assessment_rule (train)"
    if "assessment" not in manifest_train.columns:
        raise DataError(f"{what}: missing column 'assessment'")
    y = _manifest_labels(manifest_train, what, classes)
    a = manifest_train["assessment"]
    if a.isna().any():
        raise DataError(
            f"{what}: missing assessment in row {manifest_train.index[a.isna().to_numpy()][0]!r}"
        )
    k = len(classes)
    counts = pd.crosstab(a.astype("int64").to_numpy(), y, dropna=False).reindex(
        columns=range(k), fill_value=0
    )
    counts.loc["*"] = np.bincount(y, minlength=k)[:k]
    counts.columns = list(classes)
    counts.index.name = "assessment"
    total = counts.sum(axis=1)
    proba = (counts + alpha).div(total + alpha * k, axis=0)
    table = counts.add_prefix("n_").join(proba.add_prefix("p_"))
    table["n"] = total
    table["rule"] = [classes[int(np.argmax(row))] for row in counts.to_numpy()]
    return table


def assessment_rule(
    manifest_train: pd.DataFrame,
    manifest_test: pd.DataFrame,
    alpha: float = 1.0,
    classes: Sequence[str] = CLASSES,
) -> np.ndarray:
    """Metadata-only baseline: test probabilities = smoothed training class frequencies of its assessment.

    Argmax gives the most frequent training class of the ROI's BI-RADS assessment (on CBIS-DDSM,
    assessment 2 ⇒ BENIGN_WITHOUT_CALLBACK). Test assessment values never seen in training, or
    missing, get the overall training frequencies; a warning states how many.
    """
    if "assessment" not in manifest_test.columns:
        raise DataError("assessment_rule (test): missing column 'assessment'")
    table = assessment_rule_table(manifest_train, alpha, classes)
    pcols = [f"p_{c}" for c in classes]
    learned = {key: row for key, row in zip(table.index, table[pcols].to_numpy()) if key != "*"}
    fallback = table.loc["*", pcols].to_numpy(dtype=float)
    out = np.empty((len(manifest_test), len(classes)))
    unseen = 0
    for i, value in enumerate(manifest_test["assessment"].to_numpy()):
        key = None if pd.isna(value) else int(value)
        if key in learned:
            out[i] = learned[key]
        else:
            out[i] = fallback
            unseen += 1
    if unseen:
        warnings.warn(
            f"assessment_rule: {unseen} test ROI(s) with an assessment unseen in training (or missing) "
            "get the overall training class frequencies",
            stacklevel=2,
        )
    return out
