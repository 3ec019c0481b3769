"""Figures and captioned tables: read off the model, deterministic, captioned and labelled."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from conftest import displayed

from mcalc.learn.model import find_backbone
from mcalc.records.provenance import Provenance
from mcalc.report import plots


@pytest.fixture
def paper_model(backbone, random_weights):
    """The paper's end-to-end model at the smallest input size, random weights (the shared backbone)."""
    from mcalc.learn.model import build_model

    return build_model(backbone.input_shape[1], random_weights, backbone=backbone)


@pytest.mark.slow
def test_backbone_stages_cover_every_layer_with_the_paper_block_counts(paper_model):
    """Figure 3's stages partition InceptionResNetV2: 10 × A, 20 × B, 10 × C blocks, 1536 pooled features."""
    backbone = find_backbone(paper_model)
    stages = plots.backbone_stages(backbone)
    assert stages["layers"].sum() == len(backbone.layers)
    assert (
        dict(zip(stages["stage"].str.split(" ").str[0], stages["repeats"]))["Inception-ResNet-A"]
        == 10
    )
    assert stages.set_index("stage")["repeats"].filter(like="block17").item() == 20
    assert stages.set_index("stage")["repeats"].filter(like="block8").item() == 10
    assert stages["output"].iloc[-1] == "1536"


@pytest.mark.slow
def test_figure2_lists_backbone_and_head(paper_model):
    """Figure 2 is drawn from the model: one box per stage, the head's Dense layers with their units."""
    fig = plots.figure2(paper_model)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("InceptionResNetV2, frozen" in t for t in texts)
    assert "Dense(128, relu)" in texts and "Dense(3, softmax)" in texts


def test_table_html_is_deterministic_and_the_caption_has_its_bold_lead():
    """The same table renders to the same HTML (stable under nbval); the caption bolds the paper's number."""
    df = pd.DataFrame({"a": [1.23456, 2.0]}, index=["x", "y"])
    prov = Provenance(data="phantom")
    one = plots.table_html(df, "Table 9 — demo")
    assert one == plots.table_html(df, "Table 9 — demo") and "1.235" in one
    assert one != plots.table_html(df, "Table 8 — demo")  # element ids differ between tables
    assert "demo" not in one and "<strong>" not in one  # the caption is not inside the table
    caption = plots.caption_html("Table 9 — demo <b>", prov)
    assert "<strong>Table 9 —</strong> demo &lt;b&gt;" in caption and "PHANTOM" in caption
    assert "<strong>" not in plots.caption_html("Sample ROIs — demo", None)


@pytest.mark.parametrize(
    "caption, key",
    [
        ("Table 4 — test metrics", "table-4"),
        ("Table 5b — benign vs malignant", "table-5b"),
        ("Figure 5 — Output obtained", "figure-5"),
    ],
)
def test_item_key_is_the_paper_number(caption, key):
    assert plots.item_key(caption) == key


def test_item_key_without_a_paper_number_is_stable_or_named():
    """A caption without "Table N —" gets a short hash of itself; an explicit name wins; a bad name is refused."""
    key = plots.item_key("Sample ROIs — four per class")
    assert key == plots.item_key("Sample ROIs — four per class")
    assert key.startswith("item-") and len(key) == len("item-") + 8
    assert key != plots.item_key("Sample ROIs — three per class")
    assert plots.item_key("Table 4 — x", name="svm-rows") == "svm-rows"
    assert plots.item_key("Tables 4 — x") != "table-4"  # not a paper number
    with pytest.raises(ValueError, match="lower-case"):
        plots.item_key("x", name="Table 4")


def test_tables_read_as_a_reader_expects():
    """Readable names, no bare 0..n index, long text given a width, wrapped to scroll inside itself."""
    df = pd.DataFrame({"task_and_data": ["x" * 120, "short"], "ci_low": [0.12345, 0.2]})
    html = plots.table_html(df, "Table 9 — demo")
    assert "task and data" in html and "CI low" in html and "task_and_data" not in html
    assert "row_heading" not in html  # the RangeIndex is hidden
    assert "<div class='mcalc-table'>" in html and "min-width: 24em" in html
    assert "0.123" in html and "0.12345" not in html
    named = plots.table_html(df.set_index(pd.Index(["a", "b"], name="model")), "Table 9 — demo")
    assert "row_heading" in named and ">model<" in named  # a meaningful index stays


