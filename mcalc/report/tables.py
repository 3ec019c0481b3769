"""The book's tables beside the paper's: Tables 2–5 and the curation report; ours, its CI, the paper's, the difference.

Every table is assembled here from the run records of :mod:`mcalc.records.results` (or the curation result)
and the paper's transcribed numbers (:mod:`mcalc.paper`); a metric with its bootstrap interval is
always formatted by :func:`ci_cell`, except in Tables 3 and 4 and chapter 4's baseline rows, whose metrics each have their own
columns (:data:`COMPARISON_PARTS`: ours, the 95% CI as "[low, high]", the paper's value, ours − paper). Table 1 is counted on the shipped official tables
(:func:`mcalc.evaluate.metadata.table1`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mcalc import paper
from mcalc.data.curation import CurationResult
from mcalc.evaluate.errata import paper_formula_errata
from mcalc.evaluate.evaluation import Evaluation
from mcalc.evaluate.runs import BaselineRun, OptimizerRun, Results
from mcalc.learn.architecture import head_layers
from mcalc.names import TABLE4_METRICS, ci_cell, metric_name
from mcalc.study import DEFAULT_TASK, get_task

if TYPE_CHECKING:
    import keras

    from mcalc.evaluate.baselines import BaselineResults

__all__ = [
    "METRIC_COLUMNS",
    "PAPER_METRIC_COLUMNS",
    "UNITS_COLUMN",
    "COMPARISON_PARTS",
    "evaluation_comparison",
    "testable",
    "difference_words",
    "paper_note",
    "without_differences",
    "long_comparison",
    "curation_report",
    "table2",
    "table3_row",
    "table4_row",
    "cv_folds_run",
    "cv_text",
    "baseline_rows",
    "baseline_settings",
    "table3",
    "table4",
    "table5",
    "binary_comparison",
    "frozen_vs_finetuned",
    "formula_errata",
]

#: The headline metric columns of Tables 4 and the audits, and the :class:`Evaluation` field of each.
#: The paper's AUC is Keras' pooled (micro) AUC; scikit-learn's macro AUC is its own column.
METRIC_COLUMNS = {metric_name(field): field for field in TABLE4_METRICS}
#: The columns of :data:`METRIC_COLUMNS` that the paper reports, and their :func:`mcalc.paper.table4` field.
PAPER_METRIC_COLUMNS = {
    "accuracy": "accuracy",
    "AUC (pooled, as the paper)": "auc",
    "sensitivity at specificity 0.8": "sensitivity_at_spec80",
}
#: The column that states what the intervals rest on.
UNITS_COLUMN = "patients / lesions / ROIs"
#: The second level of Tables 3 and 4's column headers: each metric's parts.
OURS, CI, PAPER, DIFFERENCE = "ours", "95% CI", "paper", "difference"
COMPARISON_PARTS = (OURS, CI, PAPER, DIFFERENCE)


# ---------------------------------------------------------------------------------------------- cells


def _units_cell(ev: Evaluation, metric: str = "accuracy") -> str:
    """'151 / 189 / 326': the patients, lesions and ROIs a metric's patient-level interval rests on."""
    n = ev.counts_for(metric)
    return " / ".join("—" if n[k] is None else str(n[k]) for k in ("patients", "lesions", "rois"))


def _metric_cells(ev: Evaluation) -> dict[str, str]:
    """The headline metrics of one evaluation with their CIs, by :data:`METRIC_COLUMNS` column, and
    the patients / lesions / ROIs they rest on."""
    return {
        column: ci_cell(getattr(ev, field), ev.ci.get(field))
        for column, field in METRIC_COLUMNS.items()
    } | {UNITS_COLUMN: _units_cell(ev)}


def _number(value: object) -> float:
    """A metric value as a float (NaN where there is none)."""
    return np.nan if value is None else float(value)


