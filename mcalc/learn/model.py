"""The paper's model (§2.3–3.4, Table 2): frozen InceptionResNetV2 + Dense(128, relu) + Dense(3, softmax).

Because the backbone is frozen and its BatchNormalization layers run in inference mode, training the
head on cached backbone features (:mod:`mcalc.learn.features`) is the same computation as training the
end-to-end model on images (``tests/test_model.py`` checks this to float tolerance); the pipeline
trains only the head (:func:`train_head`) for each of the four optimizers. Fine-tuning the backbone
(the paper's other reading) is :mod:`mcalc.learn.finetune`; which weights the backbone gets is
:mod:`mcalc.learn.weights`.

Training is seeded and deterministic: the head's initial weights come from seeded initialisers,
each epoch's batch order is a seeded permutation (:func:`epoch_orders`) fed to Keras unshuffled, and
TensorFlow's op determinism is switched on. Loss: Kullback–Leibler divergence on one-hot targets;
metrics: categorical accuracy, AUC (one-vs-rest pooled over the three classes, Keras' default) and
sensitivity at 80 % specificity (pooled the same way), for training and validation.

A GPU is used automatically when TensorFlow sees one; the device is logged.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mcalc.errors import DataError, WeightsUnavailable
from mcalc.learn.preprocessing import MIN_IMAGE_SIZE
from mcalc.learn.weights import IMAGENET_NOTOP_FILE, WeightsInfo
from mcalc.paper import BATCH_SIZE, EPOCHS, LEARNING_RATE, OPTIMIZERS, PAPER_OPTIMIZER_SETTINGS
from mcalc.study import CLASSES, DEFAULT_TASK, get_task

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

log = logging.getLogger(__name__)


#: Width of InceptionResNetV2's average-pooled output.
N_FEATURES = 1536
#: Number of classes (:data:`mcalc.study.CLASSES`).
N_CLASSES = len(CLASSES)
#: Column order of the training history (``val_*`` follow when validation data is given).
HISTORY_METRICS = ("loss", "accuracy", "auc", "sensitivity_at_specificity")


# --------------------------------------------------------------------------------------------------
# optimizers and training configuration


def make_optimizer(
    name: str, learning_rate: float | None = None, **overrides: Any
) -> keras.optimizers.Optimizer:
    """A Keras optimizer with the paper's settings; ``learning_rate`` / ``overrides`` replace them."""
    import keras

    key = str(name).lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(OPTIMIZERS)}")
    settings = dict(PAPER_OPTIMIZER_SETTINGS[key])
    if learning_rate is not None:
        settings["learning_rate"] = float(learning_rate)
    settings.update(overrides)
    classes = {
        "adam": keras.optimizers.Adam,
        "adagrad": keras.optimizers.Adagrad,
        "adadelta": keras.optimizers.Adadelta,
        "rmsprop": keras.optimizers.RMSprop,
    }
    return classes[key](**settings)