def test_show_table_glues_the_table_and_keeps_its_csv_for_the_bundle(monkeypatch):
    """The caption, then the table as one output glued (and shown) under its key, carrying caption,
    provenance and CSV in its metadata."""
    df = pd.DataFrame({"a": [1.5, 2.5]})
    shown = displayed(
        monkeypatch, plots.show_table, df, "Table 9 — demo", Provenance(data="phantom")
    )
    assert len(shown) == 2
    caption, table = shown
    assert caption.metadata["mcalc"] == {"caption_of": "table-9"}
    assert "<strong>Table 9 —</strong> demo" in caption.data["text/html"]
    assert table.metadata["scrapbook"] == {"name": "table-9", "mime_prefix": ""}
    item = table.metadata["mcalc"]["item"]
    assert item["key"] == "table-9" and item["caption"] == "Table 9 — demo"
    assert "PHANTOM" in item["provenance"]
    assert "mcalc-table" in table.data["text/html"] and "demo" not in table.data["text/html"]
    record = table.metadata["mcalc"]["table"]
    assert record["caption"] == "Table 9 — demo" and "PHANTOM" in record["provenance"]
    assert pd.read_csv(__import__("io").StringIO(record["csv"]))["a"].tolist() == [1.5, 2.5]


def test_an_empty_table_is_one_sentence_or_nothing_never_a_captioned_none(monkeypatch):
    """A table without rows shows only its explanatory sentence (no caption, not glued), or nothing."""
    shown = displayed(
        monkeypatch, plots.show_table, pd.DataFrame(), "Table 9 — demo", None, empty="No run."
    )
    assert len(shown) == 1 and "scrapbook" not in shown[0].metadata
    assert "Table 9" not in shown[0].data["text/html"] and "No run." in shown[0].data["text/html"]
    assert displayed(monkeypatch, plots.show_table, pd.DataFrame(), "Table 9 — demo", None) == []


def test_show_figure_glues_the_image_with_its_caption(monkeypatch):
    import matplotlib.pyplot as plt

    fig, _ = plt.subplots()
    shown = displayed(
        monkeypatch, plots.show_figure, fig, "ROC curves — demo", None, name="roc-demo"
    )
    image, caption = shown
    assert "image/png" in image.data and image.metadata["scrapbook"]["name"] == "roc-demo"
    assert image.metadata["mcalc"]["item"] == {
        "key": "roc-demo",
        "caption": "ROC curves — demo",
        "provenance": "",
    }
    assert "table" not in image.metadata["mcalc"]
    assert caption.metadata["mcalc"]["caption_of"] == "roc-demo"


def test_wide_figures_shrink_to_the_page_at_twice_the_resolution_provenance_under_the_caption(
    monkeypatch,
):
    """A 12-inch figure is shown at page width from an image twice as wide; the provenance is in the
    caption only (never drawn into the image)."""
    import io

    import IPython.display
    import matplotlib.pyplot as plt
    from PIL import Image

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj))
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4))
    prov = Provenance(data="phantom", data_detail="x" * 80, weights="random")
    plots.show_figure(fig, "Figure 9 — demo", prov)
    assert not any("PHANTOM" in t.get_text() for t in fig.texts)
    width, _ = Image.open(io.BytesIO(shown[0].data)).size
    assert shown[0].width * plots.DISPLAY_DENSITY == pytest.approx(width, abs=1)
    assert shown[0].width <= plots.FIGURE_MAX_WIDTH * plots.DISPLAY_DPI * 1.05
    assert "Figure 9 —" in shown[1].data and "PHANTOM" in shown[1].data


def _evaluation():
    """A small three-class evaluation (no bootstrap)."""
    import numpy as np

    from mcalc.evaluate import metrics

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    proba = rng.dirichlet([1, 1, 1], size=len(y))
    return metrics.evaluate(y, proba, n_boot=0)


def _history(scale: float):
    """A training history whose values lie in a narrow band (as Adadelta's do)."""
    import numpy as np

    epochs = 5
    band = np.linspace(0, 1e-4, epochs) * scale
    return pd.DataFrame(
        {
            "loss": 1.099 + band,
            "val_loss": 1.0992 + band,
            "accuracy": 0.3 + band,
            "val_accuracy": 0.31 + band,
            "sensitivity_at_specificity": 0.2 + band,
            "val_sensitivity_at_specificity": 0.21 + band,
        }
    )


def _texts(fig):
    """Every non-empty text of a figure (titles, labels, ticks, legends, annotations)."""
    import matplotlib.text

    fig.canvas.draw()
    return [
        t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()
    ]


def test_figure_text_is_at_least_10_pt():
    """The curves, ROC, confusion and panel figures use no text smaller than MIN_FONTSIZE."""
    import matplotlib.pyplot as plt

    ev = _evaluation()
    for fig in (
        plots.training_curves(_history(1), title="Adam"),
        plots.optimizer_panel({"Adam": _history(1), "Adadelta": _history(2)}),
        plots.roc_and_confusion(ev, title="Adam"),
        plots.roc_panel({"a": ev, "b": ev}),
    ):
        small = [(t.get_text(), t.get_fontsize()) for t in _texts(fig) if t.get_fontsize() < 10]
        plt.close(fig)
        assert small == []