def _ci_text(ci: tuple[float, float] | None) -> str | None:
    """'[0.690, 0.771]' (None where there is no interval)."""
    if ci is None or any(c is None or np.isnan(c) for c in ci):
        return None
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _comparison_cells(
    metric: str,
    ours: float | None,
    paper_value: float | None,
    ci: tuple[float, float] | None = None,
    with_ci: bool = True,
) -> dict[tuple[str, str], object]:
    """One metric's columns: ours, its 95% CI (if ``with_ci``), the paper's, and ours − paper (NaN where either is missing)."""
    o, p = _number(ours), _number(paper_value)
    cells: dict[tuple[str, str], object] = {(metric, OURS): o}
    if with_ci:
        cells[(metric, CI)] = _ci_text(ci)
    return cells | {(metric, PAPER): p, (metric, DIFFERENCE): o - p}


def evaluation_comparison(ev: Evaluation | None, paper_row: pd.Series | None) -> dict:
    """The headline metrics of one evaluation (or none) beside a Table 4 row of the paper's (or none), by column."""
    cells: dict[tuple[str, str], object] = {}
    for column, field in METRIC_COLUMNS.items():
        paper_field = PAPER_METRIC_COLUMNS.get(column)
        cells |= _comparison_cells(
            column,
            None if ev is None else getattr(ev, field),
            None if paper_row is None or paper_field is None else paper_row[paper_field],
            None if ev is None else ev.ci.get(field),
        )
    return cells | {(UNITS_COLUMN, ""): None if ev is None else _units_cell(ev)}


def _comparison_frame(rows: dict[str, dict], index_name: str) -> pd.DataFrame:
    """Rows of :func:`_comparison_cells` as a table with two-level column headers (metric → part)."""
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.columns = pd.MultiIndex.from_tuples(out.columns, names=["metric", ""])
    out = out.infer_objects()
    out.index.name = index_name
    return out


def testable(provenance) -> bool:
    """True when results can bear on the paper's numbers: real CBIS-DDSM images and a pretrained backbone."""
    return provenance is None or not provenance.is_simulated


def _simulated_reasons(provenance) -> str:
    """'phantom data and a random backbone': why a build cannot bear on the paper ('' when it can)."""
    why = [
        w
        for w, on in (
            ("phantom data", provenance.data == "phantom"),
            ("a random backbone", provenance.weights == "random"),
        )
        if on
    ]
    return " and ".join(why) or ("simulated" if not testable(provenance) else "")


def difference_words(provenance) -> str:
    """The caption's ', and the difference (ours − paper)' where the difference means something, else ''."""
    return ", and the difference (ours − paper)" if testable(provenance) else ""


def paper_note(provenance) -> str:
    """The sentence a caption ends with when ours cannot bear on the paper ('' when it can)."""
    if testable(provenance):
        return ""
    return (
        f" Not testable here ({_simulated_reasons(provenance)}): our numbers test the pipeline and cannot "
        "bear on the paper's, which are shown for reference only, with no difference taken."
    )


def without_differences(frame: pd.DataFrame, provenance) -> pd.DataFrame:
    """A comparison table without its difference columns where ours cannot bear on the paper (unchanged otherwise)."""
    if testable(provenance) or frame.columns.nlevels != 2:
        return frame
    keep = [c for c in frame.columns if c[1] != DIFFERENCE]
    return frame.loc[:, keep]


def long_comparison(frame: pd.DataFrame, provenance=None) -> pd.DataFrame:
    """A two-level comparison table (metric → ours / 95% CI / paper / difference) in long format: one row per
    row and metric, the parts as columns (a few narrow columns: no sideways scrolling), the patients /
    lesions / ROIs as a column; no difference column where ours cannot bear on the paper."""
    names = list(frame.index.names)
    row_name = names[0] if len(names) == 1 and names[0] else "model"
    metrics = list(dict.fromkeys(m for m, part in frame.columns if m != UNITS_COLUMN))
    units = frame[(UNITS_COLUMN, "")] if (UNITS_COLUMN, "") in frame.columns else None
    rows = []
    for label in frame.index:
        for metric in metrics:
            part = frame.loc[label, metric]
            row = {row_name: label, "metric": metric}
            for name in COMPARISON_PARTS:
                if name in part.index:
                    row[name] = part[name]
            if units is not None:
                row[UNITS_COLUMN] = units.loc[label]
            rows.append(row)
    out = pd.DataFrame(rows).set_index([row_name, "metric"]).infer_objects()
    order = [c for c in (*COMPARISON_PARTS, UNITS_COLUMN) if c in out.columns]
    out = out[order]
    for name in (OURS, PAPER, DIFFERENCE):
        if name in out.columns:
            out[name] = pd.to_numeric(out[name], errors="coerce")
    if not testable(provenance) and DIFFERENCE in out.columns:
        out = out.drop(columns=DIFFERENCE)
    return out


