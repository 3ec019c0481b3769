"""Tests for mcalc.learn.backbone: batch norm folded into the convolutions (and XLA) gives the plain
Keras model's features within float32 rounding, the opt-in bfloat16 variant within its own stated
tolerance, and the feature cache keeps the variants apart."""

from __future__ import annotations

import logging

import keras
import numpy as np
import pytest
from conftest import textured_rois

from mcalc.learn import backbone as B
from mcalc.learn import features as Fe
from mcalc.learn.model import build_backbone
from mcalc.learn.preprocessing import PreprocessConfig
from mcalc.learn.weights import resolve_weights

SIZE = 75
#: Largest |fast − plain| feature difference allowed, relative to the largest |plain| feature:
#: float32 reassociation only (the kernel is scaled before the sum instead of the sum after it).
TOLERANCE = 1e-4


def randomize_batchnorm(model: keras.Model, seed: int = 0) -> None:
    """Give every BatchNormalization non-trivial statistics and offsets (a fresh one has mean 0, variance 1)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = int(layer.moving_mean.shape[0])
            layer.moving_mean.assign(rng.normal(0, 0.5, c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype(np.float32))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.2, c).astype(np.float32))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))


def relative_difference(fast: np.ndarray, plain: np.ndarray) -> float:
    """max |fast − plain| over the largest |plain|."""
    return float(np.abs(fast - plain).max() / np.abs(plain).max())


def images(n: int = 4, seed: int = 1) -> np.ndarray:
    """Seeded random images in the backbone's input range."""
    return np.random.default_rng(seed).uniform(-1, 1, (n, SIZE, SIZE, 3)).astype(np.float32)


def small_model(scale: bool = False) -> keras.Model:
    """Conv → BN → relu twice (the second conv also feeding a side branch, so not folded), pooled to 1536."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, use_bias=False)(inputs)
    x = keras.layers.BatchNormalization(scale=scale)(x)
    x = keras.layers.Activation("relu")(x)
    shared = keras.layers.Conv2D(8, 3, use_bias=False)(x)
    x = keras.layers.BatchNormalization(scale=scale)(shared)
    x = keras.layers.Add()([keras.layers.Activation("relu")(x), shared])
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(Fe.N_FEATURES)(x))
    randomize_batchnorm(model, seed=2)
    return model


@pytest.fixture(scope="module")
def backbone() -> keras.Model:
    """A 75-px InceptionResNetV2 with seeded random weights and random batch-norm statistics."""
    model = build_backbone(SIZE, resolve_weights("random"), seed=0)
    randomize_batchnorm(model)
    return model


@pytest.mark.parametrize("scale", [False, True])
def test_folding_a_small_model_keeps_its_outputs(scale):
    """Only a conv whose sole consumer is a batch norm is folded; outputs equal within the tolerance."""
    model = small_model(scale)
    pairs = B.foldable_pairs(model)
    assert len(pairs) == 1  # the shared conv feeds the Add too: left as it is
    folded = B.fold_batchnorm(model)
    kinds = [type(layer).__name__ for layer in folded.layers]
    assert kinds.count("BatchNormalization") == 1 and kinds.count("FoldedBatchNorm") == 1
    x = images()
    plain = np.asarray(model.predict_on_batch(x))
    assert relative_difference(np.asarray(folded.predict_on_batch(x)), plain) <= TOLERANCE


def test_bfloat16_folding_of_a_small_model_is_within_its_own_tolerance():
    """The bfloat16 clone computes in bfloat16 (every layer but the last), returns float32, and its
    outputs differ from float32's beyond rounding but within BF16_TOLERANCE."""
    model = small_model(scale=True)
    fast = B.inference_model(model, "folded+bf16")
    assert B.backbone_variant(fast) == "folded+bf16" and "folded+bf16" in B.REDUCED_PRECISION
    policies = {layer.name: layer.dtype_policy.name for layer in fast.layers[1:]}
    assert policies.pop(fast.layers[-1].name) == "float32"
    assert set(policies.values()) == {"mixed_bfloat16"}
    x = images()
    out = np.asarray(fast.predict_on_batch(x))
    assert out.dtype == np.float32
    diff = relative_difference(out, np.asarray(model.predict_on_batch(x)))
    assert TOLERANCE < diff <= B.BF16_TOLERANCE


def test_bfloat16_on_a_cpu_without_its_instructions_says_it_may_be_slower(monkeypatch, caplog):
    """Where TensorFlow reports no native bfloat16 the variant still runs, with a warning; where it
    has them (or cannot say), nothing is said."""
    for native, warned in ((False, True), (True, False), (None, False)):
        monkeypatch.setattr(B, "native_bfloat16", lambda native=native: native)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=B.__name__):
            B.inference_model(small_model(), "folded+bf16")
        assert ("no instructions" in caplog.text) is warned


def test_unknown_variant_is_refused():
    """A misspelt variant names the valid ones."""
    with pytest.raises(ValueError, match="plain, folded"):
        B.inference_model(small_model(), "fold")