def test_training_curves_share_fixed_axes_whatever_the_values():
    """Figures 4–7 compare at a glance: a flat loss near 1.099 is drawn on the same 0–1.5 axis as any other."""
    import matplotlib.pyplot as plt

    limits = []
    for scale in (1, 50):
        fig = plots.training_curves(_history(scale))
        limits.append([ax.get_ylim() for ax in fig.axes])
        plt.close(fig)
    assert limits[0] == limits[1]
    assert limits[0][0] == plots.CURVE_LIMITS["loss"] and limits[0][1] == (0.0, 1.0)
    assert plots.curve_limits("loss", [0.2, 2.3]) == (0.0, 2.5)  # widened, never clipped


def test_legends_lie_outside_the_data():
    """No legend box overlaps an axes' plotting area, its tick labels or its axis labels."""
    import matplotlib.pyplot as plt

    ev = _evaluation()
    for fig in (
        plots.training_curves(_history(1)),
        plots.optimizer_panel({"Adam": _history(1), "RMSprop": _history(3)}),
        plots.roc_and_confusion(ev),
        plots.roc_panel({"a": ev}),
    ):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        assert legends
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for ax in fig.axes:  # neither the data nor the axis labels and ticks
                for part in (ax, ax.xaxis, ax.yaxis):
                    other = (
                        part.get_window_extent(renderer)
                        if part is ax
                        else part.get_tightbbox(renderer)
                    )
                    assert other is None or not box.overlaps(other), (ax.get_title(), part)
        plt.close(fig)


@pytest.mark.parametrize(
    "calc_type, distribution, title",
    [
        ("PLEOMORPHIC", "CLUSTERED", "pleomorphic\nclustered"),
        (float("nan"), "SEGMENTAL", "segmental"),
        (None, float("nan"), "type not recorded"),
        ("PUNCTATE-AMORPHOUS-PLEOMORPHIC-FINE_LINEAR_BRANCHING", "nan", "punctate-amorphous-pl…"),
    ],
)
def test_roi_titles_never_show_nan(calc_type, distribution, title):
    """A sample ROI's panel title leaves out missing metadata instead of printing 'nan'."""
    assert plots.roi_title(calc_type, distribution) == title


def test_interval_cells_never_wrap_and_other_cells_may():
    """A "[0.333, 0.467]" cell under a "95% CI" header (two-level or not) is kept on one line."""
    cols = pd.MultiIndex.from_tuples([("accuracy", "ours"), ("accuracy", "95% CI")])
    df = pd.DataFrame([[0.4, "[0.333, 0.467]"]], columns=cols, index=["svm"])
    html = plots.table_html(df, "Table 9 — demo")
    nowrap = re.findall(r"#(T_\w+) \{\s*white-space: nowrap", html)
    assert len(nowrap) == 1 and nowrap[0].endswith("_row0_col1")  # the interval cell, only it
    assert "white-space: nowrap" not in plots.table_html(df.iloc[:, :1], "Table 9 — demo")


def test_missing_weights_are_one_sentence_and_a_link_the_reason_in_the_kernel_log(capsys):
    """A random backbone in place of ImageNet is one sentence with a link; the resolver's message goes to stderr."""
    from mcalc.learn.weights import WeightsInfo

    fallback = WeightsInfo(
        "auto", "random", None, None, "not available: gaierror at /root/.keras/models"
    )
    sentence = plots.weights_sentence(fallback)
    assert "randomly initialised" in sentence and "href='../intro.html#" in sentence
    assert "gaierror" not in sentence and "/root/" not in sentence and sentence.count(". ") <= 1
    assert plots.weights_sentence(WeightsInfo("imagenet", "imagenet", "x", "y", "ok")) == ""
    assert plots.weights_sentence(WeightsInfo("random", "random", None, None, "asked")) == ""
    plots.log(fallback.note)
    out = capsys.readouterr()
    assert "gaierror" in out.err and out.out == ""


def test_table1_chart_draws_the_official_and_the_paper_counts():
    """One bar per class and source in each split, labelled with the counts of Table 1 (total left out)."""
    import matplotlib.pyplot as plt

    from mcalc.evaluate import metadata

    t1 = metadata.table1()
    fig = plots.table1_chart(t1)
    labels = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert {"67", "99", "129", "94", "474", "545"} <= labels  # official and paper, both splits
    assert "1546" not in labels and "326" not in labels  # no total bar
    assert all(t.get_fontsize() >= 10 for t in _texts(fig))
    plt.close(fig)