# ------------------------------------------------------------------------------------ 1. the data


def curation_report(curation: CurationResult) -> pd.DataFrame:
    """Per split: rows read, usable, excluded, and crop/mask swaps corrected."""
    m = curation.manifest
    swapped = m["crop_mask_swapped"].astype(bool)
    rep = (
        pd.DataFrame(
            {
                "rows read": m.groupby("split").size(),
                "usable": m[m["status"] == "ok"].groupby("split").size(),
                "excluded": m[m["status"] != "ok"].groupby("split").size(),
                "crop/mask swaps corrected": m[swapped].groupby("split").size(),
            }
        )
        .fillna(0)
        .astype(int)
    )
    rep.index.name = "split"
    return rep


# ---------------------------------------------------------------------------------------- 2. the model


def table2(model: keras.Model, image_size: int) -> pd.DataFrame:
    """Table 2, ours read off the built model, beside the paper's row."""
    dense = [layer for layer in head_layers(model) if type(layer).__name__ == "Dense"]
    hidden, output = dense[-2], dense[-1]
    shape = " × ".join(str(s) for s in model.input_shape[1:])
    ours = {
        "Optimizer": " ".join(paper.PAPER_OPTIMIZER_NAMES[o] for o in paper.OPTIMIZERS),
        "Input Shape": shape,
        "Fully Connected Neurons": hidden.units,
        "Fully Connected Activation Function": hidden.get_config()["activation"],
        "Output": output.units,
        "Output Activation Function": output.get_config()["activation"],
    }
    out = pd.concat([paper.table2(), pd.DataFrame([ours])], ignore_index=True)
    out.index = pd.Index(["paper", f"ours (built at {image_size} px)"], name="source")
    return out


# ---------------------------------------------------------------------------------- 3. one optimizer


def table3_row(run: OptimizerRun) -> pd.DataFrame:
    """Table 3 row: training loss and accuracy at the last epoch — ours, the paper's and the difference."""
    last = run.history.iloc[-1]
    t3 = paper.table3()
    p = t3.loc[run.optimizer] if run.optimizer in t3.index else None
    row = _comparison_cells(
        "training loss", last["loss"], None if p is None else p["training_loss"], with_ci=False
    ) | _comparison_cells(
        "training accuracy",
        last["accuracy"],
        None if p is None else p["training_accuracy"],
        with_ci=False,
    )
    return _comparison_frame({run.paper_name: row}, "optimizer")


def table4_row(run: OptimizerRun) -> pd.DataFrame:
    """Table 4 rows (validation, test): loss, accuracy, AUC, sensitivity at specificity 0.8 — ours with CI, the paper's, the difference."""
    t4 = paper.table4()
    p = t4.loc[run.optimizer] if run.optimizer in t4.index else None
    rows = {
        split: _comparison_cells(
            "loss", ev.loss_kl, None if p is None else p["loss"], with_ci=False
        )
        | evaluation_comparison(ev, p)
        for split, ev in (("validation", run.validation), ("test", run.test))
    }
    return _comparison_frame(rows, f"{run.paper_name}, split")


# ------------------------------------------------------------------------------------ 4. the baselines


def cv_folds_run(run: BaselineRun) -> int | None:
    """The number of folds a baseline's cross-validation ran (records from before the count was kept: the number asked for)."""
    n = run.config.get("cv_folds_run", run.config.get("cv_folds"))
    return None if n is None else int(n)


def cv_text(run: BaselineRun) -> str:
    """'3-fold CV on train': a baseline's cross-validation as it ran."""
    n = cv_folds_run(run)
    return f"{n}-fold CV on train" if n is not None else "CV on train"


