"""Two runs side by side (``mcalc compare RUN_A RUN_B``): paired differences, verdicts, provenance.

For every model both runs hold (read and paired by :mod:`mcalc.evaluate.pairing`), the test
predictions of the two runs are paired by ROI id and the difference B − A of every metric is
bootstrapped *paired* at the patient level (:func:`mcalc.evaluate.bootstrap.paired_difference`: a
drawn patient brings all of their ROIs, in both runs). The verdict table of each run is set beside
the other's, and what differs in their provenance (data copy, weights, task, versions, commit) is
listed. ROIs that only one run tested, or whose label the runs disagree on, are listed with the
models they concern and left out of the pairing, never dropped silently. Runs that cannot be
compared (another task, no model or test ROI in common, not a run at all) raise one
:class:`~mcalc.errors.DataError` line. How far the backbone features moved between two results
folders is :mod:`mcalc.evaluate.shift`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mcalc import names
from mcalc.errors import DataError
from mcalc.evaluate.bootstrap import paired_difference
from mcalc.evaluate.metrics import metric_names
from mcalc.evaluate.pairing import (
    Run,
    load_run,
    models,
    pair_predictions,
    run_task,
)
from mcalc.evaluate.runs import Results
from mcalc.evaluate.shift import feature_shift, shift_sentence
from mcalc.names import metric_name
from mcalc.records.provenance import KAGGLE_JPEG_LABEL
from mcalc.records.results import FEATURES

__all__ = [
    "TABLE4_METRICS",
    "DIFFERENCE_COLUMNS",
    "COMMAND",
    "Comparison",
    "copy_label",
    "verdict_changes",
    "compare_runs",
    "difference_table",
    "units_text",
    "difference_sentence",
    "verdict_sentence",
]

#: The metrics of the paper's Table 4 (its loss is the KL loss; its AUC the pooled one, macro beside it).
TABLE4_METRICS = ("loss_kl", *names.TABLE4_METRICS)
#: Columns of :attr:`Comparison.differences`.
DIFFERENCE_COLUMNS = [
    "model",
    "metric",
    "A",
    "B",
    "B − A",
    "ci_low",
    "ci_high",
    "p_value",
    "CI excludes 0",
    "n_patients",
    "n_lesions",
    "n_rois",
]
#: The command a user runs on two runs of their own (shown by chapter 8).
COMMAND = "mcalc compare RUN_A RUN_B"


def _verdicts(results: Results, folder: Path | None = None) -> pd.DataFrame:
    """The analysis plan's verdict on each claim of one run, as its own chapter 5 gives it (with
    chapter 7's seed runs where its results folder holds them); one row per claim, the verdict with
    its direction ("not reproduced (lower)") in the column ``verdict``.

    The one place this module reads the verdict rules.
    """
    from mcalc.evaluate.verdicts import plan_verdicts, seed_runs

    seeds = seed_runs(folder) if folder is not None else None
    v = plan_verdicts(results, seeds)
    return v.set_index("claim")[["label"]].rename(columns={"label": "verdict"})


# ------------------------------------------------------------------------------ the comparison


@dataclass
class Comparison:
    """What :func:`compare_runs` found: differences B − A, verdicts, provenance, what was not paired."""

    a: str
    b: str
    task: str
    #: per model and metric: A, B, B − A with its paired patient-level CI and p (DIFFERENCE_COLUMNS)
    differences: pd.DataFrame
    #: per claim: the verdict in A, in B, and whether it changed
    verdicts: pd.DataFrame
    #: per provenance item: A, B, and whether they differ
    provenance: pd.DataFrame
    #: ROIs left out of the pairing: roi_id, why (only in A / only in B / label differs), models
    unmatched: pd.DataFrame
    #: models not compared: model, why (only in one run, no per-ROI predictions)
    models_skipped: pd.DataFrame
    #: the bootstrap's resamples and seed
    n_boot: int = 0
    seed: int = 0
    #: per ROI, how far its backbone features moved (``shift.feature_shift``); None unless both runs
    #: are results folders holding features
    features: pd.DataFrame | None = None

    def changed_verdicts(self) -> list[str]:
        """The claims whose verdict differs between the two runs."""
        return list(self.verdicts.index[self.verdicts["changed"]])

    def n_paired_rois(self) -> int:
        """The most test ROIs paired for any model."""
        return int(self.differences["n_rois"].max()) if len(self.differences) else 0

    def table4(self) -> pd.DataFrame:
        """The differences of the Table 4 metrics only, one row per model and metric."""
        return self.differences[self.differences["metric"].isin(TABLE4_METRICS)].reset_index(
            drop=True
        )

    def n_excluding_zero(self, metrics: tuple[str, ...] = TABLE4_METRICS) -> tuple[int, int]:
        """(how many differences of these metrics have a 95% CI excluding 0, how many there are)."""
        d = self.differences[self.differences["metric"].isin(metrics)]
        return int(d["CI excludes 0"].sum()), len(d)

    def report(self, metrics: tuple[str, ...] = TABLE4_METRICS) -> str:
        """The comparison as text: provenance, paired differences, verdicts, what was not paired."""
        lines = [f"A: {self.a}", f"B: {self.b}", f"task: {self.task}", ""]
        lines += ["What differs in their provenance:"]
        differs = self.provenance[self.provenance["differs"]]
        lines += (
            [f"  {item}: A {r['A']!s} | B {r['B']!s}" for item, r in differs.iterrows()]
            if len(differs)
            else ["  nothing recorded differs"]
        )
        n_ex, n = self.n_excluding_zero(metrics)
        lines += [
            "",
            f"Paired patient-level differences B − A on the test ROIs both runs hold ({self.n_boot} "
            f"resamples, seed {self.seed}; {n_ex} of {n} with a 95% CI excluding 0):",
        ]
        shown = self.differences[self.differences["metric"].isin(metrics)]
        for model, group in shown.groupby("model", sort=False):
            first = group.iloc[0]
            lines.append(
                f"  {model} ({first['n_patients']} patients, {first['n_lesions']} lesions, "
                f"{first['n_rois']} ROIs)"
            )
            for _, r in group.iterrows():
                lines.append(
                    f"    {r['metric']:<22} A {r['A']:.4f}  B {r['B']:.4f}  B − A {r['B − A']:+.4f} "
                    f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]  p {r['p_value']:.3f}"
                    + ("  *" if r["CI excludes 0"] else "")
                )
        changed = self.changed_verdicts()
        lines += ["", f"Verdicts: {len(changed)} of {len(self.verdicts)} changed"]
        for claim, r in self.verdicts.iterrows():
            mark = "CHANGED" if r["changed"] else "same"
            lines.append(f"  [{mark}] {claim}: A {r['A']} | B {r['B']}")
        if self.features is not None:
            lines += ["", shift_sentence(self.features)]
        lines += ["", "Not paired:"]
        if len(self.models_skipped):
            lines += [
                f"  model {r['model']}: {r['why']}" for _, r in self.models_skipped.iterrows()
            ]
        if len(self.unmatched):
            lines += [
                f"  ROI {r['roi_id']}: {r['why']} ({r['models']})"
                for _, r in self.unmatched.iterrows()
            ]
        if not len(self.models_skipped) and not len(self.unmatched):
            lines.append("  nothing: every model and every test ROI is in both runs")
        return "\n".join(lines)

    def write(self, folder: str | Path) -> list[Path]:
        """Write the comparison's tables as CSV into ``folder``; their paths."""
        from mcalc.records.fsio import write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tables = {
            "differences.csv": self.differences.to_csv(index=False),
            "verdicts.csv": self.verdicts.to_csv(),
            "provenance.csv": self.provenance.to_csv(),
            "unmatched.csv": self.unmatched.to_csv(index=False),
            "models_skipped.csv": self.models_skipped.to_csv(index=False),
        }
        return [write_text(folder / name, text) for name, text in tables.items()]


