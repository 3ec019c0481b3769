"""Tests for fine-tuning the backbone: trainability, the tf.data image stream, training, prediction."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import BACKBONE_SIZE, textured_rois

from mcalc.errors import DataError
from mcalc.learn import features as Fe
from mcalc.learn import finetune as FT
from mcalc.learn import model as M
from mcalc.learn.preprocessing import PreprocessConfig, load_roi

IMAGE_SIZE = BACKBONE_SIZE  # the shared ``backbone`` fixture's (tests/conftest.py)
PRE = PreprocessConfig(image_size=IMAGE_SIZE)
HEAD_PARAMS = 1536 * 128 + 128 + 128 * 3 + 3
HISTORY_COLUMNS = [
    "epoch",
    "loss",
    "accuracy",
    "auc",
    "sensitivity_at_specificity",
    "val_loss",
    "val_accuracy",
    "val_auc",
    "val_sensitivity_at_specificity",
]


@pytest.fixture(scope="module")
def rois(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], np.ndarray]:
    """12 small rectangular ROI DICOMs of three textures, with labels 0, 1, 2, 0, ..."""
    return textured_rois(tmp_path_factory.mktemp("rois"), 12, 11, lambda i: (30 + 2 * i, 44 - i))


def weights_by_layer(backbone) -> dict[str, list[np.ndarray]]:
    """Copies of every layer's weights, by layer name."""
    return {layer.name: [np.array(w) for w in layer.get_weights()] for layer in backbone.layers}


def changed_layers(before: dict[str, list[np.ndarray]], backbone) -> set[str]:
    """Names of the layers whose weights differ from ``before``."""
    return {
        layer.name
        for layer in backbone.layers
        if any(
            not np.array_equal(a, np.array(b))
            for a, b in zip(before[layer.name], layer.get_weights())
        )
    }


def stage_names(backbone) -> tuple[list[str], list[str]]:
    """Layer names up to and including mixed_7a, and after it."""
    names = [layer.name for layer in backbone.layers]
    cut = names.index("mixed_7a") + 1
    return names[:cut], names[cut:]


# ----------------------------------------------------------------------------- trainability


@pytest.mark.slow
def test_set_backbone_trainable_counts_and_layers(backbone, random_weights) -> None:
    model = M.build_model(IMAGE_SIZE, random_weights, backbone=backbone)
    bn = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    bn_params = sum(layer.count_params() for layer in bn)
    full = model.count_params()
    assert bn and bn_params > 0 and full == backbone.count_params() + HEAD_PARAMS

    assert FT.set_backbone_trainable(model, "none") == HEAD_PARAMS
    assert backbone.trainable_weights == []

    n_all = FT.set_backbone_trainable(model, "all")
    assert n_all == full - bn_params
    assert all(not layer.trainable and layer.trainable_weights == [] for layer in bn)

    n_top = FT.set_backbone_trainable(model, "TOP")
    assert HEAD_PARAMS < n_top < n_all
    below, above = stage_names(backbone)
    trainable_layers = {layer.name for layer in backbone.layers if layer.trainable_weights}
    assert trainable_layers and trainable_layers <= set(above)
    named = {"block8_1_conv", "block8_5_conv", "block8_10_conv", "conv_7b"}
    assert named <= trainable_layers
    assert n_top > HEAD_PARAMS + sum(backbone.get_layer(n).count_params() for n in named)
    assert not any(name.startswith(("block35", "block17", "mixed_")) for name in trainable_layers)
    assert not backbone.get_layer("conv_7b_bn").trainable_weights
    assert "conv_7b_bn" in above and "block8_1_mixed" in above and "mixed_6a" in below

    # the backbone itself can be passed; counts are then the backbone's alone
    assert FT.set_backbone_trainable(backbone, "top") == n_top - HEAD_PARAMS
    assert FT.set_backbone_trainable(backbone, "none") == 0
    with pytest.raises(ValueError, match="none, top, all"):
        FT.set_backbone_trainable(model, "half")
    with pytest.raises(ValueError, match="no InceptionResNetV2"):
        FT.set_backbone_trainable(M.build_head(), "top")


# ----------------------------------------------------------------------------- data stream


