"""Figures 2 and 3 read off the built model (mcalc.report.network)."""

from __future__ import annotations

import pytest

from mcalc.learn.architecture import find_backbone
from mcalc.report import network


@pytest.fixture
def paper_model(backbone, random_weights):
    """The paper's end-to-end model at the smallest input size, random weights (the shared backbone)."""
    from mcalc.learn.model import build_model

    return build_model(backbone.input_shape[1], random_weights, backbone=backbone)


@pytest.mark.slow
def test_backbone_stages_cover_every_layer_with_the_paper_block_counts(paper_model):
    """Figure 3's stages partition InceptionResNetV2: 10 × A, 20 × B, 10 × C blocks, 1536 pooled features."""
    backbone = find_backbone(paper_model)
    stages = network.backbone_stages(backbone)
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
    fig = network.figure2(paper_model)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("InceptionResNetV2, frozen" in t for t in texts)
    assert "Dense(128, relu)" in texts and "Dense(3, softmax)" in texts