def _settings(results: Results) -> str:
    """The networks' training settings in one cell (or 'mixed' when the runs of one folder differ)."""
    keys = ("seed", "epochs", "batch_size", "learning_rate")
    seen = {tuple(r.config.get(k) for k in keys) for r in results.cnn.values()}
    if not seen:
        return "no network"
    if len(seen) > 1:
        return "mixed"
    seed, epochs, batch, lr = seen.pop()
    return f"seed {seed}, {epochs} epochs, batch {batch}, lr {lr:g}" if lr is not None else "?"


def copy_label(prov) -> str:
    """Which copy of the data: the DICOM release or the Kaggle JPEG re-release."""
    return KAGGLE_JPEG_LABEL if prov.is_kaggle_jpeg else "DICOM release (16-bit)"


def _provenance_table(a: Run, b: Run, task_a: str, task_b: str) -> pd.DataFrame:
    """What each run records of its provenance, item by item, and whether the two differ."""

    def items(run: Run, task: str) -> dict[str, object]:
        prov = run.results.provenance
        meta = run.features_meta
        versions = meta.get("versions", {}) if isinstance(meta.get("versions"), dict) else {}
        weights = meta.get("weights", {}) if isinstance(meta.get("weights"), dict) else {}
        return {
            "data": prov.data,
            "data copy": copy_label(prov),
            "data detail": prov.data_detail or "—",
            "weights": prov.weights if prov.weights != "n/a" else weights.get("used", "n/a"),
            "weights file sha256": (weights.get("sha256") or "—")[:16],
            "task": task,
            "image size": meta.get("image_size", "—"),
            "backbone": meta.get("backbone", "not recorded"),
            "backbone arithmetic": prov.backbone_precision,
            "network settings": _settings(run.results),
            "analysis plan": ", ".join(
                sorted(
                    {
                        getattr(r, "analysis_plan", None) or "unrecorded"
                        for r in [*run.results.cnn.values(), *run.results.baselines.values()]
                    }
                )
            ),
            "mcalc version": versions.get("mcalc", prov.mcalc_version),
            "commit": versions.get("commit", "not recorded"),
            "python": versions.get("python", prov.python),
            "tensorflow": versions.get("tensorflow", "not recorded"),
            "keras": versions.get("keras", "not recorded"),
            "device": versions.get("device", "not recorded"),
        }

    ia, ib = items(a, task_a), items(b, task_b)
    frame = pd.DataFrame({"A": pd.Series(ia, dtype=object), "B": pd.Series(ib, dtype=object)})
    frame["differs"] = [str(x) != str(y) for x, y in zip(frame["A"], frame["B"])]
    frame.index.name = "item"
    return frame


