"""The run profiles (mcalc.run.profiles): overrides, and the validation hold-out they give the notebooks."""

from __future__ import annotations

import pytest

from mcalc.run.pipeline import plan
from mcalc.run.profiles import get_profile
from mcalc.run.runner import notebook_parameters
from tests.run.helpers import template_defaults


def test_validation_hold_out_scales_with_the_phantom():
    """200 validation ROIs at the real size; a smaller phantom holds out as many in proportion, real data 200."""

    def injected(prof):
        return {
            notebook_parameters(prof, r, template_defaults(r.template)).get("validation_size")
            for r in plan(prof)
            if r.template != "08_copies"  # its own, smaller phantom: tests/test_compare.py
        } - {None}

    assert injected(get_profile("default")) == {200}
    assert injected(get_profile("default", phantom_scale=0.1)) == {20}
    assert injected(get_profile("default", phantom_scale=0.1, data_source="cbis-ddsm")) == {200}
    assert injected(get_profile("ci")) == {0.2}
    assert injected(get_profile("ci", phantom_scale=0.5)) == {0.2}


def test_get_profile_overrides_and_rejects_unknown():
    """Overrides replace fields (None keeps the profile's value); unknown profiles fail clearly."""
    prof = get_profile("default", weights="random", image_size=None)
    assert prof.weights == "random" and prof.image_size == 299
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("nope")


def test_the_backbone_variant_reaches_the_two_chapters_that_compute_features():
    """Chapters 2 and 8 (the two that run the backbone) receive the profile's variant; no other
    template declares it."""
    prof = get_profile("default", backbone_variant="folded+bf16")
    given = {
        r.output: notebook_parameters(prof, r).get("backbone_variant")
        for r in plan(prof)
        if "backbone_variant" in notebook_parameters(prof, r)
    }
    assert given == {"02_preprocessing": "folded+bf16", "08_copies": "folded+bf16"}
