"""Beyond the paper's tables: the leakage audit (chapter 6), the seed-variance summary (chapter 7, runs from a sweep), optimizer step sizes.

Each audit reruns the paper's head on the cached backbone features under conditions the paper did not
report — other split schemes, other seeds — or examines the paper's optimizer settings themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mcalc import paper
from mcalc.chapters.inputs import StepInputs
from mcalc.chapters.training import evaluate_head
from mcalc.evaluate.evaluation import Evaluation
from mcalc.evaluate.metadata import leak_cells
from mcalc.learn.model import make_optimizer, quiet_retracing
from mcalc.learn.splits import SPLIT_SCHEMES, scheme_indices
from mcalc.learn.stacked import train_heads_side_by_side
from mcalc.records.provenance import Provenance
from mcalc.records.results import read_results_provenance

__all__ = [
    "LeakageAudit",
    "leakage_audit",
    "variance_summary",
    "update_sizes",
]

# ------------------------------------------------------------------------ 6. the leakage audit


@dataclass
class LeakageAudit:
    """ROI-level vs patient-grouped splits of the same pooled data over several split seeds, the leaks, the label rule.

    ``evaluations`` and ``leakage`` are those of the first split seed; ``repeats`` has one row per
    scheme and split seed; ``memorisation`` is the mean 1-NN test accuracy per scheme. The assessment
    rule on each scheme needs no image: :func:`mcalc.evaluate.metadata.leakage_structure` has it on the real tables.
    """

    evaluations: dict[str, Evaluation]
    leakage: pd.DataFrame
    provenance: Provenance
    memorisation: dict[str, float] = field(default_factory=dict)
    repeats: pd.DataFrame = field(default_factory=pd.DataFrame)

    def mean_test_accuracy(self, scheme: str) -> float:
        """The mean test accuracy of one split scheme over its split seeds (NaN when it was not run)."""
        return float(self.repeats.loc[self.repeats["scheme"] == scheme, "accuracy"].mean())

    def answer(self) -> str:
        """The chapter's answer, generated from the repeats: the two schemes' mean test accuracies, their
        difference and its interval over the split seeds that ran (:func:`~mcalc.evaluate.prose.leakage_gap_sentence`)."""
        from mcalc.evaluate.prose import leakage_gap_sentence

        if self.repeats.empty:
            return leakage_gap_sentence(float("nan"), float("nan"), (float("nan"),) * 3, 0)
        counts = self.repeats["scheme"].value_counts()
        seeds = int(min(counts.get("roi_level", 0), counts.get("patient_grouped", 0)))
        return leakage_gap_sentence(
            self.mean_test_accuracy("roi_level"),
            self.mean_test_accuracy("patient_grouped"),
            self.gap("accuracy"),
            seeds,
        )

    def gap(self, metric: str = "accuracy", confidence: float = 0.95) -> tuple[float, float, float]:
        """What leakage adds: mean ROI-level − mean patient-grouped ``metric`` over the split seeds, and
        the Welch t interval of that difference (NaN bounds with fewer than two seeds per scheme)."""
        from scipy.stats import ttest_ind

        roi = self.repeats.loc[self.repeats["scheme"] == "roi_level", metric].to_numpy(float)
        grouped = self.repeats.loc[self.repeats["scheme"] == "patient_grouped", metric].to_numpy(
            float
        )
        if not len(roi) or not len(grouped):
            return float("nan"), float("nan"), float("nan")
        diff = float(roi.mean() - grouped.mean())
        if len(roi) < 2 or len(grouped) < 2:
            return diff, float("nan"), float("nan")
        if np.ptp(np.r_[roi - roi.mean(), grouped - grouped.mean()]) == 0:
            return diff, diff, diff  # no seed-to-seed spread at all
        ci = ttest_ind(roi, grouped, equal_var=False).confidence_interval(confidence)
        return diff, float(ci.low), float(ci.high)

    def table(self) -> pd.DataFrame:
        """Test accuracy / AUC / 1-NN accuracy per scheme, mean ± SD over split seeds, and the leakage
        gap with its 95% interval over the split seeds (:meth:`gap`)."""
        metrics = ("accuracy", "AUC", "1-NN accuracy on the features")
        rows = {}
        for scheme, label in SPLIT_SCHEMES.items():
            rep = self.repeats[self.repeats["scheme"] == scheme]
            if rep.empty:
                continue
            cells = {"split seeds": len(rep), "test ROIs": int(rep["test ROIs"].iloc[0])}
            for m in metrics:
                sd = rep[m].std(ddof=1) if len(rep) > 1 else float("nan")
                cells[m] = f"{rep[m].mean():.3f}" + ("" if np.isnan(sd) else f" ± {sd:.3f}")
            rows[label] = cells
        roi = self.repeats[self.repeats["scheme"] == "roi_level"]
        grouped = self.repeats[self.repeats["scheme"] == "patient_grouped"]
        if len(roi) and len(grouped):
            cells = {}
            for m in metrics:
                diff, lo, hi = self.gap(m)
                cells[m] = f"{diff:+.3f}" + ("" if np.isnan(lo) else f" [{lo:+.3f}, {hi:+.3f}]")
            rows["(b) − (c): what leakage adds on the same data, 95% CI over split seeds"] = {
                "split seeds": "—",
                "test ROIs": "—",
                **cells,
            }
        out = pd.DataFrame(rows).T
        out.index.name = "split scheme"
        return out


def leakage_audit(inputs: StepInputs, n_split_seeds: int = 3) -> LeakageAudit:
    """Train and evaluate the head under ROI-level and patient-grouped splits of the pooled data (several split seeds), and the official one."""
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mcalc.learn.splits import leakage_report

    if n_split_seeds < 1:
        raise ValueError(f"n_split_seeds must be >= 1, got {n_split_seeds}")
    config, first = inputs.config, inputs.splitting_seed
    manifest, X, y = inputs.load()
    splits = [
        (
            scheme,
            k,
            split_seed,
            scheme_indices(manifest, scheme, inputs.validation_size, split_seed, inputs.classes),
        )
        for scheme in SPLIT_SCHEMES
        for k, split_seed in enumerate(
            [first] if scheme == "official" else [first + k for k in range(n_split_seeds)]
        )
    ]
    # Every split's head at once, each on its own training rows: the weights of train_head on each
    # split alone (mcalc.learn.stacked; validation data never changes a head's weights).
    heads = train_heads_side_by_side(
        X, y, None, None, [config] * len(splits), train_rows=[s[3]["train"] for s in splits]
    )
    evaluations, leaks, repeats = {}, {}, []
    for (scheme, k, split_seed, idx), head in zip(splits, heads):
        evals = evaluate_head(
            head.model, X, idx, config, manifest, n_boot=inputs.n_boot if k == 0 else 0
        )
        ev = evals["test"]
        fit_rows = np.concatenate([idx["train"], idx["validation"]])
        train_rows = manifest.iloc[fit_rows]
        test_rows = manifest.iloc[idx["test"]]
        # A pure memoriser: the nearest training ROI's label. It gains most when a sibling view is in training.
        nn = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=1)).fit(
            X[fit_rows], y[fit_rows]
        )
        memo = float((nn.predict(X[idx["test"]]) == y[idx["test"]]).mean())
        report = leakage_report(train_rows, test_rows)
        repeats.append(
            {
                "scheme": scheme,
                "split seed": split_seed,
                "test ROIs": ev.n,
                "accuracy": ev.accuracy,
                "AUC": ev.auc_pooled,
                "1-NN accuracy on the features": memo,
                "presumed same lesion, other view, in training": report[
                    "frac_same_lesion_other_view"
                ],
            }
        )
        if k:
            continue
        evaluations[scheme] = ev
        leaks[SPLIT_SCHEMES[scheme]] = leak_cells(report)
    leak = pd.DataFrame(leaks).T
    leak.index.name = "split scheme"
    rep = pd.DataFrame(repeats)
    memo_mean = rep.groupby("scheme")["1-NN accuracy on the features"].mean().to_dict()
    return LeakageAudit(
        evaluations,
        leak,
        read_results_provenance(inputs.results_dir),
        memo_mean,
        rep,
    )


def variance_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer and metric: mean ± SD over seeds, and a Kruskal–Wallis test of 'the optimizers differ'."""
    from scipy.stats import kruskal

    metrics = ["accuracy", "AUC", "sensitivity at specificity 0.8"]
    summary = frame.groupby("optimizer")[metrics].agg(["mean", "std"])
    out = pd.DataFrame(
        {
            m: [
                f"{summary.loc[o, (m, 'mean')]:.3f} ± {summary.loc[o, (m, 'std')]:.3f}"
                for o in summary.index
            ]
            for m in metrics
        },
        index=summary.index,
    )
    groups = {m: [g[m].to_numpy() for _, g in frame.groupby("optimizer")] for m in metrics}
    row = {}
    for m in metrics:
        if np.ptp(np.concatenate(groups[m])) > 0 and min(len(g) for g in groups[m]) > 1:
            row[m] = f"p = {kruskal(*groups[m]).pvalue:.3f}"
        else:
            row[m] = "—"
    out.loc["Kruskal–Wallis across optimizers"] = row
    t4 = paper.table4().loc[list(paper.OPTIMIZERS)]
    out.loc["paper: spread across optimizers"] = {
        "accuracy": f"{t4['accuracy'].max() - t4['accuracy'].min():.2f}",
        "AUC": f"{t4['auc'].max() - t4['auc'].min():.2f}",
        "sensitivity at specificity 0.8": f"{t4['sensitivity_at_spec80'].max() - t4['sensitivity_at_spec80'].min():.2f}",
    }
    return out