def baseline_rows(baselines: BaselineResults) -> pd.DataFrame:
    """Table 4 rows for SVM and k-NN, CV on train and the official test split: per metric ours, its patient-level 95% CI, the paper's, the difference."""
    t4 = paper.table4()
    rows = {}
    for key in ("svm", "knn"):
        run = baselines.runs[key]
        for protocol, ev in run.evaluations.items():
            where = cv_text(run) if protocol == "cv" else "official test split"
            rows[f"{run.label}, {where}"] = evaluation_comparison(ev, t4.loc[key])
    return _comparison_frame(rows, "model, evaluation")


def baseline_settings(baselines: BaselineResults) -> pd.DataFrame:
    """The GLCM settings and, per model, the grid searched and the hyper-parameters chosen."""
    first = next(iter(baselines.runs[k] for k in ("svm", "knn") if k in baselines.runs))
    rows = {f"GLCM: {k}": str(v) for k, v in first.config.get("glcm", {}).items()}
    for key in ("svm", "knn"):
        if key not in baselines.runs:
            continue
        c = baselines.runs[key].config
        t = c.get("tuning", {})
        grid = (
            f"C ∈ {t.get('svm_C')}, γ ∈ {t.get('svm_gamma')}"
            if key == "svm"
            else f"k ∈ {t.get('knn_k')}"
        )
        rows[f"{key.upper()}: grid"] = (
            f"{grid}; {t.get('inner_splits')} patient-grouped inner folds, maximising {t.get('scoring')}"
        )
        rows[f"{key.upper()}: chosen"] = ", ".join(f"{k} = {v:g}" for k, v in c["chosen"].items())
    out = pd.DataFrame({"value": rows})
    out.index.name = "setting"
    return out


# ---------------------------------------------------------------------------------- 5. the comparison


def table3(results: Results) -> pd.DataFrame:
    """Table 3 in full: training loss and accuracy per optimizer — ours, the paper's, the difference."""
    t3 = paper.table3()
    rows = {}
    for opt in t3.index:
        run = results.cnn.get(opt)
        last = run.history.iloc[-1] if run is not None else None
        rows[paper.PAPER_OPTIMIZER_NAMES[opt]] = (
            {("loss function", ""): "Kullback–Leibler divergence"}
            | _comparison_cells(
                "training loss",
                None if last is None else last["loss"],
                t3.loc[opt, "training_loss"],
                with_ci=False,
            )
            | _comparison_cells(
                "training accuracy",
                None if last is None else last["accuracy"],
                t3.loc[opt, "training_accuracy"],
                with_ci=False,
            )
        )
    return _comparison_frame(rows, "optimizer")


def table4(results: Results) -> pd.DataFrame:
    """Table 4 in full on the test split: per model and metric, ours, its patient-level 95% CI, the paper's, the difference."""
    t4 = paper.table4()
    rows = {}
    models = [(opt, results.cnn.get(opt)) for opt in paper.OPTIMIZERS]
    models += [(key, results.baselines.get(key)) for key in ("svm", "knn")]
    for key, run in models:
        p = t4.loc[key]
        if run is None:
            ev = None
            name = (
                f"InceptionResNetV2, {paper.PAPER_OPTIMIZER_NAMES[key]}"
                if key in paper.PAPER_OPTIMIZER_NAMES
                else key
            )
        elif isinstance(run, OptimizerRun):
            ev, name = run.test, f"InceptionResNetV2, {paper.PAPER_OPTIMIZER_NAMES[key]}"
        else:
            ev, name = run.evaluations["test"], run.label
        loss = ev.loss_kl if ev is not None and isinstance(run, OptimizerRun) else None
        rows[name] = _comparison_cells(
            "loss", loss, p["loss"], with_ci=False
        ) | evaluation_comparison(ev, p)
    for key in ("majority", "assessment"):
        if key in results.baselines:
            run = results.baselines[key]
            ev = run.evaluations["test"]
            # the row names its data: the phantom's tables give other numbers than the real ones
            data = "phantom's tables" if run.provenance.data == "phantom" else "real tables"
            rows[f"{run.label}, {data}"] = _comparison_cells(
                "loss", None, None, with_ci=False
            ) | evaluation_comparison(ev, None)
    return _comparison_frame(rows, "model")


