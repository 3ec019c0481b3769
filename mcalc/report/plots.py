"""Figures of the book (data, training curves, ROC, calibration, sweeps); :mod:`mcalc.report.items` shows them with their captions."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from mcalc.paper import IMAGE_SIZE
from mcalc.study import CLASSES

__all__ = [
    "MIN_FONTSIZE",
    "CURVE_LIMITS",
    "roi_title",
    "sample_grid",
    "table1_chart",
    "figure1",
    "curve_limits",
    "training_curves",
    "optimizer_panel",
    "roc_and_confusion",
    "roc_panel",
    "seed_spread",
    "sweep_axes",
    "reliability_panel",
]

CLASS_COLOURS = dict(zip(CLASSES, sns.color_palette("colorblind", 3)))


MIN_FONTSIZE = 10  # pt: no text of a figure smaller, so it reads at the column's width
#: Fixed y ranges of the per-optimizer curves (Figures 4–7), so that the four figures compare at a glance.
CURVE_LIMITS = {
    "loss": (0.0, 1.5),
    "accuracy": (0.0, 1.0),
    "sensitivity_at_specificity": (0.0, 1.0),
}


def _pick_per_class(manifest: pd.DataFrame, n: int, seed: int) -> dict[str, pd.DataFrame]:
    """Up to ``n`` rows of each class, sampled reproducibly."""
    return {
        c: g.sample(n=min(n, len(g)), random_state=seed)
        for c, g in manifest.groupby("pathology")
        if len(g)
    }


def _known(value: object) -> str:
    """A metadata value as text, '' where it is missing (None, NaN, empty)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = str(value).strip()
    return "" if text.lower() in {"nan", "none", "n/a"} else text


def roi_title(calc_type: object, distribution: object, width: int = 22) -> str:
    """A sample ROI's title: its calcification type and distribution in lower case, each on one line
    and shortened to ``width`` characters; a missing one left out ("type not recorded" if both are)."""
    parts = [_known(calc_type), _known(distribution)]
    parts = [p.lower().replace("_", " ") for p in parts if p]
    parts = [p if len(p) <= width else p[: width - 1] + "…" for p in parts]
    return "\n".join(parts) if parts else "type not recorded"


def sample_grid(manifest: pd.DataFrame, n_per_class: int = 4, seed: int = 0) -> plt.Figure:
    """A grid of cropped ROIs, one row per class."""
    from mcalc.data.images import read_image

    picks = _pick_per_class(manifest, n_per_class, seed)
    fig, axes = plt.subplots(
        len(CLASSES), n_per_class, figsize=(2.2 * n_per_class, 2.3 * len(CLASSES)), squeeze=False
    )
    for r, cls in enumerate(CLASSES):
        rows = picks.get(cls, manifest.iloc[:0])
        for c in range(n_per_class):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(rows):
                row = rows.iloc[c]
                ax.imshow(read_image(row["crop_path"]), cmap="gray")
                ax.set_title(
                    roi_title(row.get("calc_type"), row.get("calc_distribution")),
                    fontsize=MIN_FONTSIZE,
                )
        axes[r, 0].text(
            -0.08,
            0.5,
            cls,
            transform=axes[r, 0].transAxes,
            rotation=90,
            ha="right",
            va="center",
            fontsize=10,
        )
    fig.tight_layout()
    return fig