def test_image_dataset_order_batches_and_content(rois) -> None:
    paths, labels = rois
    paths, labels = paths[:5], labels[:5]
    stream = list(FT.image_dataset(paths, labels, PRE, batch_size=2, shuffle_seed=3, epochs=2))
    assert [len(x) for x, _ in stream] == [2, 2, 1, 2, 2, 1]  # every epoch batched on its own
    order = np.concatenate(M.epoch_orders(5, 2, 3))
    assert sorted(order[:5]) == list(range(5)) and not np.array_equal(order[:5], order[5:])
    images = np.concatenate([x.numpy() for x, _ in stream])
    onehot = np.concatenate([y.numpy() for _, y in stream])
    np.testing.assert_array_equal(onehot, np.eye(3, dtype=np.float32)[labels[order]])
    expected = np.stack([load_roi(paths[i], PRE) for i in range(5)])
    np.testing.assert_array_equal(images, expected[order])
    assert images.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE, 3) and images.dtype == np.float32

    again = np.concatenate(
        [x.numpy() for x, _ in FT.image_dataset(paths, labels, PRE, 2, shuffle_seed=3, epochs=2)]
    )
    np.testing.assert_array_equal(again, images)
    plain = [x.numpy() for x in FT.image_dataset(paths, None, PRE, batch_size=4, shuffle_seed=None)]
    assert [len(x) for x in plain] == [4, 1]
    np.testing.assert_array_equal(np.concatenate(plain), expected)