def _ours_comparable(results: Results) -> str:
    """Our Table 5 rows: comparable only on real data with the ImageNet backbone, else not testable here."""
    prov = results.provenance
    if not prov.is_simulated:
        return "yes"
    why = [
        w
        for w, on in (
            ("phantom data", prov.data == "phantom"),
            ("random backbone", prov.weights == "random"),
        )
        if on
    ]
    return "not testable here: " + (" and ".join(why) or "simulated")


def table5(results: Results) -> pd.DataFrame:
    """Table 5: the paper's rows and the anchors, each as its source states it, and ours."""
    t5 = paper.table5()
    anchors = paper.literature_anchors()
    ours = []
    label = "phantom data" if results.provenance.data == "phantom" else "real CBIS-DDSM"
    for opt, run in results.cnn.items():
        ev = run.test
        ours.append(
            {
                "article": f"This study, {paper.PAPER_OPTIMIZER_NAMES.get(opt, opt)} ({label})",
                "model": "InceptionResNetV2 (frozen) + head",
                "accuracy": ev.accuracy,
                "auc": ev.auc_pooled,
                "sensitivity": ev.sensitivity_at_spec80,
                "task_and_data": f"CBIS-DDSM calcifications, {_task_text(run.config)}, official test split",
                "comparable with this task": _ours_comparable(results),
            }
        )
    out = pd.concat([t5, anchors, pd.DataFrame(ours)], ignore_index=True)
    return out.set_index("article")


def _task_text(config: dict) -> str:
    """A run's task in words, from its recorded configuration (runs from before tasks: three-class)."""
    task = get_task(config.get("task", DEFAULT_TASK))
    return f"{len(task.classes)} classes ({task.name}: {task.description})"


def binary_comparison(results: Results) -> pd.DataFrame:
    """Our runs under a binary task beside the literature whose task is binary (empty under three-class)."""
    label = results.provenance.label()
    ours = [
        {
            "article": f"This study, {paper.PAPER_OPTIMIZER_NAMES.get(opt, opt)}",
            "model": "InceptionResNetV2 (frozen) + head",
            "accuracy": run.test.accuracy,
            "auc": run.test.auc_macro,
            # the binary studies' quantity: MALIGNANT's sensitivity at 80% specificity (one-vs-rest)
            "sensitivity": run.test.malignant_sensitivity_at_spec80,
            "task_and_data": f"CBIS-DDSM calcification ROIs, {_task_text(run.config)}, official test split; {label}",
            "comparable with this task": _ours_comparable(results).replace(
                "not testable here", "no"
            ),
        }
        for opt, run in results.cnn.items()
        if get_task(run.config.get("task", DEFAULT_TASK)).is_binary
    ]
    if not ours:
        return pd.DataFrame()
    return pd.concat([paper.binary_sources(), pd.DataFrame(ours)], ignore_index=True).set_index(
        "article"
    )


def frozen_vs_finetuned(results: Results) -> pd.DataFrame:
    """Test metrics of each fine-tuned run beside the frozen run of the same optimizer (empty when none was run)."""
    rows = {}
    for run in results.finetuned.values():
        frozen = results.cnn.get(run.optimizer)
        mode = run.config.get("train_backbone", "?")
        for label, r in (
            (f"{run.paper_name}, frozen backbone", frozen),
            (f"{run.paper_name}, fine-tuned ({mode})", run),
        ):
            if r is None:
                continue
            rows[label] = {
                **_metric_cells(r.test),
                "epochs": r.config.get("epochs"),
                "training time (s)": r.elapsed_s,
            }
    out = pd.DataFrame(rows).T
    out.index.name = "run (test split)"
    return out


def formula_errata(results: Results) -> pd.DataFrame:
    """The paper's Eq. 4/5 against the correct definitions on the best network's test confusion matrix."""
    best = results.best_cnn()
    if best is None:
        return pd.DataFrame()
    return paper_formula_errata(np.asarray(best.test.confusion), best.test.classes)