def table1_chart(table1: pd.DataFrame) -> plt.Figure:
    """Table 1 as bars: ROIs per class in the official tables beside the paper's, one panel per split
    (the "total" row left out); each bar labelled with its count."""
    official, printed = "official CBIS-DDSM tables (ours)", "paper"
    rows = table1.drop(index=[i for i in table1.index if str(i).lower() == "total"])
    splits = list(dict.fromkeys(table1[official].columns))
    fig, axes = plt.subplots(1, len(splits), figsize=(7.5, 3.6), sharey=True, squeeze=False)
    x = np.arange(len(rows))
    for ax, split in zip(axes[0], splits):
        for offset, (source, colour, name) in zip(
            (-0.2, 0.2), ((official, "0.35", "official tables"), (printed, "C1", "paper"))
        ):
            values = rows[(source, split)].astype(float).to_numpy()
            bars = ax.bar(x + offset, values, width=0.4, color=colour, label=name)
            ax.bar_label(bars, labels=[f"{v:.0f}" for v in values], fontsize=MIN_FONTSIZE)
        ax.set_xticks(x, [str(c).replace("_", "\n") for c in rows.index], fontsize=MIN_FONTSIZE)
        ax.set_title(split, fontsize=11)
        ax.margins(y=0.15)
    axes[0][0].set_ylabel("ROIs")
    fig.tight_layout()
    _legend_below(fig, *axes[0][0].get_legend_handles_labels(), ncol=2)
    return fig


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of the non-zero part of a mask."""
    rows, cols = np.nonzero(mask)
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


def figure1(manifest: pd.DataFrame, image_size: int = IMAGE_SIZE, seed: int = 0) -> plt.Figure:
    """Figure 1: (a) mammogram with the ROI box, (b) cropped ROI, resized (c) antialiased (default) and (d) point-sampled."""
    from matplotlib.patches import Rectangle

    from mcalc.data.images import read_image
    from mcalc.learn.preprocessing import resize_for_display

    picks = _pick_per_class(manifest, 1, seed)
    fig, axes = plt.subplots(len(CLASSES), 4, figsize=(12, 3.2 * len(CLASSES)), squeeze=False)
    for r, cls in enumerate(CLASSES):
        for ax in axes[r]:
            ax.axis("off")
        if cls not in picks:
            continue
        row = picks[cls].iloc[0]
        full = read_image(row["full_path"])
        crop = read_image(row["crop_path"])
        axes[r, 0].imshow(full, cmap="gray")
        mask = read_image(row["mask_path"])
        if mask.shape == full.shape and mask.max() > mask.min():
            r0, r1, c0, c1 = _bbox(mask > mask.min())
            axes[r, 0].add_patch(
                Rectangle((c0, r0), c1 - c0, r1 - r0, fill=False, edgecolor="red", linewidth=1.2)
            )
        roi = str(row["roi_id"]).split("_", 1)[-1]  # "P_00266_RIGHT_CC_1", without "Calc-Training"
        axes[r, 0].set_title(f"(a) mammogram\n{roi}", fontsize=MIN_FONTSIZE)
        axes[r, 0].text(
            -0.12,
            0.5,
            textwrap.fill(cls.replace("_", " "), 16),
            transform=axes[r, 0].transAxes,
            rotation=90,
            ha="right",
            va="center",
            fontsize=MIN_FONTSIZE,
        )
        axes[r, 1].imshow(crop, cmap="gray")
        axes[r, 1].set_title(
            f"(b) cropped ROI\n{crop.shape[1]} × {crop.shape[0]}", fontsize=MIN_FONTSIZE
        )
        axes[r, 2].imshow(resize_for_display(crop, image_size), cmap="gray")
        axes[r, 2].set_title(
            f"(c) {image_size} × {image_size}\nantialiased bicubic", fontsize=MIN_FONTSIZE
        )
        axes[r, 3].imshow(resize_for_display(crop, image_size, antialias=False), cmap="gray")
        axes[r, 3].set_title(
            f"(d) {image_size} × {image_size}\npoint-sampled cubic", fontsize=MIN_FONTSIZE
        )
    fig.tight_layout()
    return fig


CURVE_PANELS = (
    ("loss", "(a) loss (KL divergence)"),
    ("accuracy", "(b) accuracy"),
    ("sensitivity_at_specificity", "(c) sensitivity at specificity 0.8"),
)


def curve_limits(key: str, values: np.ndarray) -> tuple[float, float]:
    """The fixed y range of a curve panel (:data:`CURVE_LIMITS`), widened only when a value falls outside it."""
    low, high = CURVE_LIMITS[key]
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size:
        low, high = min(low, float(finite.min())), max(high, float(np.ceil(finite.max() * 2) / 2))
    return low, high


def _legend_below(fig: plt.Figure, handles, labels, ncol: int) -> None:
    """One legend for the figure, centred under its axes (never over the data)."""
    fig.legend(  # below the figure's edge: the saved image grows to hold it (bbox_inches="tight")
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=ncol,
        frameon=False,
        fontsize=MIN_FONTSIZE,
    )


def training_curves(history: pd.DataFrame, title: str = "") -> plt.Figure:
    """The paper's per-optimizer figure: (a) loss, (b) accuracy, (c) sensitivity, training vs validation,
    on the fixed y ranges of :data:`CURVE_LIMITS` (Figures 4–7 compare at a glance), the legend under the plots."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    epochs = np.arange(1, len(history) + 1)
    for ax, (key, label) in zip(axes, CURVE_PANELS):
        ax.plot(epochs, history[key], marker="o", ms=3, label="training")
        values = [history[key].to_numpy()]
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker="s", ms=3, label="validation")
            values.append(history[f"val_{key}"].to_numpy())
        ax.set_ylim(*curve_limits(key, np.concatenate(values)))
        ax.set_title(label, fontsize=11)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    _legend_below(fig, *axes[0].get_legend_handles_labels(), ncol=2)
    return fig