@dataclass
class TrainConfig:
    """Head-training settings; the defaults are the paper's (§2.4, §3: lr 1e-4, batch 32, 20 epochs)."""

    optimizer: str = "adam"
    learning_rate: float = LEARNING_RATE
    batch_size: int = BATCH_SIZE
    epochs: int = EPOCHS
    seed: int = 0
    hidden_units: int = 128
    optimizer_kwargs: dict = field(default_factory=dict)
    task: str = DEFAULT_TASK  # mcalc.study.TASKS: the classes the head's output units stand for

    @property
    def n_classes(self) -> int:
        """The head's output units: the number of classes of the task."""
        return len(get_task(self.task).classes)

    def __post_init__(self) -> None:
        """Validate the optimizer and task names and the positive integers."""
        get_task(self.task)
        if str(self.optimizer).lower() not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; valid optimizers: {', '.join(OPTIMIZERS)}"
            )
        for name in ("batch_size", "epochs", "hidden_units"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")


@dataclass
class TrainResult:
    """Outcome of training: per-epoch history, the trained model, wall time and the configuration."""

    history: pd.DataFrame
    model: keras.Model
    elapsed_s: float
    config: TrainConfig


# --------------------------------------------------------------------------------------------------
# models


def compute_device() -> str:
    """The device TensorFlow will run the backbone on ("GPU: ..." or "CPU")."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return "GPU: " + ", ".join(g.name for g in gpus) if gpus else "CPU"


def build_backbone(image_size: int, weights: WeightsInfo, seed: int = 0) -> keras.Model:
    """Frozen InceptionResNetV2 (no top, average pooling) for ``image_size``² RGB input; 1536-d output."""
    import keras

    if int(image_size) < MIN_IMAGE_SIZE:
        raise ValueError(
            f"image_size must be at least {MIN_IMAGE_SIZE} for InceptionResNetV2, got {image_size}"
        )
    keras.utils.set_random_seed(int(seed))
    path = None if weights.used == "random" else weights.path
    if weights.used != "random" and not path:
        raise ValueError(
            f"weights {weights.used!r} have no file path; resolve them with resolve_weights()"
        )
    try:
        with (
            warnings.catch_warnings()
        ):  # a mismatched file triggers one warning per layer before the error
            warnings.simplefilter("ignore")
            backbone = keras.applications.InceptionResNetV2(
                include_top=False,
                weights=path,
                input_shape=(int(image_size), int(image_size), 3),
                pooling="avg",
            )
    except (ValueError, OSError, KeyError) as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        raise WeightsUnavailable(
            f"Cannot load InceptionResNetV2 weights from {path} ({type(exc).__name__}: {first_line}). The file must hold "
            f"the weights of an InceptionResNetV2 without top, saved as .h5 (Keras' {IMAGENET_NOTOP_FILE}) or "
            f".weights.h5 (model.save_weights)."
        ) from None
    backbone.trainable = False
    log.info(
        "InceptionResNetV2 backbone %dx%d, weights %s, device %s",
        image_size,
        image_size,
        weights.used,
        compute_device(),
    )
    return backbone


def build_head(
    n_features: int = N_FEATURES, hidden_units: int = 128, n_classes: int = N_CLASSES, seed: int = 0
) -> keras.Model:
    """The trainable head: Dense(hidden_units, relu) → Dense(n_classes, softmax), seeded Glorot init."""
    import keras

    inputs = keras.Input((int(n_features),), name="features")
    hidden = keras.layers.Dense(
        int(hidden_units),
        activation="relu",
        name="fc",
        kernel_initializer=keras.initializers.GlorotUniform(seed=int(seed)),
        bias_initializer="zeros",
    )(inputs)
    outputs = keras.layers.Dense(
        int(n_classes),
        activation="softmax",
        name="predictions",
        kernel_initializer=keras.initializers.GlorotUniform(seed=int(seed) + 1),
        bias_initializer="zeros",
    )(hidden)
    return keras.Model(inputs, outputs, name="head")


def build_model(
    image_size: int,
    weights: WeightsInfo,
    hidden_units: int = 128,
    seed: int = 0,
    backbone: keras.Model | None = None,
    n_classes: int = N_CLASSES,
) -> keras.Model:
    """The end-to-end paper model: image → frozen backbone (inference mode) → head (Figure 2, Table 2)."""
    import keras

    backbone = backbone if backbone is not None else build_backbone(image_size, weights, seed)
    backbone.trainable = False
    inputs = keras.Input((int(image_size), int(image_size), 3), name="roi")
    features = backbone(inputs, training=False)
    head = build_head(backbone.output_shape[-1], hidden_units, n_classes, seed)
    return keras.Model(inputs, head(features), name="inception_resnet_v2_transfer")


# --------------------------------------------------------------------------------------------------
# training


#: The head trains on in-memory features with one compiled call per epoch (Keras
#: ``steps_per_execution`` = the epoch's batches) and all epochs in one ``model.fit``: the same
#: batches in the same order, identical weights and history to one batch a call and one ``fit`` an
#: epoch (tests/test_model.py), without Keras' per-call and per-``fit`` overhead. False: one batch a call.
ONE_CALL_PER_EPOCH = True


def compile_model(
    model: keras.Model, config: TrainConfig, steps_per_execution: int = 1
) -> keras.Model:
    """Compile with the configured optimizer, KL-divergence loss and the paper's metrics; returns ``model``."""
    import keras

    model.compile(
        optimizer=make_optimizer(config.optimizer, config.learning_rate, **config.optimizer_kwargs),
        loss=keras.losses.KLDivergence(),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.AUC(name="auc"),
            keras.metrics.SensitivityAtSpecificity(0.8, name="sensitivity_at_specificity"),
        ],
        steps_per_execution=int(steps_per_execution),
    )
    return model


