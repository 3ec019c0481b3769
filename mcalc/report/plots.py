"""Figures and captioned tables of the book: every one carries its caption and its provenance label."""

from __future__ import annotations

import functools
import hashlib
import html
import re
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from mcalc import names
from mcalc.learn.model import find_backbone
from mcalc.paper import IMAGE_SIZE
from mcalc.records.provenance import Provenance
from mcalc.study import CLASSES

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
    (:mod:`mcalc.report.present` writes them under it in the book) and, for a table, its CSV record (the results bundle)."""
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


FIGURE_MAX_WIDTH = 7.5  # inches: a wider figure is shrunk to this (text keeps its size) to stay legible at page width
DISPLAY_DPI = (
    100  # CSS px per inch a figure is shown at: 7.5 in → 750 px, about the book's text column
)
DISPLAY_DENSITY = 2  # image pixels per CSS px (sharp on high-density screens)
MIN_FONTSIZE = 10  # pt: no text of a figure smaller, so it reads at the column's width
#: Fixed y ranges of the per-optimizer curves (Figures 4–7), so that the four figures compare at a glance.
CURVE_LIMITS = {
    "loss": (0.0, 1.5),
    "accuracy": (0.0, 1.0),
    "sensitivity_at_specificity": (0.0, 1.0),
}


def readable(name: object) -> object:
    """A column or index name as a reader should see it ("task_and_data" → "task and data", "auc_pooled" →
    its display name from :data:`mcalc.names.METRIC_NAMES`)."""
    return names.column_name(name)


def for_reader(df: pd.DataFrame) -> pd.DataFrame:
    """The table with readable column / index names, and metric identifiers (in a "metric" column or
    index) as their display names (the numbers untouched)."""
    out = df.rename(columns=readable)
    if "metric" in df.columns and not pd.api.types.is_numeric_dtype(df["metric"]):
        out["metric"] = df["metric"].map(names.metric_name)
    if df.index.nlevels == 1 and not pd.api.types.is_numeric_dtype(df.index):
        out.index = df.index.map(names.metric_name)
    elif "metric" in df.index.names:
        out = out.rename(index=names.metric_name, level="metric")
    out.index = out.index.set_names([readable(n) for n in out.index.names])
    return out


def _is_number(value: object) -> bool:
    """True for an int or float (not a bool, not a string)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def number_formats(df: pd.DataFrame, precision: int = 3) -> dict:
    """Per numeric column, how its cells are written (:func:`mcalc.names.number`): counts as integers,
    shares as percentages, small values in scientific notation."""
    formats = {}
    for col in df.columns:
        values = df[col]
        if pd.api.types.is_bool_dtype(values):
            continue
        if not pd.api.types.is_numeric_dtype(
            values
        ):  # numbers with gaps (None) in an object column
            present = values.dropna()
            if present.empty or not present.map(_is_number).all():
                continue
        count = pd.api.types.is_integer_dtype(values) or names.integral(values.tolist())
        share = not count and names.is_share(col)
        formats[col] = functools.partial(
            names.number, precision=precision, count=count, share=share
        )
    return formats


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
    shown = for_reader(df)
    formats = number_formats(shown, precision)
    styler = shown.style.format(precision=precision, na_rep="—").set_uuid(uid)
    if formats:
        styler = styler.format(formats, na_rep="—")
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
    empty: str = "",
    name: str | None = None,
) -> None:
    """Display a table's caption ("Table N — ...", with the provenance label) and the table; a table without
    rows shows nothing, or only the sentence ``empty`` (never a captioned "(none)").

    The table is one output, glued (myst-nb) under :func:`item_key` and carrying its caption, provenance
    and CSV (``mcalc.table``, for the book's results bundle) in its metadata; the caption is its own
    output. In the book :func:`mcalc.report.present.present` shows them as one numbered, citable figure.
    """
    from IPython.display import HTML, display

    if df is None or len(df) == 0:
        if empty:
            display(HTML(f"<p class='mcalc-empty'>{html.escape(empty)}</p>"))
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


#: Where the book explains the data and weights behind its results (relative to an executed chapter).
PROVENANCE_SECTION = "../intro.html#what-produced-these-pages"


def log(message: str) -> None:
    """A run message for the kernel's log (stderr), never shown in the book."""
    import sys

    print(message, file=sys.stderr)


def weights_sentence(info, link: str = PROVENANCE_SECTION) -> str:
    """One sentence (HTML) when the backbone is not the ImageNet one that was asked for, else ''."""
    if info.used == "imagenet" or info.requested == "random":
        return ""
    if info.used == "random":
        what = (
            "The ImageNet weights of InceptionResNetV2 were not available on this machine, so the "
            "backbone is randomly initialised (seeded) and its results test the pipeline, not the paper."
        )
    else:
        what = f"The backbone's weights come from {html.escape(info.used.removeprefix('file:'))}."
    return f"{what} <a href='{html.escape(link)}'>How to use the ImageNet weights</a>."


def show_note(text_html: str) -> None:
    """Display one short sentence (HTML) as a note of the chapter; nothing when it is empty."""
    from IPython.display import HTML, display

    if text_html:
        display(HTML(f"<p class='mcalc-note'>{text_html}</p>"))


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


def figure_png(fig: plt.Figure) -> tuple[bytes, int]:
    """The figure as a PNG at DISPLAY_DENSITY × DISPLAY_DPI, and the width (CSS px) to show it at."""
    import io

    from PIL import Image as PILImage

    buffer = io.BytesIO()
    fig.savefig(  # independent of the kernel's matplotlib backend
        buffer, format="png", dpi=DISPLAY_DPI * DISPLAY_DENSITY, bbox_inches="tight"
    )
    data = buffer.getvalue()
    width = PILImage.open(io.BytesIO(data)).size[0]
    return data, int(width // DISPLAY_DENSITY)


def show_figure(
    fig: plt.Figure, caption: str, provenance: Provenance | None = None, name: str | None = None
) -> None:
    """Display a figure, then its caption ("Figure N — ...") with the provenance label; close the figure.

    The image is one output at twice its displayed resolution (sharp on high-density screens), glued
    (myst-nb) under :func:`item_key` with its caption and provenance in its metadata; in the book
    :func:`mcalc.report.present.present` shows them as one numbered, citable figure, the provenance under the
    caption (once: never inside the image).
    """
    from IPython.display import HTML, Image, display

    key = item_key(caption, name)
    fit_page(fig)
    data, width = figure_png(fig)
    plt.close(fig)
    display(
        Image(data=data, format="png", width=width),
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
    from mcalc.learn.preprocessing import read_dicom_image

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

    from mcalc.learn.preprocessing import read_dicom_image, resize_for_display

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
        ax.text(0.5, y + 0.09, title, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(0.5, y - 0.16, sub, ha="center", va="center", fontsize=MIN_FONTSIZE)
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


def glue_numbers(**values: object) -> None:
    """Glue a chapter's key numbers (myst-nb) for its prose and its "What this chapter found"; nothing shown here."""
    from myst_nb import glue

    for name, value in values.items():
        glue(name, value.item() if hasattr(value, "item") else value, display=False)


def reliability_panel(evaluations: dict, n_bins: int = 10) -> plt.Figure:
    """Reliability diagram per model: accuracy against mean top-class probability per bin, and the diagonal."""
    from mcalc.evaluate.metrics import reliability

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