def optimizer_panel(histories: dict[str, pd.DataFrame]) -> plt.Figure:
    """Figures 4–7 on one set of axes: each optimizer's training (solid) and validation (dashed) curves,
    per panel of :data:`CURVE_PANELS`, on the same fixed y ranges."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    for i, (name, history) in enumerate(histories.items()):
        epochs = np.arange(1, len(history) + 1)
        for ax, (key, _) in zip(axes, CURVE_PANELS):
            ax.plot(epochs, history[key], color=f"C{i}", lw=1.6, label=f"{name}, training")
            if f"val_{key}" in history:
                ax.plot(
                    epochs,
                    history[f"val_{key}"],
                    color=f"C{i}",
                    lw=1.2,
                    ls="--",
                    label=f"{name}, validation",
                )
    for ax, (key, label) in zip(axes, CURVE_PANELS):
        values = np.concatenate([line.get_ydata() for line in ax.get_lines()] or [np.zeros(0)])
        ax.set_ylim(*curve_limits(key, values))
        ax.set_title(label, fontsize=11)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _legend_below(fig, *axes[0].get_legend_handles_labels(), ncol=4)
    return fig


def roc_and_confusion(evaluation, title: str = "") -> plt.Figure:
    """One-vs-rest ROC curves per class (legend under the plot) and the confusion matrix of one evaluation."""
    fig, (ax_roc, ax_cm) = plt.subplots(1, 2, figsize=(10, 4.8))
    for cls, (fpr, tpr) in evaluation.roc().items():
        auc = evaluation.auc.get(cls)
        shown = _known(auc)
        label = f"{cls} (AUC {float(auc):.2f})" if shown else f"{cls} (AUC not defined)"
        ax_roc.plot(fpr, tpr, color=CLASS_COLOURS.get(cls), label=label)
    ax_roc.plot([0, 1], [0, 1], ls="--", color="0.6", lw=0.8)
    ax_roc.set_xlabel("false-positive rate")
    ax_roc.set_ylabel("true-positive rate")
    ax_roc.set_aspect("equal")
    ax_roc.legend(
        fontsize=MIN_FONTSIZE,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.2),
        frameon=False,
        ncol=1,
    )
    cm = np.asarray(evaluation.confusion)
    sns.heatmap(
        cm,
        annot=True,
        fmt="d",
        cmap="Blues",
        cbar=False,
        ax=ax_cm,
        annot_kws={"fontsize": 11},
        xticklabels=[c.replace("_", "\n") for c in evaluation.classes],
        yticklabels=[c.replace("_", "\n") for c in evaluation.classes],
    )
    ax_cm.set_xlabel("predicted")
    ax_cm.set_ylabel("true")
    ax_cm.tick_params(labelsize=MIN_FONTSIZE)
    plt.setp(ax_cm.get_yticklabels(), rotation=0, va="center")  # wrapped class names read across
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


def roc_panel(evaluations: dict) -> plt.Figure:
    """Macro-averaged one-vs-rest ROC curve of several models on one plot, the legend beside it."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    grid = np.linspace(0, 1, 201)
    for name, ev in evaluations.items():
        curves = ev.roc()
        tpr = np.mean([np.interp(grid, fpr, t) for fpr, t in curves.values()], axis=0)
        auc = _known(ev.auc_macro)
        ax.plot(grid, tpr, label=f"{name} (macro AUC {float(auc):.2f})" if auc else name)
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=0.8)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_aspect("equal")
    ax.legend(fontsize=MIN_FONTSIZE, loc="center left", bbox_to_anchor=(1.03, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def seed_spread(
    runs: pd.DataFrame,
    metrics: tuple[str, ...] = ("accuracy", "AUC", "sensitivity at specificity 0.8"),
) -> plt.Figure:
    """Strip + box plot of test metrics per optimizer over seeds."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sns.boxplot(data=runs, x="optimizer", y=metric, ax=ax, color="0.9", fliersize=0)
        sns.stripplot(
            data=runs,
            x="optimizer",
            y=metric,
            ax=ax,
            hue="optimizer",
            legend=False,
            size=5,
            jitter=0.15,
        )
        ax.set_title(metric, fontsize=11)
        ax.set_xlabel("")
        ax.tick_params(axis="x", labelsize=MIN_FONTSIZE, labelrotation=30)
    fig.tight_layout()
    return fig


def sweep_axes(
    runs: pd.DataFrame,
    axes: list[str],
    metrics: tuple[str, ...] = ("accuracy", "AUC", "sensitivity at specificity 0.8"),
) -> plt.Figure:
    """Each test metric against each grid axis: every run with its CI bar, and the mean over the other axes."""
    axes = axes or [runs.columns[0]]
    fig, grid = plt.subplots(
        len(metrics), len(axes), figsize=(3.6 * len(axes), 2.6 * len(metrics)), squeeze=False
    )
    for row, metric in enumerate(metrics):
        for col, axis in enumerate(axes):
            ax = grid[row][col]
            levels = list(dict.fromkeys(runs[axis]))
            x = runs[axis].map({v: i for i, v in enumerate(levels)}).to_numpy(dtype=float)
            rank = runs.groupby(axis, sort=False).cumcount().to_numpy()
            size = runs.groupby(axis, sort=False)[axis].transform("size").to_numpy()
            jitter = (rank - (size - 1) / 2) * 0.3 / np.maximum(size, 1)
            low, high = runs[f"{metric} low"], runs[f"{metric} high"]
            ax.errorbar(
                x + jitter,
                runs[metric],
                yerr=[runs[metric] - low, high - runs[metric]] if low.notna().all() else None,
                fmt="o",
                ms=4,
                color="0.35",
                ecolor="0.7",
                elinewidth=1,
            )
            means = runs.groupby(axis, sort=False)[metric].mean().reindex(levels)
            ax.plot(range(len(levels)), means.to_numpy(), "-", color="C3", lw=1.5)
            ax.set_xticks(range(len(levels)), [str(v) for v in levels], fontsize=MIN_FONTSIZE)
            ax.set_xlabel(axis if row == len(metrics) - 1 else "")
            ax.set_ylabel(metric if col == 0 else "", fontsize=MIN_FONTSIZE)
    fig.tight_layout()
    return fig


def reliability_panel(evaluations: dict, n_bins: int = 10) -> plt.Figure:
    """Reliability diagram per model: accuracy against mean top-class probability per bin, and the diagonal."""
    from mcalc.evaluate.evaluation import reliability

    n = len(evaluations)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False)
    for ax, (name, ev) in zip(axes.ravel(), evaluations.items()):
        table = reliability(ev, n_bins)
        ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=0.8)
        ax.plot(table["confidence"], table["accuracy"], marker="o", lw=1)
        ax.set_title(f"{name}\nBrier {ev.brier:.3f}", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("mean top-class probability", fontsize=8)
        ax.set_ylabel("accuracy", fontsize=8)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