def verdict_changes(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Two verdict tables side by side: per claim the verdict in A, in B, and whether it changed."""
    col_a = "verdict" if "verdict" in a.columns else a.columns[0]
    col_b = "verdict" if "verdict" in b.columns else b.columns[0]
    claims = list(a.index) + [c for c in b.index if c not in a.index]
    va = a[col_a].reindex(claims).fillna("—")
    vb = b[col_b].reindex(claims).fillna("—")
    out = pd.DataFrame({"A": va, "B": vb})
    out["changed"] = out["A"] != out["B"]
    out.index.name = "claim"
    return out


def compare_runs(
    run_a: str | Path | Run,
    run_b: str | Path | Run,
    n_boot: int | None = None,
    seed: int | None = None,
) -> Comparison:
    """Compare two runs (results folders, bundles or loaded runs): see the module doc.

    ``n_boot`` and ``seed`` of the paired bootstrap default to those of run A's evaluations.
    DataError (one line) when the runs cannot be compared.
    """
    a = run_a if isinstance(run_a, Run) else load_run(run_a)
    b = run_b if isinstance(run_b, Run) else load_run(run_b)
    tasks = []
    for run in (a, b):
        try:
            tasks.append(run_task(run.results))
        except DataError as exc:
            raise DataError(f"{run.name}: {exc}") from None
    if tasks[0] != tasks[1]:
        raise DataError(
            f"cannot compare: {a.name} was run under the {tasks[0]} task and {b.name} under "
            f"the {tasks[1]} task (their labels and metrics differ)"
        )
    ma, mb = models(a.results), models(b.results)
    skipped = [
        (ma.get(k, mb.get(k))[0], f"only in {'A' if k in ma else 'B'}")
        for k in (ma.keys() ^ mb.keys())
    ]
    shared = [k for k in ma if k in mb]
    if not shared:
        raise DataError(
            f"cannot compare: no model in common ({a.name}: {', '.join(ma) or 'none'}; "
            f"{b.name}: {', '.join(mb) or 'none'})"
        )
    frames, unmatched = [], {}
    for key in shared:
        label, ea = ma[key]
        eb = mb[key][1]
        if not ea.predictions or not eb.predictions:
            which = " and ".join(n for n, e in (("A", ea), ("B", eb)) if not e.predictions)
            skipped.append((label, f"no per-ROI test predictions kept in {which}"))
            continue
        if tuple(ea.classes) != tuple(eb.classes):
            raise DataError(
                f"cannot compare {label}: its classes differ ({', '.join(ea.classes)} vs "
                f"{', '.join(eb.classes)})"
            )
        pair = pair_predictions(ea, eb)
        for why, ids in (
            ("only in A", pair.only_a),
            ("only in B", pair.only_b),
            ("label differs", pair.label_differs),
        ):
            for r in ids:
                unmatched.setdefault((r, why), []).append(label)
        if len(pair.y) == 0:
            skipped.append((label, "no test ROI in common"))
            continue
        try:
            d = paired_difference(
                pair.y,
                pair.proba_b,
                pair.proba_a,
                ea.classes,
                metric_names(ea.classes),
                n_boot=ea.n_boot if n_boot is None else n_boot,
                seed=ea.seed if seed is None else seed,
                confidence=ea.confidence,
                groups=pair.patients,
                lesions=pair.lesions,
            )
        except DataError as exc:
            skipped.append((label, f"not comparable on the shared ROIs ({exc})"))
            continue
        d = d.rename(columns={"a": "B", "b": "A", "difference": "B − A"})
        d.insert(0, "model", label)
        frames.append(d)
    if not frames:
        raise DataError(
            f"cannot compare: {a.name} and {b.name} hold no test ROI in common for any model "
            f"({', '.join(f'{m}: {w}' for m, w in skipped[:3])})"
        )
    diffs = pd.concat(frames, ignore_index=True)
    diffs["CI excludes 0"] = (diffs["ci_low"] > 0) | (diffs["ci_high"] < 0)
    diffs = diffs[DIFFERENCE_COLUMNS]
    all_labels = {ma[k][0] for k in shared}
    unmatched_rows = [
        {
            "roi_id": r,
            "why": why,
            "models": "every model" if set(labels) == all_labels else ", ".join(labels),
        }
        for (r, why), labels in sorted(unmatched.items())
    ]
    first = ma[shared[0]][1]
    shift = None
    if a.folder is not None and b.folder is not None and (a.folder / FEATURES).is_file():
        try:
            shift = feature_shift(a.folder, b.folder)
        except DataError:
            shift = None  # features of other ROIs, or none in B: the report says nothing of them
    return Comparison(
        a=a.name,
        b=b.name,
        task=tasks[0],
        differences=diffs,
        verdicts=verdict_changes(_verdicts(a.results, a.folder), _verdicts(b.results, b.folder)),
        provenance=_provenance_table(a, b, *tasks),
        unmatched=pd.DataFrame(unmatched_rows, columns=["roi_id", "why", "models"]),
        models_skipped=pd.DataFrame(skipped, columns=["model", "why"]),
        n_boot=first.n_boot if n_boot is None else int(n_boot),
        seed=first.seed if seed is None else int(seed),
        features=shift,
    )


# ------------------------------------------------------------------------------ for the book


def difference_table(
    comparison: Comparison,
    metrics: tuple[str, ...] = TABLE4_METRICS,
    names: tuple[str, str] = ("A", "B"),
) -> pd.DataFrame:
    """The differences of some metrics as a reader's table: A → B, B − A with its CI, p; the patients,
    lesions and ROIs in a column when they differ between models (else :func:`units_text` says them)."""
    d = comparison.differences[comparison.differences["metric"].isin(metrics)]
    a, b = names
    out = pd.DataFrame(
        {
            "model": d["model"],
            "metric": d["metric"],
            f"{a} → {b}": [f"{r['A']:.3f} → {r['B']:.3f}" for _, r in d.iterrows()],
            f"{b} − {a} [95% CI]": [
                f"{r['B − A']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
                if np.isfinite(r["ci_low"])
                else f"{r['B − A']:+.3f}"
                for _, r in d.iterrows()
            ],
            "p": d["p_value"].map(lambda v: "—" if not np.isfinite(v) else f"{v:.3f}"),
        }
    )
    if units_text(comparison) is None:
        out["patients / lesions / ROIs"] = [
            f"{r['n_patients']} / {r['n_lesions']} / {r['n_rois']}" for _, r in d.iterrows()
        ]
    return out.set_index(["model", "metric"])


def units_text(comparison: Comparison) -> str | None:
    """'7 patients, 10 lesions, 15 ROIs' when every model's differences rest on the same, else None."""
    units = comparison.differences[["n_patients", "n_lesions", "n_rois"]].drop_duplicates()
    if len(units) != 1:
        return None
    n = units.iloc[0]
    return f"{n['n_patients']} patients, {n['n_lesions']} lesions, {n['n_rois']} ROIs"


def difference_sentence(comparison: Comparison, metrics: tuple[str, ...] = TABLE4_METRICS) -> str:
    """One sentence on the paired differences of some metrics, from their numbers."""
    n_ex, n = comparison.n_excluding_zero(metrics)
    d = comparison.differences[comparison.differences["metric"].isin(metrics)]
    largest = d.loc[d["B − A"].abs().idxmax()] if len(d) else None
    text = (
        f"Of the {n} paired differences of {len(set(d['model']))} models × {len(set(d['metric']))} "
        f"metrics, on up to {comparison.n_paired_rois()} test ROIs, {n_ex} "
        f"{'has' if n_ex == 1 else 'have'} a 95% patient-level CI that excludes 0"
    )
    if largest is not None:
        text += (
            f"; the largest in size is {largest['model']}'s {metric_name(largest['metric'])}, "
            f"{largest['B − A']:+.3f} [{largest['ci_low']:+.3f}, {largest['ci_high']:+.3f}]"
        )
    return text + "."


def verdict_sentence(comparison: Comparison) -> str:
    """One sentence on whether any verdict changed, from the two verdict tables."""
    changed = comparison.changed_verdicts()
    outcomes = sorted(set(comparison.verdicts["A"]) | set(comparison.verdicts["B"]))
    if not changed:
        return (
            f"No verdict changed: all {len(comparison.verdicts)} claims read the same in both runs "
            f"({', '.join(outcomes)})."
        )
    return (
        f"{len(changed)} of {len(comparison.verdicts)} verdicts changed: "
        + "; ".join(
            f"{c} ({comparison.verdicts.loc[c, 'A']} → {comparison.verdicts.loc[c, 'B']})"
            for c in changed
        )
        + "."
    )
