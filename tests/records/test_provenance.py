"""Provenance labels (data source, weights) stamped on results, and read back."""

from __future__ import annotations

import json

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
