"""Figures and captioned tables of the book: every one carries its caption and its provenance label."""

from __future__ import annotations

import hashlib
import html
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from mcalc.curation import CLASSES
from mcalc.model import find_backbone
from mcalc.provenance import Provenance

CLASS_COLOURS = dict(zip(CLASSES, sns.color_palette("colorblind", 3)))


#: A caption's paper number: "Table 4 —", "Table 5b —", "Figure 5 —".
ITEM_LEAD = re.compile(r"^(Table|Figure) (\d+[a-z]?) —")
ITEM_KEY = re.compile(r"^[a-z][a-z0-9-]*$")  # a glue key that is also a readable Sphinx label


def item_key(caption: str, name: str | None = None) -> str:
    """The glue key of a captioned table / figure: ``name`` if given, else 'table-4' from "Table 4 — …", else a short hash of the caption."""
    if name is not None:
        if not ITEM_KEY.match(name):
            raise ValueError(
                f"item name {name!r}: lower-case letters, digits and hyphens, a letter first"
            )
        return name
    lead = ITEM_LEAD.match(caption)
    if lead:
        return f"{lead[1].lower()}-{lead[2]}"
    return "item-" + hashlib.sha1(caption.encode()).hexdigest()[:8]


def split_lead(caption: str) -> tuple[str, str]:
    """("Table 4 —", "the rest") for a numbered caption; ("", caption) otherwise."""
    lead = ITEM_LEAD.match(caption)
    return (lead[0], caption[lead.end() :].lstrip()) if lead else ("", caption)


def caption_html(caption: str, provenance: Provenance | None) -> str:
    """Bold 'Table N —'/'Figure N —' lead, the caption, and the provenance line."""
    lead, rest = split_lead(caption)
    text = (
        f"<strong>{html.escape(lead)}</strong> {html.escape(rest)}" if lead else html.escape(rest)
    )
    prov = f"<br><em>{html.escape(provenance.label())}</em>" if provenance is not None else ""
    return f"<p class='mcalc-caption'>{text}{prov}</p>"


def item_metadata(
    key: str, caption: str, provenance: Provenance | None, table: dict | None = None
) -> dict:
    """An item output's metadata: glued under ``key`` and still displayed (myst-nb), its caption and provenance
    (:mod:`mcalc.present` writes them under it in the book) and, for a table, its CSV record (the results bundle)."""
    mcalc = {
        "item": {
            "key": key,
            "caption": caption,
            "provenance": provenance.label() if provenance is not None else "",
        }
    }
    if table is not None:
        mcalc["table"] = table
    return {"scrapbook": {"name": key, "mime_prefix": ""}, "mcalc": mcalc}


def caption_metadata(key: str) -> dict:
    """A caption output's metadata: which item it is the caption of."""
    return {"mcalc": {"caption_of": key}}


#: Column names shown as the reader should read them (others: underscores become spaces).
READABLE_NAMES = {"ci_low": "CI low", "ci_high": "CI high", "auc": "AUC", "n": "n"}
FIGURE_MAX_WIDTH = 8.0  # inches: a wider figure is shrunk to this (text keeps its size) to stay legible at page width
PROVENANCE_FONTSIZE = 8


def readable(name: object) -> object:
    """A column or index name as a reader should see it ("task_and_data" → "task and data")."""
    if not isinstance(name, str):
        return name
    return READABLE_NAMES.get(name, name.replace("_", " "))


def for_reader(df: pd.DataFrame) -> pd.DataFrame:
    """The table with readable column / index names (the data untouched)."""
    out = df.rename(columns=readable)
    out.index = out.index.set_names([readable(n) for n in out.index.names])
    return out


def _meaningless_index(df: pd.DataFrame) -> bool:
    """True for an unnamed 0..n-1 index (nothing a reader needs)."""
    return isinstance(df.index, pd.RangeIndex) and df.index.name is None


def _is_interval(column: object) -> bool:
    """A column of confidence intervals ("95% CI", or a two-level header ending in it)."""
    last = column[-1] if isinstance(column, tuple) else column
    return isinstance(last, str) and re.search(r"\bCI\b", last) is not None


