"""Many heads trained side by side: one compiled step updates every head, each on its own batches.

Chapter 5's test-selection search trains the head once per optimizer, learning rate and seed (80
trainings at the paper's search) and chapter 6's leakage audit once per split scheme and split seed
(21). Trained one after another, each pays Keras' tracing and its per-step overhead for a
200,000-weight head; :func:`train_heads_side_by_side` builds every head and its optimizer as
:func:`~mcalc.learn.model.train_head` does, then takes each training step for all of them in one
compiled call, each head on its own batches (of the same rows, or of its own rows). The heads share
no weights and the summed loss gives each head the gradient of its own loss, so each head's weights
and per-epoch accuracies are those of its own :func:`~mcalc.learn.model.train_head` run
(tests/learn/test_stacked.py compares them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mcalc.errors import DataError
from mcalc.learn.model import (
    TrainConfig,
    batches_per_epoch,
    build_head,
    epoch_orders,
    make_deterministic,
    make_optimizer,
    one_hot,
)

if TYPE_CHECKING:
    import keras

__all__ = ["SHARED_SETTINGS", "SideBySideRun", "train_heads_side_by_side"]

#: Settings every head trained side by side must share: one step is one batch of every head, one
#: epoch every head's, and one set of one-hot labels every head's.
SHARED_SETTINGS = ("batch_size", "epochs", "task")


@dataclass
class SideBySideRun:
    """One head of a side-by-side training: its configuration, trained model and per-epoch record.

    ``history`` has one row per epoch: ``val_accuracy`` (with validation data), ``test_accuracy`` and
    ``test_correct`` (which test ROIs the head gets right, '0101…'; with test data).
    """

    config: TrainConfig
    model: keras.Model
    history: pd.DataFrame


def _check_configs(configs: Sequence[TrainConfig]) -> None:
    """Raise ValueError unless there is a configuration and all share :data:`SHARED_SETTINGS`."""
    if not configs:
        raise ValueError("train_heads_side_by_side needs at least one configuration")
    for name in SHARED_SETTINGS:
        values = {getattr(c, name) for c in configs}
        if len(values) > 1:
            raise ValueError(f"heads trained side by side must share {name}; got {sorted(values)}")


def _keras_accuracy(hit: np.ndarray) -> float:
    """The share of hits as Keras' accuracy metric reports it (a float32 total over a float32 count)."""
    return float(np.float32(hit.sum()) / np.float32(len(hit)))