def one_hot(labels: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """Integer labels (N,) → float32 one-hot (N, n_classes); one-hot input is checked and passed through."""
    y = np.asarray(labels)
    if y.ndim == 2:
        if y.shape[1] != n_classes:
            raise DataError(f"one-hot targets have {y.shape[1]} columns, expected {n_classes}")
        return y.astype(np.float32)
    if (
        y.ndim != 1
        or (y.size and (y.min() < 0 or y.max() >= n_classes))
        or not np.all(np.equal(np.mod(y, 1), 0))
    ):
        raise DataError(
            f"labels must be integers in [0, {n_classes}), got shape {y.shape}, values {np.unique(y)[:10]}"
        )
    return np.eye(n_classes, dtype=np.float32)[y.astype(int)]


def epoch_orders(n: int, epochs: int, seed: int) -> list[np.ndarray]:
    """The seeded sample order of every epoch (one permutation of ``range(n)`` per epoch)."""
    rng = np.random.default_rng(int(seed))
    return [rng.permutation(int(n)) for _ in range(int(epochs))]


def float32_everywhere() -> None:
    """Switch off TensorFlow's TensorFloat-32 (on by default on Ampere and later GPUs, about 10
    significant bits): float32 results then are float32's on every device (a no-op on a CPU)."""
    import tensorflow as tf

    tf.config.experimental.enable_tensor_float_32_execution(False)


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, switch on TensorFlow's deterministic ops and off TensorFloat-32."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()
    float32_everywhere()


def batches_per_epoch(n: int, batch_size: int) -> int:
    """The number of batches of one epoch over ``n`` samples (the last one partial)."""
    return -(-int(n) // int(batch_size))


def epoch_stream(
    X: np.ndarray, Y: np.ndarray, orders: list[np.ndarray], batch_size: int
) -> tf.data.Dataset:
    """Every epoch's batches one after the other: epoch e takes rows ``orders[e]`` in ``batch_size``
    batches, its last batch partial, so that ``fit(..., steps_per_epoch=batches_per_epoch)`` sees
    exactly the batches of one ``fit`` call per epoch over ``X[orders[e]]``."""
    import tensorflow as tf

    X_t, Y_t = tf.constant(X), tf.constant(Y)
    batches = tf.data.Dataset.from_tensor_slices(np.stack(orders).astype(np.int64)).flat_map(
        lambda order: tf.data.Dataset.from_tensor_slices(order).batch(int(batch_size))
    )
    return batches.map(lambda rows: (tf.gather(X_t, rows), tf.gather(Y_t, rows)))


def _test_accuracy_callback(test: tuple[np.ndarray, np.ndarray], into: list[float]) -> Any:
    """A Keras callback appending the model's accuracy on ``test`` after every epoch to ``into``."""
    import keras

    X_test, y_test = np.asarray(test[0], dtype=np.float32), np.asarray(test[1])

    class TestAccuracy(keras.callbacks.Callback):
        """Test accuracy after every epoch (for chapter 5's epoch selection on the test set)."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            """Record this epoch's test accuracy."""
            into.append(float((predict_proba(self.model, X_test).argmax(axis=1) == y_test).mean()))

    return TestAccuracy()


@contextlib.contextmanager
def quiet_retracing() -> Iterator[None]:
    """TensorFlow's "triggered tf.function retracing" warnings held back for the block: every new head
    traces its own training function by design, which is what that warning, meant for loops, counts."""
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        tf_logger.setLevel(level)


def fit_epochs(
    model: keras.Model,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray | None,
    y_val: np.ndarray | None,
    config: TrainConfig,
    verbose: int = 0,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Train a compiled ``model`` for ``config.epochs`` epochs over seeded batch orders; history per epoch.

    All epochs run in one ``model.fit`` over :func:`epoch_stream`; the model's ``steps_per_execution``
    must divide the batches of an epoch (so that no compiled call spans two epochs). With ``test`` =
    (inputs, labels) the history also records ``test_accuracy`` after every epoch, so that choosing an
    epoch on the test set can be compared with choosing it on validation. ``callbacks``: Keras
    callbacks of the caller's (timing, logging), run before the test-accuracy one.
    """
    make_deterministic(config.seed)
    X = np.asarray(X_train, dtype=np.float32)
    n_classes = int(model.output_shape[-1])
    Y = one_hot(y_train, n_classes)
    if len(X) != len(Y) or len(X) == 0:
        raise DataError(
            f"training inputs and labels must be non-empty and of equal length, got {len(X)} and {len(Y)}"
        )
    n_batches = batches_per_epoch(len(X), config.batch_size)
    if n_batches % int(model.steps_per_execution):
        raise ValueError(
            f"steps_per_execution {model.steps_per_execution} does not divide the {n_batches} batches of an epoch"
        )
    validation = None
    if X_val is not None and y_val is not None:
        validation = (np.asarray(X_val, dtype=np.float32), one_hot(y_val, n_classes))
    test_accuracy: list[float] = []
    callbacks = [*callbacks] + (
        [] if test is None else [_test_accuracy_callback(test, test_accuracy)]
    )
    start = time.perf_counter()
    with quiet_retracing():
        hist = model.fit(
            epoch_stream(X, Y, epoch_orders(len(X), config.epochs, config.seed), config.batch_size),
            epochs=int(config.epochs),
            steps_per_epoch=n_batches,
            shuffle=False,
            validation_data=validation,
            callbacks=callbacks,
            verbose=verbose,
        )
    elapsed = time.perf_counter() - start
    history = pd.DataFrame({"epoch": np.arange(1, int(config.epochs) + 1)}).assign(
        **{k: [float(v) for v in values] for k, values in hist.history.items()}
    )
    if test is not None:
        history["test_accuracy"] = test_accuracy
    return TrainResult(
        history=ordered_history(history), model=model, elapsed_s=elapsed, config=config
    )


def train_head(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray | None,
    y_val: np.ndarray | None,
    config: TrainConfig,
    test: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrainResult:
    """Train the Dense head on backbone features (seeded, deterministic); history (with test accuracy per epoch if given) and model."""
    make_deterministic(config.seed)
    X = np.asarray(X_train)
    if X.ndim != 2:
        raise DataError(f"features must be 2-D (samples, features), got shape {X.shape}")
    head = compile_model(
        build_head(X.shape[1], config.hidden_units, config.n_classes, config.seed),
        config,
        steps_per_execution=batches_per_epoch(len(X), config.batch_size)
        if ONE_CALL_PER_EPOCH
        else 1,
    )
    log.info(
        "training the head: %s, lr %g, batch %d, %d epochs, seed %d, on %s",
        config.optimizer,
        config.learning_rate,
        config.batch_size,
        config.epochs,
        config.seed,
        compute_device(),
    )
    return fit_epochs(head, X, y_train, X_val, y_val, config, test=test)


def predict_proba(model: keras.Model, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N, 3) of a trained head (features in) or end-to-end model (images in)."""
    X = np.asarray(X, dtype=np.float32)
    if len(X) == 0:
        return np.zeros((0, int(model.output_shape[-1])), dtype=np.float32)
    import keras

    # Direct calls in inference mode, batch by batch: model.predict would build (and retrace) a new
    # tf.function for every freshly trained head.
    out = [
        keras.ops.convert_to_numpy(model(X[i : i + batch_size], training=False))
        for i in range(0, len(X), batch_size)
    ]
    return np.concatenate(out).astype(np.float32)


def ordered_history(history: pd.DataFrame) -> pd.DataFrame:
    """History columns in the order epoch, :data:`HISTORY_METRICS`, their ``val_*``, then any others."""
    ordered = ["epoch", *HISTORY_METRICS, *(f"val_{m}" for m in HISTORY_METRICS)]
    return history[[c for c in ordered if c in history] + [c for c in history if c not in ordered]]