def _text_widths(df: pd.DataFrame, long: int = 40) -> dict:
    """Columns of long text → a minimum width in em (about a quarter of their longest entry, at most 24)."""
    widths = {}
    for col in df.columns:
        if df[col].dtype == object or pd.api.types.is_string_dtype(df[col]):
            longest = df[col].map(lambda v: len(str(v))).max()
            if longest > long:
                widths[readable(col)] = min(24, max(10, round(longest / 4)))
    return widths


def table_html(df: pd.DataFrame, caption: str, precision: int = 3) -> str:
    """A deterministic HTML rendering of a table (stable for nbval; its element ids from the caption).

    Readable column names, no bare 0..n index, numbers to ``precision`` decimals, and a wrapper that
    scrolls a wide table inside itself instead of overflowing the page.
    """
    uid = hashlib.sha1(caption.encode()).hexdigest()[:8]
    styler = for_reader(df).style.format(precision=precision, na_rep="—").set_uuid(uid)
    if _meaningless_index(df):
        styler = styler.hide(axis="index")
    widths = _text_widths(df)
    intervals = [c for c in styler.data.columns if _is_interval(c)]
    if intervals:  # "[0.333, 0.467]" reads as one value: never broken over two lines
        styler = styler.set_properties(subset=intervals, **{"white-space": "nowrap"})
    if widths:  # long text gets a reading width (the table scrolls) rather than a one-word column
        styler = styler.set_table_styles(
            {col: [{"selector": "", "props": f"min-width: {em}em"}] for col, em in widths.items()},
            overwrite=False,
        )
    return f"<div class='mcalc-table'>{styler.to_html()}</div>"


def show_table(
    df: pd.DataFrame,
    caption: str,
    provenance: Provenance | None = None,
    precision: int = 3,
    empty: str = "(none)",
    name: str | None = None,
) -> None:
    """Display a table's caption ("Table N — ...", with the provenance label) and the table (``empty`` if no rows).

    The table is one output, glued (myst-nb) under :func:`item_key` and carrying its caption, provenance
    and CSV (``mcalc.table``, for the book's results bundle) in its metadata; the caption is its own
    output. In the book :func:`mcalc.present.present` shows them as one numbered, citable figure.
    """
    from IPython.display import HTML, display

    if df is None or len(df) == 0:
        display(HTML(caption_html(caption, provenance) + f"<p>{html.escape(empty)}</p>"))
        return
    key = item_key(caption, name)
    record = {
        "caption": caption,
        "provenance": provenance.label() if provenance is not None else "",
        "csv": df.to_csv(index=not _meaningless_index(df)),
    }
    display(HTML(caption_html(caption, provenance)), metadata=caption_metadata(key))
    display(
        HTML(table_html(df, caption, precision)),
        metadata=item_metadata(key, caption, provenance, record),
    )


