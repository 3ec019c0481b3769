"""Fine-tuning the backbone on streamed images (the paper's §3 reading of "fine-tune InceptionResNetV2").

§2.3 reads as a frozen feature extractor (the head trained on cached features, :mod:`mcalc.learn.model`);
§3 and the Conclusions say the optimizers "fine-tune the parameters of InceptionResNetV2". This module
is the second reading: :func:`fine_tune` trains the end-to-end model on ROI images streamed by
:func:`image_dataset` (tf.data), with nothing, the last Inception-ResNet-C stage, or the whole backbone
trainable (:data:`TRAIN_BACKBONE`, :func:`set_backbone_trainable`; BatchNormalization stays frozen).
It cannot use the feature cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mcalc.errors import DataError, UnusableImage
from mcalc.learn.architecture import TOP_STAGE_AFTER, find_backbone
from mcalc.learn.model import (
    N_CLASSES,
    TrainConfig,
    TrainResult,
    build_backbone,
    build_model,
    compile_model,
    compute_device,
    epoch_orders,
    make_deterministic,
    one_hot,
    ordered_history,
)
from mcalc.learn.preprocessing import PreprocessConfig, load_roi
from mcalc.learn.weights import WeightsInfo
from mcalc.paper import BATCH_SIZE

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

log = logging.getLogger(__name__)

#: How much of the backbone is trained: nothing (the §2.3 reading), the last Inception-ResNet-C stage
#: (``block8_1`` … ``block8_10``, ``conv_7b``, ``conv_7b_bn`` / ``conv_7b_ac``), or every layer.
TRAIN_BACKBONE = ("none", "top", "all")


def top_stage_layers(backbone: keras.Model) -> list:
    """The backbone's Inception-ResNet-C stage: every layer after ``mixed_7a`` in topological order.

    The block's branch convolutions have auto-generated names (``conv2d_N``), so the stage is found by
    position: ``mixed_7a`` is a single-tensor bottleneck, and every later layer depends on it alone.
    """
    names = [layer.name for layer in backbone.layers]
    if TOP_STAGE_AFTER not in names:
        raise ValueError(
            f"backbone {backbone.name!r} has no {TOP_STAGE_AFTER!r} layer; is it an InceptionResNetV2?"
        )
    return list(backbone.layers[names.index(TOP_STAGE_AFTER) + 1 :])


def count_trainable_params(model: keras.Model) -> int:
    """Number of trainable scalar parameters of ``model``."""
    return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))


def set_backbone_trainable(model_or_backbone: keras.Model, train_backbone: str) -> int:
    """Freeze ("none") or unfreeze the top stage ("top") / all ("all") of the backbone; trainable parameter count.

    BatchNormalization layers stay frozen in every case: their beta / moving statistics are not
    trained and they run in inference mode (Keras runs a non-trainable BatchNormalization with its
    moving statistics, and :func:`build_model` calls the backbone with ``training=False``). Batch
    statistics of small fine-tuning batches would otherwise replace the pretrained ones — the usual
    practice for fine-tuning. The head of an end-to-end model is left as it is. Recompile the model
    afterwards (:func:`compile_model`) so that training sees the change. Returns the number of
    trainable parameters of ``model_or_backbone`` (the whole model when an end-to-end model is given).
    """
    import keras

    mode = str(train_backbone).lower()
    if mode not in TRAIN_BACKBONE:
        raise ValueError(
            f"unknown train_backbone {train_backbone!r}; valid: {', '.join(TRAIN_BACKBONE)}"
        )
    backbone = find_backbone(model_or_backbone)
    if mode == "none":
        backbone.trainable = False
    else:
        backbone.trainable = (
            True  # propagates to every layer; the frozen ones are switched back below
        )
        top = {id(layer) for layer in top_stage_layers(backbone)}
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization) or (
                mode == "top" and id(layer) not in top
            ):
                layer.trainable = False
    n = count_trainable_params(model_or_backbone)
    log.info(
        "backbone trainability %r: %d trainable parameters in %s", mode, n, model_or_backbone.name
    )
    return n


def _roi_loader(paths: Sequence[str], preprocess: PreprocessConfig) -> Any:
    """A NumPy function: index → the preprocessed ROI image of ``paths[index]`` (float32)."""

    def load(index: np.ndarray) -> np.ndarray:
        """Decode and preprocess one ROI by its index."""
        return load_roi(paths[int(index)], preprocess)

    return load


def image_dataset(
    paths: Sequence[str],
    labels: np.ndarray | None,
    preprocess: PreprocessConfig,
    batch_size: int = BATCH_SIZE,
    shuffle_seed: int | None = None,
    epochs: int = 1,
    parallel: int | None = None,
    n_classes: int = N_CLASSES,
) -> tf.data.Dataset:
    """A tf.data stream of ROI image batches (and one-hot labels) for ``epochs`` passes over ``paths``.

    Each pass is ordered by :func:`epoch_orders` (``shuffle_seed``) or kept in the given order
    (``shuffle_seed=None``), and is batched on its own, so that every pass has ``ceil(n / batch_size)``
    batches and a pass's last, smaller batch never mixes with the next pass. Images are decoded with
    :func:`mcalc.learn.preprocessing.load_roi` through ``tf.numpy_function`` (declared stateless, so that
    TensorFlow's deterministic mode keeps the parallel map and the prefetch), ``parallel`` at a time
    (default: tf.data's autotuning), in a deterministic order; batches are prefetched. Elements are
    ``images`` of shape (batch, size, size, 3), or ``(images, one_hot_labels)`` when labels are given.
    """
    import tensorflow as tf

    paths = [str(p) for p in paths]
    n = len(paths)
    if n == 0:
        raise DataError("image_dataset needs at least one ROI path")
    if int(batch_size) < 1 or int(epochs) < 1:
        raise ValueError(f"batch_size and epochs must be >= 1, got {batch_size!r} and {epochs!r}")
    for p in paths:
        if not Path(p).is_file():
            raise DataError(f"{p}: ROI image file not found")
    Y = None
    if labels is not None:
        Y = one_hot(labels, n_classes)
        if len(Y) != n:
            raise DataError(f"{n} ROI paths but {len(Y)} labels")
    if shuffle_seed is None:
        orders = [np.arange(n) for _ in range(int(epochs))]
    else:
        orders = epoch_orders(n, int(epochs), int(shuffle_seed))
    size = int(preprocess.image_size)
    loader = _roi_loader(paths, preprocess)
    calls = tf.data.AUTOTUNE if parallel is None else int(parallel)

    def decode(index: tf.Tensor) -> Any:
        """Index → image (and its one-hot label)."""
        image = tf.numpy_function(loader, [index], tf.float32, stateful=False, name="load_roi")
        image.set_shape((size, size, 3))
        if Y is None:
            return image
        return image, tf.gather(tf.constant(Y), index)

    def one_pass(order: np.ndarray) -> tf.data.Dataset:
        """One epoch: decode in ``order`` and batch."""
        ds = tf.data.Dataset.from_tensor_slices(np.asarray(order, dtype=np.int64))
        return ds.map(decode, num_parallel_calls=calls, deterministic=True).batch(int(batch_size))

    stream = one_pass(orders[0])
    for order in orders[1:]:
        stream = stream.concatenate(one_pass(order))
    return stream.prefetch(tf.data.AUTOTUNE)


def _data_error_from(exc: Exception) -> DataError | None:
    """The DataError (or UnusableImage) raised by :func:`load_roi` inside a tf.data pipeline, recovered from TensorFlow's error."""
    text = str(exc)
    for error in (UnusableImage, DataError):  # the subclass first: its name is the one in the text
        marker = f"{error.__name__}: "
        if marker in text:
            return error(text[text.rindex(marker) + len(marker) :].strip().splitlines()[0])
    return None


def fine_tune(
    train_paths: Sequence[str],
    y_train: np.ndarray,
    val_paths: Sequence[str] | None,
    y_val: np.ndarray | None,
    preprocess: PreprocessConfig,
    weights: WeightsInfo,
    config: TrainConfig,
    train_backbone: str = "top",
    seed: int = 0,
    backbone: keras.Model | None = None,
    run_eagerly: bool = False,
    verbose: int = 0,
) -> TrainResult:
    """Train the end-to-end model on streamed ROI images with part of the backbone trainable.

    ``train_backbone`` is one of :data:`TRAIN_BACKBONE` (see :func:`set_backbone_trainable`; BatchNormalization
    stays frozen). The backbone is built from ``weights`` with ``seed`` (the seed of a random backbone, as in
    :func:`extract_features`), or ``backbone`` is used — and modified in place when trainable. The head is
    initialised from ``config.seed`` exactly as :func:`train_head` does, the optimizer, KL-divergence loss and
    metrics are :func:`compile_model`'s, and every epoch visits the training images in the seeded order of
    :func:`epoch_orders`; the history has :func:`fit_epochs`' columns. The feature cache cannot be used, since
    the backbone changes. With ``train_backbone="none"`` this is the same computation as :func:`train_head`
    on cached features. ``run_eagerly`` trains without compiling a TensorFlow graph: the same operations,
    slower per step but without the graph's build time, which dominates for a handful of small images.
    """
    import tensorflow as tf

    if (val_paths is None) != (y_val is None):
        raise ValueError("give both val_paths and y_val, or neither")
    if backbone is None:
        backbone = build_backbone(preprocess.image_size, weights, seed)
    model = build_model(
        preprocess.image_size,
        weights,
        config.hidden_units,
        seed=config.seed,
        backbone=backbone,
        n_classes=config.n_classes,
    )
    n_trainable = set_backbone_trainable(model, train_backbone)
    make_deterministic(config.seed)
    compile_model(model, config)
    model.run_eagerly = bool(run_eagerly)
    train_paths = list(train_paths)
    train = image_dataset(
        train_paths,
        y_train,
        preprocess,
        config.batch_size,
        shuffle_seed=config.seed,
        n_classes=config.n_classes,
        epochs=config.epochs,
    )
    validation = None
    if val_paths is not None and len(val_paths):
        validation = image_dataset(
            list(val_paths),
            y_val,
            preprocess,
            config.batch_size,
            shuffle_seed=None,
            n_classes=config.n_classes,
        )
    steps = -(-len(train_paths) // int(config.batch_size))
    log.info(
        "fine-tuning (backbone %s, %d trainable parameters): %s, lr %g, batch %d, %d epochs, seed %d, on %s",
        train_backbone,
        n_trainable,
        config.optimizer,
        config.learning_rate,
        config.batch_size,
        config.epochs,
        config.seed,
        compute_device(),
    )
    start = time.perf_counter()
    try:
        hist = model.fit(
            train,
            epochs=int(config.epochs),
            steps_per_epoch=steps,
            validation_data=validation,
            shuffle=False,
            verbose=verbose,
        )
    except tf.errors.OpError as exc:
        error = _data_error_from(exc)
        if error is None:
            raise
        raise error from None
    elapsed = time.perf_counter() - start
    rows = [
        {"epoch": e + 1, **{k: float(v[e]) for k, v in hist.history.items()}}
        for e in range(int(config.epochs))
    ]
    return TrainResult(
        history=ordered_history(pd.DataFrame(rows)), model=model, elapsed_s=elapsed, config=config
    )


def predict_images(
    model: keras.Model,
    paths: Sequence[str],
    preprocess: PreprocessConfig,
    batch_size: int = BATCH_SIZE,
) -> np.ndarray:
    """Class probabilities (N, 3) of an end-to-end model for the ROI DICOMs at ``paths`` (streamed, in order)."""
    import tensorflow as tf

    paths = [str(p) for p in paths]
    if not paths:
        return np.zeros((0, int(model.output_shape[-1])), dtype=np.float32)
    stream = image_dataset(paths, None, preprocess, batch_size, shuffle_seed=None)
    try:
        return np.asarray(model.predict(stream, verbose=0), dtype=np.float32)
    except tf.errors.OpError as exc:
        error = _data_error_from(exc)
        if error is None:
            raise
        raise error from None
