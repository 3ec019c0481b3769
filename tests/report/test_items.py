"""Captioned tables and figures: glued under their keys, captioned and labelled (mcalc.report.items)."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import displayed

from mcalc.records.provenance import Provenance
from mcalc.report import items


def test_the_caption_has_its_bold_lead_and_the_provenance():
    """The caption bolds the paper's number, escapes its text and carries the provenance label."""
    caption = items.caption_html("Table 9 — demo <b>", Provenance(data="phantom"))
    assert "<strong>Table 9 —</strong> demo &lt;b&gt;" in caption and "PHANTOM" in caption
    assert "<strong>" not in items.caption_html("Sample ROIs — demo", None)


@pytest.mark.parametrize(
    "caption, key",
    [
        ("Table 4 — test metrics", "table-4"),
        ("Table 5b — benign vs malignant", "table-5b"),
        ("Figure 5 — Output obtained", "figure-5"),
    ],
)
def test_item_key_is_the_paper_number(caption, key):
    assert items.item_key(caption) == key


def test_item_key_without_a_paper_number_is_stable_or_named():
    """A caption without "Table N —" gets a short hash of itself; an explicit name wins; a bad name is refused."""
    key = items.item_key("Sample ROIs — four per class")
    assert key == items.item_key("Sample ROIs — four per class")
    assert key.startswith("item-") and len(key) == len("item-") + 8
    assert key != items.item_key("Sample ROIs — three per class")
    assert items.item_key("Table 4 — x", name="svm-rows") == "svm-rows"
    assert items.item_key("Tables 4 — x") != "table-4"  # not a paper number
    with pytest.raises(ValueError, match="lower-case"):
        items.item_key("x", name="Table 4")


def test_show_table_glues_the_table_and_keeps_its_csv_for_the_bundle(monkeypatch):
    """The caption, then the table as one output glued (and shown) under its key, carrying caption,
    provenance and CSV in its metadata."""
    df = pd.DataFrame({"a": [1.5, 2.5]})
    shown = displayed(
        monkeypatch, items.show_table, df, "Table 9 — demo", Provenance(data="phantom")
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
        monkeypatch, items.show_table, pd.DataFrame(), "Table 9 — demo", None, empty="No run."
    )
    assert len(shown) == 1 and "scrapbook" not in shown[0].metadata
    assert "Table 9" not in shown[0].data["text/html"] and "No run." in shown[0].data["text/html"]
    assert displayed(monkeypatch, items.show_table, pd.DataFrame(), "Table 9 — demo", None) == []


def test_show_figure_glues_the_image_with_its_caption(monkeypatch):
    import matplotlib.pyplot as plt

    fig, _ = plt.subplots()
    shown = displayed(
        monkeypatch, items.show_figure, fig, "ROC curves — demo", None, name="roc-demo"
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
    items.show_figure(fig, "Figure 9 — demo", prov)
    assert not any("PHANTOM" in t.get_text() for t in fig.texts)
    width, _ = Image.open(io.BytesIO(shown[0].data)).size
    assert shown[0].width * items.DISPLAY_DENSITY == pytest.approx(width, abs=1)
    assert shown[0].width <= items.FIGURE_MAX_WIDTH * items.DISPLAY_DPI * 1.05
    assert "Figure 9 —" in shown[1].data and "PHANTOM" in shown[1].data


def test_missing_weights_are_one_sentence_and_a_link_the_reason_in_the_kernel_log(capsys):
    """A random backbone in place of ImageNet is one sentence with a link; the resolver's message goes to stderr."""
    from mcalc.learn.weights import WeightsInfo

    fallback = WeightsInfo(
        "auto", "random", None, None, "not available: gaierror at /root/.keras/models"
    )
    sentence = items.weights_sentence(fallback)
    assert "randomly initialised" in sentence and "href='../intro.html#" in sentence
    assert "gaierror" not in sentence and "/root/" not in sentence and sentence.count(". ") <= 1
    assert items.weights_sentence(WeightsInfo("imagenet", "imagenet", "x", "y", "ok")) == ""
    assert items.weights_sentence(WeightsInfo("random", "random", None, None, "asked")) == ""
    items.log(fallback.note)
    out = capsys.readouterr()
    assert "gaierror" in out.err and out.out == ""