def train_heads_side_by_side(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray | None,
    y_val: np.ndarray | None,
    configs: Sequence[TrainConfig],
    test: tuple[np.ndarray, np.ndarray] | None = None,
    train_rows: Sequence[np.ndarray] | None = None,
) -> list[SideBySideRun]:
    """Train one head per configuration, all in one compiled step per batch.

    Each head starts from :func:`~mcalc.learn.model.build_head` with its seed, takes its optimizer from
    :func:`~mcalc.learn.model.make_optimizer` and its batch order from
    :func:`~mcalc.learn.model.epoch_orders` with its seed: what :func:`~mcalc.learn.model.train_head`
    gives it. The configurations may differ in optimizer, learning rate, optimizer settings and seed,
    not in :data:`SHARED_SETTINGS`.

    Every head trains on all of ``X_train`` unless ``train_rows`` gives each its own rows of it (one
    array per configuration, of any lengths: a head whose epoch has fewer batches sits out the
    steps after its last batch). The validation and test data, when given, are every head's.
    """
    import keras
    import tensorflow as tf

    _check_configs(configs)
    first = configs[0]
    X = np.asarray(X_train, dtype=np.float32)
    if X.ndim != 2:
        raise DataError(f"features must be 2-D (samples, features), got shape {X.shape}")
    Y = one_hot(y_train, first.n_classes)
    if len(X) != len(Y) or len(X) == 0:
        raise DataError(
            f"training inputs and labels must be non-empty and of equal length, got {len(X)} and {len(Y)}"
        )
    rows = [np.arange(len(X))] * len(configs) if train_rows is None else list(train_rows)
    if len(rows) != len(configs):
        raise ValueError(f"{len(rows)} row sets for {len(configs)} configurations")
    rows = [np.asarray(r, dtype=np.int64) for r in rows]
    if any(len(r) == 0 or r.min() < 0 or r.max() >= len(X) for r in rows):
        raise DataError(f"every head needs training rows within the {len(X)} rows of X_train")
    heads, optimizers = [], []
    for config in configs:
        make_deterministic(config.seed)
        head = build_head(X.shape[1], config.hidden_units, config.n_classes, config.seed)
        optimizer = make_optimizer(
            config.optimizer, config.learning_rate, **config.optimizer_kwargs
        )
        optimizer.build(head.trainable_variables)
        heads.append(head)
        optimizers.append(optimizer)
    loss = keras.losses.KLDivergence()
    X_t, Y_t = tf.constant(X), tf.constant(Y)

    signature = [[tf.TensorSpec((None,), tf.int64)] * len(heads)]

    @tf.function(input_signature=signature)
    def step(batches: list[tf.Tensor]) -> None:
        """One batch for every head: head i takes rows batches[i] and the gradient of its own loss;
        a head with an empty batch (its epoch is over) is left as it is."""
        with tf.GradientTape() as tape:
            losses = [
                loss(tf.gather(Y_t, batch), head(tf.gather(X_t, batch), training=True))
                for batch, head in zip(batches, heads)
            ]
            total = tf.add_n(losses)
        variables = [head.trainable_variables for head in heads]
        gradients = tape.gradient(total, [v for vs in variables for v in vs])
        at = 0
        for batch, optimizer, vs in zip(batches, optimizers, variables):
            grads = gradients[at : at + len(vs)]
            at += len(vs)

            def apply(optimizer=optimizer, grads=grads, vs=vs) -> tf.Tensor:
                """This head's optimizer step."""
                optimizer.apply_gradients(zip(grads, vs))
                return tf.constant(True)

            tf.cond(tf.size(batch) > 0, apply, lambda: tf.constant(False))

    @tf.function
    def classes(inputs: tf.Tensor) -> tf.Tensor:
        """Every head's predicted class of every row of ``inputs`` (heads, rows)."""
        return tf.stack([tf.argmax(head(inputs, training=False), axis=1) for head in heads])

    evaluated = {
        name: (tf.constant(np.asarray(part[0], dtype=np.float32)), np.asarray(part[1]))
        for name, part in (("val", (X_val, y_val)), ("test", test))
        if part is not None and part[0] is not None and part[1] is not None
    }
    orders = [
        [r[order] for order in epoch_orders(len(r), c.epochs, c.seed)]
        for r, c in zip(rows, configs)
    ]  # per head, per epoch: its training rows in the epoch's order
    records: list[list[dict]] = [[] for _ in configs]
    size = int(first.batch_size)
    n_batches = max(batches_per_epoch(len(r), size) for r in rows)
    for epoch in range(1, int(first.epochs) + 1):
        for b in range(n_batches):
            step([tf.constant(o[epoch - 1][b * size : (b + 1) * size]) for o in orders])
        hits = {name: classes(x).numpy() == y for name, (x, y) in evaluated.items()}
        for i, record in enumerate(records):
            row: dict = {"epoch": epoch}
            if "val" in hits:
                row["val_accuracy"] = _keras_accuracy(hits["val"][i])
            if "test" in hits:
                row["test_accuracy"] = float(hits["test"][i].mean())
                row["test_correct"] = "".join("1" if h else "0" for h in hits["test"][i])
            record.append(row)
    return [
        SideBySideRun(config=c, model=h, history=pd.DataFrame(r))
        for c, h, r in zip(configs, heads, records)
    ]
