"""A chapter step's inputs: the run's seed and task from the head's settings, the split seed (mcalc.chapters.inputs)."""

from __future__ import annotations

import dataclasses

import pytest

from mcalc.chapters.inputs import StepInputs
from mcalc.learn.model import TrainConfig


def test_the_split_seed_is_the_runs_unless_given():
    """No split seed: the validation split is drawn with the run's seed; a given one wins."""
    inputs = StepInputs("results", 299, "auto", TrainConfig(seed=4))
    assert inputs.splitting_seed == 4
    assert dataclasses.replace(inputs, split_seed=9).splitting_seed == 9
    assert dataclasses.replace(inputs, split_seed=0).splitting_seed == 0  # 0 is a seed, not "none"


def test_the_classes_are_the_tasks_and_the_defaults_the_papers():
    """The classes follow the head's task; 200 validation ROIs and 1000 resamples unless asked."""
    three = StepInputs("results", 299, "auto")
    assert three.classes == ("BENIGN", "BENIGN_WITHOUT_CALLBACK", "MALIGNANT")
    assert three.validation_size == 200 and three.n_boot == 1000 and three.split_seed is None
    binary = StepInputs("results", 299, "auto", TrainConfig(task="binary-merged"))
    assert binary.classes == ("BENIGN", "MALIGNANT")


def test_with_config_changes_the_head_only_and_the_inputs_are_frozen():
    """Another optimizer for the same inputs; the inputs themselves cannot be changed in place."""
    inputs = StepInputs("results", 75, "random", TrainConfig(seed=2), validation_size=0.2, n_boot=5)
    other = inputs.with_config(optimizer="adagrad")
    assert other.config.optimizer == "adagrad" and other.config.seed == 2
    assert inputs.config.optimizer == "adam"
    assert dataclasses.replace(other, config=inputs.config) == inputs
    with pytest.raises(dataclasses.FrozenInstanceError):
        inputs.n_boot = 10


def test_a_fine_tuned_run_is_labelled_float32_whatever_the_cached_features_were(tmp_path):
    """Head runs on cached bfloat16 features carry bfloat16; a fine-tuned backbone runs the plain
    float32 model, and its run says so."""
    import json

    from mcalc.chapters.training import _run_provenance
    from mcalc.records.provenance import Provenance, write_provenance

    write_provenance(
        Provenance(data="phantom").with_weights("random"), tmp_path / "provenance.json"
    )
    (tmp_path / "features.json").write_text(json.dumps({"backbone_precision": "bfloat16"}))
    assert _run_provenance(tmp_path, "none").backbone_precision == "bfloat16"
    assert _run_provenance(tmp_path, "top").backbone_precision == "float32"
    assert (
        _run_provenance(tmp_path, "all")
        .label()
        .endswith("InceptionResNetV2 (ImageNet weights unavailable)")
    )
