"""Tests for mcalc.learn.model: optimizers, head, backbone, weights resolution, training, cached features."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import BACKBONE_SIZE, textured_rois, write_dicom

from mcalc import paper
from mcalc.errors import DataError, WeightsUnavailable
from mcalc.learn import features as Fe
from mcalc.learn import model as M
from mcalc.learn import weights as W
from mcalc.learn.architecture import architecture_summary
from mcalc.learn.preprocessing import PreprocessConfig, load_roi

IMAGE_SIZE = BACKBONE_SIZE  # the shared ``backbone`` fixture's (tests/conftest.py)

# The paper's optimizer settings (§2.4 and §3.1–3.4), written out independently of mcalc.paper.
PAPER = {
    "adam": {"learning_rate": 1e-4, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "adagrad": {"learning_rate": 1e-4, "initial_accumulator_value": 0.1, "epsilon": 1e-7},
    "adadelta": {"learning_rate": 1e-4, "rho": 0.95, "epsilon": 1e-7},
    "rmsprop": {"learning_rate": 1e-4, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7},
}


@pytest.fixture(scope="module")
def roi_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], np.ndarray]:
    """16 small rectangular ROI DICOMs of three textures, with labels."""
    return textured_rois(tmp_path_factory.mktemp("rois"), 16, 7, lambda i: (40 + 3 * i, 60 - 2 * i))


@pytest.fixture
def full_float32():
    """Switch off TF32 (used on recent GPUs) for the test, so two computation paths round alike."""
    import tensorflow as tf

    before = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    yield
    tf.config.experimental.enable_tensor_float_32_execution(before)


# ----------------------------------------------------------------------------- optimizers


@pytest.mark.parametrize("name", M.OPTIMIZERS)
def test_optimizer_settings_equal_paper(name: str) -> None:
    config = M.make_optimizer(name).get_config()
    for key, value in PAPER[name].items():
        assert config[key] == pytest.approx(value, rel=1e-6), (name, key)
    assert dict(paper.PAPER_OPTIMIZER_SETTINGS[name]) == PAPER[name]


def test_optimizer_overrides_and_unknown_name() -> None:
    opt = M.make_optimizer("RMSprop", learning_rate=1e-3, rho=0.5)
    cfg = opt.get_config()
    assert cfg["learning_rate"] == pytest.approx(1e-3) and cfg["rho"] == pytest.approx(0.5)
    assert cfg["momentum"] == 0.0
    with pytest.raises(ValueError, match="adam, adagrad, adadelta, rmsprop"):
        M.make_optimizer("sgd")
    with pytest.raises(ValueError, match="unknown optimizer"):
        M.TrainConfig(optimizer="nadam")


# ----------------------------------------------------------------------------- architecture


def test_head_architecture() -> None:
    head = M.build_head()
    dense = [layer for layer in head.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [128, 3]
    assert [d.activation.__name__ for d in dense] == ["relu", "softmax"]
    assert [d.count_params() for d in dense] == [1536 * 128 + 128, 128 * 3 + 3]
    out = head(np.zeros((2, 1536), dtype=np.float32)).numpy()
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.slow
def test_backbone_random_75(backbone) -> None:
    assert backbone.output_shape == (None, 1536)
    assert backbone.input_shape == (None, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert not backbone.trainable and backbone.trainable_weights == []
    with pytest.raises(ValueError, match="at least 75"):
        M.build_backbone(74, W.resolve_weights("random"))


@pytest.mark.slow
def test_end_to_end_model_and_summary(backbone, random_weights) -> None:
    model = M.build_model(IMAGE_SIZE, random_weights, backbone=backbone)
    assert model.output_shape == (None, 3)
    table = architecture_summary(model)
    assert list(table.columns) == [
        "layer",
        "type",
        "output_shape",
        "activation",
        "params",
        "trainable_params",
    ]
    rows = table.set_index("layer")
    assert rows.loc["roi", "output_shape"] == f"(None, {IMAGE_SIZE}, {IMAGE_SIZE}, 3)"
    assert rows.loc["inception_resnet_v2", "output_shape"] == "(None, 1536)"
    assert rows.loc["inception_resnet_v2", "trainable_params"] == 0
    assert rows.loc["inception_resnet_v2", "params"] == backbone.count_params() > 50_000_000
    assert (
        rows.loc["head/fc", "activation"] == "relu"
        and rows.loc["head/fc", "output_shape"] == "(None, 128)"
    )
    assert rows.loc["head/predictions", "activation"] == "softmax"
    assert rows.loc["head/predictions", "output_shape"] == "(None, 3)"
    assert table["trainable_params"].iloc[:3].sum() == 1536 * 128 + 128 + 128 * 3 + 3


# ----------------------------------------------------------------------------- training


@pytest.mark.slow
def test_training_is_deterministic_and_history_complete() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(0, 1, (40, 1536)).astype(np.float32), np.arange(40) % 3
    cfg = M.TrainConfig(optimizer="adagrad", epochs=3, batch_size=8, seed=5)
    a = M.train_head(X[:30], y[:30], X[30:], y[30:], cfg)
    b = M.train_head(X[:30], y[:30], X[30:], y[30:], cfg)
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert a.history.equals(b.history)
    expected = [
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
    assert list(a.history.columns[: len(expected)]) == expected
    assert list(a.history["epoch"]) == [1, 2, 3]
    assert a.elapsed_s > 0
    c = M.train_head(
        X[:30],
        y[:30],
        X[30:],
        y[30:],
        M.TrainConfig(optimizer="adagrad", epochs=3, batch_size=8, seed=6),
    )
    assert not np.array_equal(a.model.get_weights()[0], c.model.get_weights()[0])


@pytest.mark.slow
def test_one_fit_over_all_epochs_equals_one_fit_per_epoch(monkeypatch) -> None:
    """All epochs in one ``fit``, an epoch per compiled call: the same weights and per-epoch history
    (validation and test accuracy included) as one ``fit`` per epoch over the epoch's order, one batch a call."""
    rng = np.random.default_rng(2)
    X, y = rng.normal(0, 1, (70, 1536)).astype(np.float32), np.arange(70) % 3
    cfg = M.TrainConfig(optimizer="rmsprop", learning_rate=1e-3, epochs=3, batch_size=8, seed=1)
    test = (X[:20], y[:20])
    assert M.ONE_CALL_PER_EPOCH
    grouped = M.train_head(
        X[:60], y[:60], X[60:], y[60:], cfg, test=test
    )  # 8 batches an epoch, the last one partial

    M.make_deterministic(cfg.seed)  # the reference: one fit per epoch, as the history is defined
    model = M.compile_model(M.build_head(1536, cfg.hidden_units, cfg.n_classes, cfg.seed), cfg)
    rows = []
    for epoch, order in enumerate(M.epoch_orders(60, cfg.epochs, cfg.seed)):
        h = model.fit(
            X[:60][order],
            M.one_hot(y[:60][order]),
            batch_size=cfg.batch_size,
            shuffle=False,
            validation_data=(X[60:], M.one_hot(y[60:])),
            verbose=0,
        )
        rows.append({"epoch": epoch + 1, **{k: float(v[-1]) for k, v in h.history.items()}})
        hits = M.predict_proba(model, test[0]).argmax(axis=1) == test[1]
        rows[-1]["test_accuracy"] = float(hits.mean())
    for wa, wb in zip(grouped.model.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    pd.testing.assert_frame_equal(grouped.history, M.ordered_history(pd.DataFrame(rows)))

    monkeypatch.setattr(M, "ONE_CALL_PER_EPOCH", False)  # one batch a call: the same again
    single = M.train_head(X[:60], y[:60], X[60:], y[60:], cfg, test=test)
    for wa, wb in zip(grouped.model.get_weights(), single.model.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    pd.testing.assert_frame_equal(grouped.history, single.history)


def test_steps_per_execution_must_divide_an_epoch() -> None:
    """A compiled call spanning two epochs would mix their batches: refused."""
    X, y = np.zeros((10, 4), np.float32), np.arange(10) % 3
    cfg = M.TrainConfig(epochs=1, batch_size=4)  # 3 batches an epoch
    model = M.compile_model(M.build_head(4, 8, 3, 0), cfg, steps_per_execution=2)
    with pytest.raises(ValueError, match="does not divide"):
        M.fit_epochs(model, X, y, None, None, cfg)


def test_loss_and_metrics() -> None:
    rng = np.random.default_rng(1)
    X, y = rng.normal(0, 1, (12, 1536)).astype(np.float32), np.arange(12) % 3
    res = M.train_head(X, y, None, None, M.TrainConfig(epochs=1, batch_size=12))
    assert isinstance(res.model.loss, keras.losses.KLDivergence)
    compiled = [m for m in res.model.metrics if hasattr(m, "metrics")][0].metrics
    assert [type(m).__name__ for m in compiled] == [
        "CategoricalAccuracy",
        "AUC",
        "SensitivityAtSpecificity",
    ]
    assert compiled[2].specificity == pytest.approx(0.8)
    # KL divergence against one-hot targets is -log p(true class), averaged
    probs = res.model.predict(X, verbose=0)
    expected = float(np.mean(-np.log(np.clip(probs[np.arange(12), y], 1e-7, 1.0))))
    assert res.model.evaluate(X, M.one_hot(y), verbose=0)[0] == pytest.approx(expected, rel=1e-4)
    proba = M.predict_proba(res.model, X)
    assert proba.shape == (12, 3) and proba.dtype == np.float32
    np.testing.assert_allclose(proba, probs, rtol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert M.predict_proba(res.model, X[:0]).shape == (0, 3)
    with pytest.raises(DataError, match="labels"):
        M.one_hot(np.array([0, 1, 3]))


@pytest.mark.slow
def test_cached_features_head_equals_end_to_end_training(
    backbone, random_weights, roi_set, tmp_path, caplog, monkeypatch, full_float32
):
    """Training the head on cached backbone features == training the frozen end-to-end model on images."""
    paths, labels = roi_set
    pre = PreprocessConfig(image_size=IMAGE_SIZE)
    features = Fe.extract_features(
        paths,
        pre,
        random_weights,
        tmp_path / "cache",
        batch_size=8,
        progress=False,
        backbone=backbone,
    )
    assert features.shape == (16, 1536) and np.isfinite(features).all()
    images = np.stack([load_roi(p, pre) for p in paths])

    # a large learning rate so the weights move far beyond the comparison tolerance
    cfg = M.TrainConfig(optimizer="adam", learning_rate=1e-2, epochs=2, batch_size=8, seed=3)
    tr, va = slice(0, 12), slice(12, 16)
    cached = M.train_head(features[tr], labels[tr], features[va], labels[va], cfg)
    e2e_model = M.compile_model(
        M.build_model(IMAGE_SIZE, random_weights, seed=3, backbone=backbone), cfg
    )
    e2e = M.fit_epochs(e2e_model, images[tr], labels[tr], images[va], labels[va], cfg)

    initial = M.build_head(seed=3).get_weights()
    for w_cached, w_e2e, w0 in zip(
        cached.model.get_weights(), e2e_model.get_layer("head").get_weights(), initial
    ):
        np.testing.assert_allclose(w_cached, w_e2e, atol=1e-5)
        assert np.abs(w_cached - w0).max() > 1e-3  # training really changed the weights
    np.testing.assert_allclose(cached.history["loss"], e2e.history["loss"], rtol=1e-4)
    np.testing.assert_allclose(cached.history["val_loss"], e2e.history["val_loss"], rtol=1e-4)

    # a second extraction is served from the cache without building a backbone
    def no_build(*args, **kwargs):
        raise AssertionError("backbone built although every row is cached")

    caplog.set_level(logging.INFO, logger="mcalc.learn.features")
    with monkeypatch.context() as patch:
        patch.setattr(Fe, "build_backbone", no_build)
        again = Fe.extract_features(
            paths, pre, random_weights, tmp_path / "cache", batch_size=8, progress=False
        )
    np.testing.assert_array_equal(again, features)
    assert "16 rows from cache, 0 computed" in caplog.text

    # changing one image recomputes exactly its row
    caplog.clear()
    changed = Path(paths[5])
    original_bytes = changed.read_bytes()
    try:
        rng = np.random.default_rng(99)
        write_dicom(changed, rng.integers(0, 4000, (30, 50)))
        third = Fe.extract_features(
            paths,
            pre,
            random_weights,
            tmp_path / "cache",
            batch_size=8,
            progress=False,
            backbone=backbone,
        )
    finally:
        changed.write_bytes(original_bytes)
    assert "15 rows from cache, 1 computed" in caplog.text
    np.testing.assert_array_equal(np.delete(third, 5, axis=0), np.delete(features, 5, axis=0))
    assert not np.allclose(third[5], features[5])


def test_extract_features_missing_file(random_weights, tmp_path) -> None:
    with pytest.raises(DataError, match="nowhere.dcm"):
        Fe.extract_features(
            [str(tmp_path / "nowhere.dcm")],
            PreprocessConfig(IMAGE_SIZE),
            random_weights,
            tmp_path / "cache",
            progress=False,
        )


# ----------------------------------------------------------------------------- weights


def test_random_weights() -> None:
    info = W.resolve_weights("random")
    assert (info.used, info.path, info.sha256) == ("random", None, None)
    assert info.identity(4) == "random:4"


def test_imagenet_offline_fails_fast_with_clear_message(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_home"))
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailable) as info:
        W.resolve_weights("imagenet", download_timeout_s=3)
    assert time.perf_counter() - start < 30
    message = str(info.value)
    assert W.IMAGENET_NOTOP_FILE in message
    assert str(tmp_path / "empty_home" / "models" / W.IMAGENET_NOTOP_FILE) in message
    assert W.IMAGENET_NOTOP_URL in message
    assert 'weights="random"' in message and 'weights="auto"' in message
    assert "\n" not in message and info.value.__cause__ is None and info.value.__suppress_context__


def test_download_attempt_cannot_hang(tmp_path, monkeypatch) -> None:
    def slow_connect(*args, **kwargs):
        time.sleep(5)
        raise OSError("unreachable")

    monkeypatch.setattr(W.socket, "create_connection", slow_connect)
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailable, match="no answer"):
        W.resolve_weights("imagenet", keras_home=tmp_path, download_timeout_s=0.5)
    assert time.perf_counter() - start < 3
    assert socket.getdefaulttimeout() is None


def test_auto_falls_back_to_random_with_note(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    info = W.resolve_weights("auto", download_timeout_s=3)
    assert (info.requested, info.used) == ("auto", "random")
    assert "random" in info.note and W.IMAGENET_NOTOP_FILE in info.note


def test_imagenet_file_found_in_keras_home(tmp_path, monkeypatch) -> None:
    models = tmp_path / "models"
    models.mkdir()
    fake = models / W.IMAGENET_NOTOP_FILE
    fake.write_bytes(b"stand-in for the weights file")
    with pytest.raises(WeightsUnavailable, match="incomplete or damaged"):
        W.resolve_weights("imagenet", keras_home=tmp_path)
    monkeypatch.setattr(W, "IMAGENET_NOTOP_MD5", W._md5(fake))
    info = W.resolve_weights("auto", keras_home=tmp_path)
    assert (info.requested, info.used, info.path) == ("auto", "imagenet", str(fake))
    assert info.sha256 == W._sha256(fake) and info.identity() == f"sha256:{info.sha256}"


def test_weights_file_missing_or_unknown_spec(tmp_path) -> None:
    with pytest.raises(WeightsUnavailable, match="missing.h5.*does not exist"):
        W.resolve_weights(str(tmp_path / "missing.h5"))
    with pytest.raises(ValueError, match="unknown weights spec"):
        W.resolve_weights("imagenet21k")


@pytest.mark.slow
def test_weights_files_load(backbone, tmp_path) -> None:
    """A backbone's weights saved as .weights.h5 (Keras 3) and as legacy .h5 load into a fresh backbone."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    new_format = tmp_path / "backbone.weights.h5"
    backbone.save_weights(new_format)
    legacy = tmp_path / "backbone.h5"
    with h5py.File(legacy, "w") as fh:
        legacy_h5_format.save_weights_to_hdf5_group(fh, backbone)
    reference = backbone.get_weights()
    for path in (new_format, legacy):
        info = W.resolve_weights(str(path))
        assert info.used == f"file:{path.name}" and len(info.sha256) == 64
        loaded = M.build_backbone(
            IMAGE_SIZE, info, seed=1
        )  # seed 1 would give other random weights
        assert all(np.array_equal(a, b) for a, b in zip(reference, loaded.get_weights()))

    head_file = tmp_path / "head.weights.h5"
    M.build_head().save_weights(head_file)
    with pytest.raises(WeightsUnavailable, match="head.weights.h5"):
        M.build_backbone(IMAGE_SIZE, W.resolve_weights(str(head_file)))


def test_update_sizes_show_adadelta_barely_moves_at_the_papers_learning_rate():
    """Adam's first step is the learning rate; Adadelta at lr 1e-4 moves a weight hundreds of times less in 20 epochs."""
    from mcalc.chapters.audits import update_sizes

    sizes = update_sizes(steps=50, gradients=(1.0,)).set_index("optimizer")
    assert sizes.loc["adam", "after 1 step"] == pytest.approx(1e-4, rel=1e-3)
    assert sizes.loc["adadelta", "after 50 steps"] * 100 < sizes.loc["adam", "after 50 steps"]
    assert sizes.loc["rmsprop", "after 1 step"] == pytest.approx(1e-4 / (1 - 0.9) ** 0.5, rel=1e-3)


def test_update_sizes_compiled_steps_match_one_eager_step_at_a_time():
    """The compiled loop moves the weight as the optimizer stepped once per Python call does
    (to float32 rounding), for every optimizer; one step runs no loop at all."""
    from mcalc.chapters.audits import update_sizes
    from mcalc.paper import OPTIMIZERS

    sizes = update_sizes(steps=30, gradients=(0.5,)).set_index("optimizer")
    for name in OPTIMIZERS:
        opt = M.make_optimizer(name, None)
        var = keras.Variable(0.0, dtype="float32")
        grad = keras.ops.convert_to_tensor(0.5, dtype="float32")
        for _ in range(30):
            opt.apply_gradients([(grad, var)])
        eager = abs(float(keras.ops.convert_to_numpy(var)))
        assert sizes.loc[name, "after 30 steps"] == pytest.approx(eager, rel=1e-5), name
    one = update_sizes(steps=1, gradients=(1.0,))
    assert (one["after 1 step"] == one["after 1 steps"]).all()


RETRACING_SCRIPT = """
import contextlib, logging, sys
import numpy as np
from mcalc.learn import model as M
if sys.argv[1] == "unguarded":
    M.quiet_retracing = contextlib.nullcontext
rng = np.random.default_rng(4)
X, y = rng.normal(0, 1, (24, 16)).astype(np.float32), np.arange(24) % 3
level = logging.getLogger("tensorflow").level
for seed in range(6):  # TensorFlow warns from the sixth trace on (once per process)
    cfg = M.TrainConfig(epochs=2, batch_size=8, seed=seed)
    M.train_head(X[:18], y[:18], X[18:], y[18:], cfg, test=(X[18:], y[18:]))
assert logging.getLogger("tensorflow").level == level, "logger level not restored"
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["guarded", "unguarded"])
def test_new_heads_print_no_retracing_warning(mode) -> None:
    """Training many fresh heads (chapters 5 to 7 do) prints no tf.function retracing warning and
    leaves TensorFlow's logger level as it was; without the guard the warning does appear."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", RETRACING_SCRIPT, mode],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert ("retracing" in done.stdout + done.stderr) == (mode == "unguarded")


def test_training_and_extraction_compute_in_float32_on_every_device():
    """TensorFloat-32 (TensorFlow's default on Ampere GPUs) is off once a run is made deterministic."""
    import tensorflow as tf

    tf.config.experimental.enable_tensor_float_32_execution(True)
    M.make_deterministic(0)
    assert not tf.config.experimental.tensor_float_32_execution_enabled()
