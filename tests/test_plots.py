"""Figures and captioned tables: read off the model, deterministic, captioned and labelled."""

from __future__ import annotations

import pandas as pd
import pytest

from mcalc import plots
from mcalc.model import find_backbone
from mcalc.provenance import Provenance


@pytest.fixture(scope="module")
def paper_model():
    """The paper's end-to-end model at the smallest input size, random weights."""
    from mcalc.model import build_model
    from mcalc.weights import resolve_weights

    return build_model(75, resolve_weights("random"))


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


def test_table_html_is_deterministic_and_captioned():
    """The same table renders to the same HTML (stable under nbval), with its bold lead and provenance."""
    df = pd.DataFrame({"a": [1.23456, 2.0]}, index=["x", "y"])
    prov = Provenance(data="phantom")
    one = plots.table_html(df, "Table 9 — demo", prov)
    assert one == plots.table_html(df, "Table 9 — demo", prov)
    assert "<strong>Table 9 —</strong>" in one and "PHANTOM" in one and "1.235" in one


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


def test_show_table_keeps_the_table_as_csv_for_the_bundle(monkeypatch):
    """The displayed table carries its CSV, caption and provenance in the output's metadata."""
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(kw))
    df = pd.DataFrame({"a": [1.5, 2.5]})
    plots.show_table(df, "Table 9 — demo", Provenance(data="phantom"))
    record = shown[0]["metadata"]["mcalc"]["table"]
    assert record["caption"] == "Table 9 — demo" and "PHANTOM" in record["provenance"]
    assert pd.read_csv(__import__("io").StringIO(record["csv"]))["a"].tolist() == [1.5, 2.5]


def test_wide_figures_shrink_to_the_page_and_keep_their_provenance_inside(monkeypatch):
    """A 12-inch figure is shown at page width; the provenance label wraps rather than widening it."""
    import io

    import IPython.display
    import matplotlib.pyplot as plt
    from PIL import Image

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj))
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4))
    prov = Provenance(data="phantom", data_detail="x" * 80, weights="random")
    plots.show_figure(fig, "Figure 9 — demo", prov)
    width, _ = Image.open(io.BytesIO(shown[0].data)).size
    assert width <= plots.FIGURE_MAX_WIDTH * 110 * 1.05
    assert "Figure 9 —" in shown[1].data