@pytest.mark.slow
def test_folded_backbone_gives_the_plain_features(backbone):
    """Every conv block of InceptionResNetV2 folds; the features equal plain ones within the tolerance."""
    n_bn = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in backbone.layers)
    assert len(B.foldable_pairs(backbone)) == n_bn == 204
    folded = B.inference_model(backbone, "folded")
    assert B.backbone_variant(folded) == "folded" and B.inference_model(folded) is folded
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    assert [layer.name for layer in folded.layers[1:]] == [
        layer.name for layer in backbone.layers[1:]
    ]
    x = images()
    plain = np.asarray(backbone.predict_on_batch(x))
    fast = np.asarray(folded.predict_on_batch(x))
    assert fast.shape == plain.shape == (4, Fe.N_FEATURES)
    assert relative_difference(fast, plain) <= TOLERANCE
    assert np.abs(plain).max() > 0.1  # features of a real scale, not all zero


@pytest.mark.slow
def test_bfloat16_backbone_gives_features_within_its_tolerance(backbone):
    """InceptionResNetV2 folded and in bfloat16: float32 features within BF16_TOLERANCE of plain's
    (a different arithmetic: beyond float32 rounding), never the default variant."""
    assert B.DEFAULT_VARIANT not in B.REDUCED_PRECISION
    fast = B.inference_model(backbone, "folded+bf16")
    x = images()
    out = np.asarray(fast.predict_on_batch(x))
    assert out.dtype == np.float32 and out.shape == (4, Fe.N_FEATURES)
    diff = relative_difference(out, np.asarray(backbone.predict_on_batch(x)))
    assert TOLERANCE < diff <= B.BF16_TOLERANCE


@pytest.fixture
def op_determinism():
    """TensorFlow's deterministic-ops switch, restored after the test (training switches it on for the process)."""
    from tensorflow.python.framework import config

    was_on = config.is_op_determinism_enabled()
    yield config
    (config.enable_op_determinism if was_on else config.disable_op_determinism)()


@pytest.mark.slow
def test_folded_and_compiled_backbone_gives_the_plain_features(backbone, op_determinism, caplog):
    """Folding and XLA together: still the plain features; under deterministic ops Keras declines XLA, and says so."""
    x = images()
    plain = np.asarray(backbone.predict_on_batch(x))
    op_determinism.disable_op_determinism()
    fast = B.inference_model(backbone, "folded+xla")
    assert fast.jit_compile
    assert relative_difference(np.asarray(fast.predict_on_batch(x)), plain) <= TOLERANCE
    op_determinism.enable_op_determinism()
    with caplog.at_level(logging.WARNING, logger=B.__name__):
        declined = B.inference_model(backbone, "folded+xla")
    assert not declined.jit_compile
    assert "declined XLA" in caplog.text
    assert relative_difference(np.asarray(declined.predict_on_batch(x)), plain) <= TOLERANCE


def test_cache_keys_keep_the_variants_apart(tmp_path, caplog):
    """Plain, folded and bfloat16 rows never mix in the cache; a prepared backbone is keyed by its own variant."""
    paths, _ = textured_rois(tmp_path / "rois", 4, 3, lambda i: (40 + i, 50))
    model = small_model()

    def extract(**kwargs) -> np.ndarray:
        """extract_features of the four ROIs into one cache."""
        return Fe.extract_features(
            paths,
            PreprocessConfig(SIZE),
            resolve_weights("random"),
            tmp_path / "cache",
            batch_size=4,
            progress=False,
            **kwargs,
        )

    caplog.set_level(logging.INFO, logger="mcalc.learn.features")
    plain = extract(backbone=model, variant="plain")
    folded = extract(backbone=model, variant="folded")
    assert "0 rows from cache, 4 computed" in caplog.text.split("backbone: folded")[-1]
    assert relative_difference(folded, plain) <= TOLERANCE
    caplog.clear()
    again = extract(backbone=B.inference_model(model, "folded"), variant="plain")
    assert "4 rows from cache, 0 computed" in caplog.text
    np.testing.assert_array_equal(again, folded)
    caplog.clear()
    reduced = extract(backbone=model, variant="folded+bf16")
    assert "0 rows from cache, 4 computed" in caplog.text
    assert TOLERANCE < relative_difference(reduced, plain) <= B.BF16_TOLERANCE
    with pytest.raises(ValueError, match="unknown backbone variant"):
        extract(backbone=model, variant="fast")


@pytest.mark.parametrize("variant, precision", [("folded", "float32"), ("folded+bf16", "bfloat16")])
def test_compute_features_records_the_backbones_arithmetic(
    tmp_path, monkeypatch, variant, precision
):
    """The results' provenance (every later label and the book's banner) and the features' record
    name the variant and its arithmetic."""
    import json

    import pandas as pd

    from mcalc.records.provenance import Provenance, read_provenance

    monkeypatch.setattr(Fe, "extract_features", lambda *a, **k: np.zeros((2, Fe.N_FEATURES)))
    manifest = pd.DataFrame({"crop_path": ["a.dcm", "b.dcm"], "roi_id": ["r1", "r2"]})
    prov = Provenance(data="phantom").with_weights("random")
    Fe.compute_features(
        manifest, SIZE, resolve_weights("random"), tmp_path / "c", tmp_path, prov, variant=variant
    )
    assert read_provenance(tmp_path / "provenance.json").backbone_precision == precision
    assert json.loads((tmp_path / "features.json").read_text())["backbone"] == variant
