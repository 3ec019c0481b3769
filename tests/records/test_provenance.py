"""Provenance labels (data source, weights) stamped on results, and read back."""

from __future__ import annotations

import json
from dataclasses import replace

from mcalc.data.curation import data_provenance
from mcalc.records.provenance import Provenance, read_provenance, write_provenance


def test_provenance_labels_and_banner(tmp_path):
    """Phantom data or random weights are named in the label and raise the banner; real + ImageNet do not."""
    sim = Provenance(data="phantom", data_detail="scale 1").with_weights("random", "offline")
    assert "PHANTOM" in sim.label() and "RANDOMLY" in sim.label()
    assert sim.is_simulated and "phantom" in sim.banner()
    real = Provenance(data="cbis-ddsm").with_weights("imagenet")
    assert not real.is_simulated and real.banner() == ""
    path = write_provenance(sim, tmp_path / "r" / "provenance.json")
    assert read_provenance(path) == sim
    assert read_provenance(tmp_path / "absent.json") is None


def test_a_reduced_precision_backbone_is_named_in_label_headline_and_banner():
    """A bfloat16 backbone is said wherever its results are (label, headline, banner), even on real
    data with ImageNet weights; float32, records older than the field and results without a
    backbone say nothing of it."""
    real = Provenance(data="cbis-ddsm").with_weights("imagenet")
    bf16 = replace(real, backbone_precision="bfloat16")
    assert bf16.is_reduced_precision and not bf16.is_simulated
    assert bf16.label().endswith("ImageNet-pretrained InceptionResNetV2, computed in bfloat16")
    assert bf16.headline() == "Backbone in bfloat16, not float32 like the paper."
    assert bf16.banner() == bf16.precision_sentence() and "not float32" in bf16.banner()
    phantom = replace(bf16, data="phantom")
    assert phantom.headline().startswith("Built on phantom images (backbone in bfloat16): ")
    offline = replace(phantom, weights="random")
    assert offline.headline().startswith(
        "Built on phantom images and a random bfloat16 backbone: results test the pipeline"
    )
    assert phantom.banner().endswith(bf16.precision_sentence())
    assert real.precision_sentence() == real.headline() == real.banner() == ""
    old = {k: v for k, v in real.to_dict().items() if k != "backbone_precision"}
    assert Provenance.from_dict(old) == real
    tables_only = replace(Provenance(data="cbis-ddsm"), backbone_precision="bfloat16")
    assert not tables_only.is_reduced_precision  # weights "n/a": no backbone involved


def test_data_provenance_reads_the_phantom_marker(tmp_path):
    """A folder with phantom.json is a phantom; any other folder is taken as a real download."""
    (tmp_path / "phantom.json").write_text(
        json.dumps({"version": "9", "config": {"scale": 0.5, "seed": 3}})
    )
    prov = data_provenance(tmp_path)
    assert (
        prov.data == "phantom" and "scale 0.5" in prov.data_detail and "seed 3" in prov.data_detail
    )
    assert data_provenance(tmp_path / "elsewhere").data == "cbis-ddsm"