def test_image_dataset_and_predict_images_errors(rois, tmp_path) -> None:
    paths, labels = rois
    with pytest.raises(DataError, match="not found"):
        FT.image_dataset([*paths[:2], str(tmp_path / "missing.dcm")], None, PRE)
    with pytest.raises(DataError, match="3 ROI paths but 2 labels"):
        FT.image_dataset(paths[:3], labels[:2], PRE)
    with pytest.raises(DataError, match="labels must be integers"):
        FT.image_dataset(paths[:3], np.array([0, 1, 5]), PRE)

    tiny = keras.Sequential(
        [
            keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    proba = FT.predict_images(tiny, paths[:5], PRE, batch_size=2)
    assert proba.shape == (5, 3) and proba.dtype == np.float32
    np.testing.assert_allclose(
        proba, tiny.predict(np.stack([load_roi(p, PRE) for p in paths[:5]]), verbose=0), rtol=1e-6
    )
    assert FT.predict_images(tiny, [], PRE).shape == (0, 3)
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not a dicom file at all")
    with pytest.raises(DataError, match="broken.dcm"):
        FT.predict_images(tiny, [paths[0], str(broken)], PRE)


# ----------------------------------------------------------------------------- fine-tuning


@pytest.mark.slow
def test_fine_tune_top_changes_only_the_last_stage(backbone, random_weights, rois) -> None:
    """block8 / conv_7b move; earlier layers and BatchNormalization do not (eager: no graph build time)."""
    paths, labels = rois
    before = weights_by_layer(backbone)
    cfg = M.TrainConfig(optimizer="adam", learning_rate=1e-3, epochs=2, batch_size=4, seed=1)
    res = FT.fine_tune(
        paths[:8],
        labels[:8],
        paths[8:],
        labels[8:],
        PRE,
        random_weights,
        cfg,
        "top",
        backbone=backbone,
        run_eagerly=True,
    )
    assert list(res.history.columns[: len(HISTORY_COLUMNS)]) == HISTORY_COLUMNS
    assert (
        list(res.history["epoch"]) == [1, 2]
        and np.isfinite(res.history.to_numpy(dtype=float)).all()
    )
    assert res.elapsed_s > 0 and res.config is cfg
    n_trainable = FT.count_trainable_params(res.model)
    assert HEAD_PARAMS < n_trainable < res.model.count_params()

    changed = changed_layers(before, backbone)
    below, above = stage_names(backbone)
    assert {"block8_1_conv", "block8_10_conv", "conv_7b"} <= changed
    assert changed <= set(above) and not changed & set(below)
    assert not any(
        isinstance(backbone.get_layer(n), keras.layers.BatchNormalization) for n in changed
    )
    head_before = M.build_head(seed=cfg.seed).get_weights()
    assert all(
        not np.array_equal(a, b)
        for a, b in zip(head_before, res.model.get_layer("head").get_weights())
    )

    proba = FT.predict_images(res.model, paths, PRE, batch_size=4)
    assert proba.shape == (12, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    direct = res.model.predict(np.stack([load_roi(p, PRE) for p in paths]), verbose=0)
    np.testing.assert_allclose(proba, direct, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_fine_tune_all_changes_the_stem(backbone, random_weights, rois) -> None:
    paths, labels = rois
    before = weights_by_layer(backbone)
    bn_params = sum(
        layer.count_params()
        for layer in backbone.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )
    cfg = M.TrainConfig(optimizer="rmsprop", learning_rate=1e-3, epochs=1, batch_size=4, seed=2)
    res = FT.fine_tune(
        paths[:8],
        labels[:8],
        None,
        None,
        PRE,
        random_weights,
        cfg,
        "all",
        backbone=backbone,
        run_eagerly=True,
    )
    assert list(res.history.columns) == HISTORY_COLUMNS[:5] and len(res.history) == 1
    assert FT.count_trainable_params(res.model) == res.model.count_params() - bn_params
    changed = changed_layers(before, backbone)
    below, above = stage_names(backbone)
    first_conv = next(
        layer.name for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)
    )
    assert first_conv in changed and "conv_7b" in changed and changed & set(below)
    assert not any(
        isinstance(backbone.get_layer(n), keras.layers.BatchNormalization) for n in changed
    )


@pytest.mark.slow
def test_fine_tune_none_is_train_head_on_cached_features(
    backbone, random_weights, rois, tmp_path
) -> None:
    """Frozen backbone, compiled graph (the default path): the image stream trains the head as train_head does."""
    import tensorflow as tf

    paths, labels = rois
    before = weights_by_layer(backbone)
    tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    try:
        cfg = M.TrainConfig(optimizer="adam", learning_rate=1e-2, epochs=2, batch_size=4, seed=3)
        res = FT.fine_tune(
            paths[:8],
            labels[:8],
            paths[8:],
            labels[8:],
            PRE,
            random_weights,
            cfg,
            "none",
            backbone=backbone,
        )
        assert not res.model.run_eagerly
        features = Fe.extract_features(
            paths,
            PRE,
            random_weights,
            tmp_path / "cache",
            batch_size=4,
            progress=False,
            backbone=backbone,
        )
        cached = M.train_head(features[:8], labels[:8], features[8:], labels[8:], cfg)
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(tf32)
    assert changed_layers(before, backbone) == set()
    assert FT.count_trainable_params(res.model) == HEAD_PARAMS
    initial = M.build_head(seed=cfg.seed).get_weights()
    for w_stream, w_cached, w0 in zip(
        res.model.get_layer("head").get_weights(), cached.model.get_weights(), initial
    ):
        np.testing.assert_allclose(w_stream, w_cached, atol=1e-5)
        assert np.abs(w_stream - w0).max() > 1e-3
    np.testing.assert_allclose(res.history["loss"], cached.history["loss"], rtol=1e-4)
    np.testing.assert_allclose(res.history["val_loss"], cached.history["val_loss"], rtol=1e-4)


@pytest.mark.slow
def test_fine_tune_is_deterministic(backbone, shared_backbone, random_weights, rois) -> None:
    """Same seed → bit-identical head, backbone and history (TensorFlow's deterministic ops, on the CPU too)."""
    paths, labels = rois
    cfg = M.TrainConfig(optimizer="adam", learning_rate=1e-3, epochs=1, batch_size=4, seed=4)
    initial_kernel = backbone.get_layer("block8_1_conv").kernel.numpy()  # a copy
    runs = []
    for _ in range(2):
        backbone.set_weights(shared_backbone[1])
        res = FT.fine_tune(
            paths[:8],
            labels[:8],
            paths[8:],
            labels[8:],
            PRE,
            random_weights,
            cfg,
            "top",
            backbone=backbone,
            run_eagerly=True,
        )
        runs.append(
            (
                res.history,
                res.model.get_layer("head").get_weights(),
                [np.array(w) for w in backbone.get_layer("block8_1_conv").get_weights()],
            )
        )
    (h1, head1, b1), (h2, head2, b2) = runs
    assert h1.equals(h2)
    for a, b in zip(head1 + b1, head2 + b2):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b1[0], initial_kernel)