# ------------------------------------------------------------ the paper's optimizer settings


def _compiled_steps(opt: Any, grad: Any, var: Any) -> Any:
    """A compiled function taking ``n`` further steps of ``opt`` on ``var`` under the constant ``grad``
    in one loop (a Python call per step took 18 s for the book's table)."""
    import tensorflow as tf

    @tf.function
    def more_steps(n: tf.Tensor) -> None:
        """``n`` steps."""
        for _ in tf.range(n):
            opt.apply_gradients([(grad, var)])

    return more_steps


def update_sizes(
    steps: int = 860, gradients: tuple[float, ...] = (1.0, 0.01), learning_rate: float | None = None
) -> pd.DataFrame:
    """How far each optimizer (the paper's settings) moves one weight under a constant gradient, after 1 and ``steps`` steps.

    The default 860 steps are 20 epochs of 43 batches (1,346 training ROIs at batch 32). This is a
    property of the optimizers alone, independent of the data: it shows, for example, that Adadelta at
    learning rate 1e-4 (ρ 0.95, ε 1e-7) starts with steps of lr·√(ε/(1−ρ)) ≈ 1.4e-7 for any gradient
    well above √ε. How far the head's *outputs* move is another matter (:mod:`mcalc.chapters.selection`).
    """
    import keras
    import tensorflow as tf

    rows = []
    for name in paper.OPTIMIZERS:
        for g in gradients:
            opt = make_optimizer(name, learning_rate)
            var = keras.Variable(0.0, dtype="float32")
            grad = keras.ops.convert_to_tensor(g, dtype="float32")
            opt.apply_gradients([(grad, var)])
            first = abs(float(keras.ops.convert_to_numpy(var)))
            with quiet_retracing():  # one small function per optimizer and gradient, by design
                _compiled_steps(opt, grad, var)(tf.constant(steps - 1))
            rows.append(
                {
                    "optimizer": name,
                    "gradient": g,
                    "after 1 step": first,
                    f"after {steps} steps": abs(float(keras.ops.convert_to_numpy(var))),
                }
            )
    return pd.DataFrame(rows)