def fit_page(fig: plt.Figure, max_width: float = FIGURE_MAX_WIDTH) -> None:
    """Shrink a figure wider than ``max_width`` inches (text keeps its point size, so it reads larger)."""
    import warnings

    width, height = fig.get_size_inches()
    if width <= max_width:
        return
    fig.set_size_inches(max_width, height * max_width / width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tight_layout's "not compatible" notes on special axes
        fig.tight_layout()


def show_figure(
    fig: plt.Figure, caption: str, provenance: Provenance | None = None, name: str | None = None
) -> None:
    """Display a figure, then its caption ("Figure N — ...") with the provenance label; close the figure.

    The image is one output, glued (myst-nb) under :func:`item_key` with its caption and provenance in
    its metadata; in the book :func:`mcalc.present.present` shows them as one numbered, citable figure.
    """
    import io

    from IPython.display import HTML, Image, display

    key = item_key(caption, name)
    fit_page(fig)
    if provenance is not None:  # under the figure, wrapped to its width (never widening the image)
        fig.text(
            0.005,
            -0.01,
            provenance.label(),
            ha="left",
            va="top",
            fontsize=PROVENANCE_FONTSIZE,
            color="0.3",
            wrap=True,
        )
    buffer = io.BytesIO()
    fig.savefig(
        buffer, format="png", dpi=110, bbox_inches="tight"
    )  # independent of the kernel's matplotlib backend
    plt.close(fig)
    display(
        Image(data=buffer.getvalue(), format="png"),
        metadata=item_metadata(key, caption, provenance),
    )
    display(HTML(caption_html(caption, provenance)), metadata=caption_metadata(key))


def _pick_per_class(manifest: pd.DataFrame, n: int, seed: int) -> dict[str, pd.DataFrame]:
    """Up to ``n`` rows of each class, sampled reproducibly."""
    return {
        c: g.sample(n=min(n, len(g)), random_state=seed)
        for c, g in manifest.groupby("pathology")
        if len(g)
    }


def sample_grid(manifest: pd.DataFrame, n_per_class: int = 4, seed: int = 0) -> plt.Figure:
    """A grid of cropped ROIs, one row per class."""
    from mcalc.preprocessing import read_dicom_image

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
                ax.imshow(read_dicom_image(row["crop_path"]), cmap="gray")
                ax.set_title(
                    f"{row['calc_type']}\n{row['calc_distribution']}".lower()[:48], fontsize=8
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


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of the non-zero part of a mask."""
    rows, cols = np.nonzero(mask)
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


def figure1(manifest: pd.DataFrame, image_size: int = 299, seed: int = 0) -> plt.Figure:
    """Figure 1: (a) mammogram with the ROI box, (b) cropped ROI, resized (c) antialiased (default) and (d) point-sampled."""
    from matplotlib.patches import Rectangle

    from mcalc.preprocessing import read_dicom_image, resize_for_display

    picks = _pick_per_class(manifest, 1, seed)
    fig, axes = plt.subplots(len(CLASSES), 4, figsize=(12, 3.2 * len(CLASSES)), squeeze=False)
    for r, cls in enumerate(CLASSES):
        for ax in axes[r]:
            ax.axis("off")
        if cls not in picks:
            continue
        row = picks[cls].iloc[0]
        full = read_dicom_image(row["full_path"])
        crop = read_dicom_image(row["crop_path"])
        axes[r, 0].imshow(full, cmap="gray")
        mask = read_dicom_image(row["mask_path"])
        if mask.shape == full.shape and mask.max() > mask.min():
            r0, r1, c0, c1 = _bbox(mask > mask.min())
            axes[r, 0].add_patch(
                Rectangle((c0, r0), c1 - c0, r1 - r0, fill=False, edgecolor="red", linewidth=1.2)
            )
        axes[r, 0].set_title(f"(a) {cls}\n{row['roi_id']}", fontsize=9)
        axes[r, 1].imshow(crop, cmap="gray")
        axes[r, 1].set_title(f"(b) cropped ROI\n{crop.shape[1]} × {crop.shape[0]}", fontsize=9)
        axes[r, 2].imshow(resize_for_display(crop, image_size), cmap="gray")
        axes[r, 2].set_title(f"(c) {image_size} × {image_size}\nantialiased bicubic", fontsize=9)
        axes[r, 3].imshow(resize_for_display(crop, image_size, antialias=False), cmap="gray")
        axes[r, 3].set_title(f"(d) {image_size} × {image_size}\npoint-sampled cubic", fontsize=9)
    fig.tight_layout()
    return fig


def _shape(layer) -> str:
    """A layer's output shape without the batch axis, as 'H × W × C'."""
    shape = tuple(layer.output.shape)[1:]
    return " × ".join(str(s) for s in shape)


def backbone_stages(backbone) -> pd.DataFrame:
    """InceptionResNetV2's stages (stem, blocks, reductions, pooling) read off the built Keras model.

    A stage ends at a named layer (the branch convolutions inside a block are auto-named, so each stage
    runs up to its last named layer): stem → mixed_5b; Inception-ResNet-A → last block35_*;
    Reduction-A → mixed_6a; Inception-ResNet-B → last block17_*; Reduction-B → mixed_7a;
    Inception-ResNet-C → the layer before conv_7b; the final 1×1 convolution → conv_7b_ac; then pooling.
    """
    names = [layer.name for layer in backbone.layers]

    def last(prefix: str) -> int:
        """Index of the last layer whose name starts with ``prefix``."""
        return max(i for i, n in enumerate(names) if n.startswith(prefix))

    ends = [
        ("Stem", names.index("mixed_5b"), None),
        ("Inception-ResNet-A (block35)", last("block35_"), r"^block35_\d+_mixed$"),
        ("Reduction-A (mixed_6a)", names.index("mixed_6a"), None),
        ("Inception-ResNet-B (block17)", last("block17_"), r"^block17_\d+_mixed$"),
        ("Reduction-B (mixed_7a)", names.index("mixed_7a"), None),
        ("Inception-ResNet-C (block8)", names.index("conv_7b") - 1, r"^block8_\d+_mixed$"),
        ("Final 1×1 convolution (conv_7b)", last("conv_7b"), None),
        ("Global average pooling", len(names) - 1, None),
    ]
    rows, begin = [], 0
    for stage, stop, block in ends:
        members = names[begin : stop + 1]
        repeats = sum(bool(re.match(block, n)) for n in members) if block else 0
        rows.append(
            {
                "stage": stage,
                "layers": len(members),
                "repeats": repeats,
                "output": _shape(backbone.layers[stop]),
            }
        )
        begin = stop + 1
    return pd.DataFrame(rows)


def _draw_stack(ax, boxes: list[tuple[str, str]], colours: list) -> None:
    """Draw labelled boxes top-to-bottom joined by arrows."""
    n = len(boxes)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, n)
    ax.axis("off")
    for i, ((title, sub), colour) in enumerate(zip(boxes, colours)):
        y = n - i - 0.5
        ax.add_patch(
            plt.Rectangle(
                (0.08, y - 0.32), 0.84, 0.64, facecolor=colour, edgecolor="0.2", linewidth=0.8
            )
        )
        ax.text(0.5, y + 0.09, title, ha="center", va="center", fontsize=10, weight="bold")
        ax.text(0.5, y - 0.16, sub, ha="center", va="center", fontsize=9)
        if i < n - 1:
            ax.annotate(
                "",
                xy=(0.5, y - 0.5),
                xytext=(0.5, y - 0.32),
                arrowprops={"arrowstyle": "->", "color": "0.3"},
            )


def figure2(model) -> plt.Figure:
    """Figure 2: the proposed network (input → frozen backbone → Dense(128, ReLU) → Dense(3, softmax)), from the model."""
    backbone = find_backbone(model)
    boxes, colours = [], []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            boxes.append(("Input (grey ROI copied to 3 channels)", _shape(layer)))
        elif layer is backbone:
            boxes.append(
                (
                    f"InceptionResNetV2, frozen ({layer.count_params():,} parameters)",
                    f"pooled features {_shape(layer)}",
                )
            )
        elif kind == "Dense":
            act = layer.get_config()["activation"]
            boxes.append(
                (
                    f"Dense({layer.units}, {act})",
                    f"{_shape(layer)} · {layer.count_params():,} trainable parameters",
                )
            )
        elif hasattr(layer, "layers"):
            for sub in layer.layers:
                if type(sub).__name__ == "Dense":
                    act = sub.get_config()["activation"]
                    boxes.append(
                        (
                            f"Dense({sub.units}, {act})",
                            f"{_shape(sub)} · {sub.count_params():,} trainable parameters",
                        )
                    )
        else:
            continue
        colours.append("#dbe9f6" if "Inception" in boxes[-1][0] else "#fde3c8")
    while len(colours) < len(boxes):
        colours.append("#fde3c8")
    fig, ax = plt.subplots(figsize=(6, 0.9 * len(boxes) + 0.6))
    _draw_stack(ax, boxes, colours)
    fig.tight_layout()
    return fig


def figure3(model) -> plt.Figure:
    """Figure 3: InceptionResNetV2's stages with their output grids, read off the built backbone."""
    stages = backbone_stages(find_backbone(model))
    boxes = [
        (
            row.stage + (f" × {row.repeats}" if row.repeats else ""),
            f"{row.layers} layers → {row.output}",
        )
        for row in stages.itertuples()
    ]
    palette = sns.color_palette("pastel", len(boxes))
    fig, ax = plt.subplots(figsize=(6, 0.75 * len(boxes) + 0.6))
    _draw_stack(ax, boxes, list(palette))
    fig.tight_layout()
    return fig


def training_curves(history: pd.DataFrame, title: str = "") -> plt.Figure:
    """The paper's per-optimizer figure: (a) loss, (b) accuracy, (c) sensitivity, training vs validation."""
    panels = [
        ("loss", "(a) loss (KL divergence)"),
        ("accuracy", "(b) accuracy"),
        ("sensitivity_at_specificity", "(c) sensitivity at specificity 0.8"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    epochs = np.arange(1, len(history) + 1)
    for ax, (key, label) in zip(axes, panels):
        ax.plot(epochs, history[key], marker="o", ms=3, label="training")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker="s", ms=3, label="validation")
        ax.set_title(label, fontsize=11)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=10)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


def roc_and_confusion(evaluation, title: str = "") -> plt.Figure:
    """One-vs-rest ROC curves per class and the confusion matrix of one evaluation."""
    fig, (ax_roc, ax_cm) = plt.subplots(1, 2, figsize=(10, 4))
    for cls, (fpr, tpr) in evaluation.roc().items():
        auc = evaluation.auc.get(cls, float("nan"))
        ax_roc.plot(fpr, tpr, color=CLASS_COLOURS.get(cls), label=f"{cls} (AUC {auc:.2f})")
    ax_roc.plot([0, 1], [0, 1], ls="--", color="0.6", lw=0.8)
    ax_roc.set_xlabel("false-positive rate")
    ax_roc.set_ylabel("true-positive rate")
    ax_roc.legend(fontsize=9, loc="lower right")
    cm = np.asarray(evaluation.confusion)
    sns.heatmap(
        cm,
        annot=True,
        fmt="d",
        cmap="Blues",
        cbar=False,
        ax=ax_cm,
        xticklabels=[c.replace("_", "\n") for c in evaluation.classes],
        yticklabels=[c.replace("_", "\n") for c in evaluation.classes],
    )
    ax_cm.set_xlabel("predicted")
    ax_cm.set_ylabel("true")
    ax_cm.tick_params(labelsize=9)
    plt.setp(ax_cm.get_yticklabels(), rotation=0, va="center")  # wrapped class names read across
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


def roc_panel(evaluations: dict) -> plt.Figure:
    """Macro-averaged one-vs-rest ROC curve of several models on one plot."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    grid = np.linspace(0, 1, 201)
    for name, ev in evaluations.items():
        curves = ev.roc()
        tpr = np.mean([np.interp(grid, fpr, t) for fpr, t in curves.values()], axis=0)
        ax.plot(grid, tpr, label=f"{name} (macro AUC {ev.auc_macro:.2f})")
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=0.8)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.legend(fontsize=9, loc="lower right")
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
        ax.tick_params(axis="x", labelsize=9, labelrotation=30)
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
            ax.set_xticks(range(len(levels)), [str(v) for v in levels], fontsize=8)
            ax.set_xlabel(axis if row == len(metrics) - 1 else "")
            ax.set_ylabel(metric if col == 0 else "", fontsize=8)
    fig.tight_layout()
    return fig


def glue_numbers(**values: object) -> None:
    """Glue a chapter's key numbers (myst-nb) for its prose and its "What this chapter found"; nothing shown here."""
    from myst_nb import glue

    for name, value in values.items():
        glue(name, value.item() if hasattr(value, "item") else value, display=False)


def reliability_panel(evaluations: dict, n_bins: int = 10) -> plt.Figure:
    """Reliability diagram per model: accuracy against mean top-class probability per bin, and the diagonal."""
    from mcalc.metrics import reliability

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
