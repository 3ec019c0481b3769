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
