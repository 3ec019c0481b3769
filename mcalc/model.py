"""The paper's model (§2.3–3.4, Table 2): frozen InceptionResNetV2 + Dense(128, relu) + Dense(3, softmax).

Because the backbone is frozen and its BatchNormalization layers run in inference mode, training the
head on cached backbone features is the same computation as training the end-to-end model on
images (``tests/test_model.py`` checks this to float tolerance). The pipeline therefore extracts the
1536-d average-pooled features once per image (:func:`extract_features`, cached by content in
:mod:`mcalc.cache`) and trains only the head (:func:`train_head`) for each of the four optimizers.

Training is seeded and deterministic: the head's initial weights come from seeded initialisers,
each epoch's batch order is a seeded permutation (:func:`epoch_orders`) fed to Keras unshuffled, and
TensorFlow's op determinism is switched on. Loss: Kullback–Leibler divergence on one-hot targets;
metrics: categorical accuracy, AUC (one-vs-rest pooled over the three classes, Keras' default) and
sensitivity at 80 % specificity (pooled the same way), for training and validation.

The paper is ambiguous about the backbone: §2.3 uses the pretrained network only to obtain feature
maps, while §3 says the optimizers "fine-tune the parameters of InceptionResNetV2". The second reading
is :func:`fine_tune`: the end-to-end model trained on ROI images streamed by :func:`image_dataset`
(tf.data), with nothing, the last Inception-ResNet-C stage, or the whole backbone trainable
(:data:`TRAIN_BACKBONE`, :func:`set_backbone_trainable`; BatchNormalization stays frozen). It cannot use
the feature cache.

A GPU is used automatically when TensorFlow sees one; the device is logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mcalc.cache import FeatureCache, cache_key, file_digest, load_or_compute
from mcalc.errors import DataError, ExclusionWarning, WeightsUnavailable
from mcalc.preprocessing import MIN_IMAGE_SIZE, PreprocessConfig, load_roi

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

log = logging.getLogger(__name__)

#: The four optimizers compared in the paper (§3.1–3.4), in the paper's order.
OPTIMIZERS = ("adam", "adagrad", "adadelta", "rmsprop")

#: Hyper-parameters reported in §2.4 and §3.1–3.4 (learning rate 1e-4 for all four).
PAPER_OPTIMIZER_SETTINGS: MappingProxyType = MappingProxyType(
    {
        "adam": MappingProxyType(
            {"learning_rate": 1e-4, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
        ),
        "adagrad": MappingProxyType(
            {"learning_rate": 1e-4, "initial_accumulator_value": 0.1, "epsilon": 1e-7}
        ),
        "adadelta": MappingProxyType({"learning_rate": 1e-4, "rho": 0.95, "epsilon": 1e-7}),
        "rmsprop": MappingProxyType(
            {"learning_rate": 1e-4, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7}
        ),
    }
)

#: Width of InceptionResNetV2's average-pooled output.
N_FEATURES = 1536
#: Number of classes (mcalc.curation.CLASSES).
N_CLASSES = 3
#: Keras' ImageNet "notop" weights file for InceptionResNetV2, where Keras downloads it from, and its md5.
IMAGENET_NOTOP_FILE = "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_NOTOP_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_resnet_v2/"
    + IMAGENET_NOTOP_FILE
)
IMAGENET_NOTOP_MD5 = "d19885ff4a710c122648d3b5c3b684e4"
#: Version of the feature recipe; bump it when extraction changes so cached features are rebuilt.
FEATURES_VERSION = 1
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


def update_sizes(
    steps: int = 860, gradients: tuple[float, ...] = (1.0, 0.01), learning_rate: float | None = None
) -> pd.DataFrame:
    """How far each optimizer (the paper's settings) moves one weight under a constant gradient, after 1 and ``steps`` steps.

    The default 860 steps are 20 epochs of 43 batches (1,346 training ROIs at batch 32). This is a
    property of the optimizers alone, independent of the data: it shows, for example, that Adadelta at
    learning rate 1e-4 (ρ 0.95, ε 1e-7) starts with steps of lr·√(ε/(1−ρ)) ≈ 1.4e-7 for any gradient
    well above √ε. How far the head's *outputs* move is another matter (:mod:`mcalc.selection`).
    """
    import keras
    import pandas as pd

    rows = []
    for name in OPTIMIZERS:
        for g in gradients:
            opt = make_optimizer(name, learning_rate)
            var = keras.Variable(0.0, dtype="float32")
            grad = keras.ops.convert_to_tensor(g, dtype="float32")
            moved = []
            for step in range(1, steps + 1):
                opt.apply_gradients([(grad, var)])
                if step in (1, steps):
                    moved.append(abs(float(keras.ops.convert_to_numpy(var))))
            rows.append(
                {
                    "optimizer": name,
                    "gradient": g,
                    "after 1 step": moved[0],
                    f"after {steps} steps": moved[-1],
                }
            )
    return pd.DataFrame(rows)


@dataclass
class TrainConfig:
    """Head-training settings; the defaults are the paper's (§2.4, §3: lr 1e-4, batch 32, 20 epochs)."""

    optimizer: str = "adam"
    learning_rate: float = 1e-4
    batch_size: int = 32
    epochs: int = 20
    seed: int = 0
    hidden_units: int = 128
    optimizer_kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Validate the optimizer name and the positive integers."""
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
# weights


@dataclass
class WeightsInfo:
    """Which backbone weights were asked for and which are used (recorded in provenance labels)."""

    requested: str
    used: str  # "imagenet" | "random" | "file:<name>"
    path: str | None
    sha256: str | None
    note: str

    def identity(self, seed: int = 0) -> str:
        """Content identity of the weights for cache keys: the file's sha256, or ``random:<seed>``."""
        if self.used == "random":
            return f"random:{int(seed)}"
        if not self.sha256:
            raise ValueError(
                f"weights {self.used!r} have no sha256; resolve them with resolve_weights()"
            )
        return f"sha256:{self.sha256}"


def _sha256(path: Path) -> str:
    """sha256 hex digest of a file."""
    return file_digest(path)


def _md5(path: Path) -> str:
    """md5 hex digest of a file (Keras publishes md5 hashes for its weight files)."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def keras_home_dir(keras_home: str | os.PathLike | None = None) -> Path:
    """Keras' cache folder: the argument, else $KERAS_HOME, else ~/.keras (read now, not at import)."""
    return Path(keras_home or os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()


def _probe(url: str, timeout_s: float) -> str | None:
    """None when the URL's host accepts a TCP connection within ``timeout_s``, else why not."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    outcome: dict[str, str] = {}

    def connect() -> None:
        """Open and close one TCP connection, recording the error if any."""
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except OSError as exc:
            outcome["error"] = f"{type(exc).__name__}: {exc}"

    worker = threading.Thread(target=connect, name="mcalc-weights-probe", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        return f"no answer from {host} within {timeout_s:g} s"
    return outcome.get("error")


def _download_imagenet(home: Path, timeout_s: float) -> tuple[Path | None, str]:
    """Try Keras' download of the notop file into ``home/models``; (path, "") or (None, reason)."""
    import keras

    reason = _probe(IMAGENET_NOTOP_URL, timeout_s)
    if reason:
        return None, reason
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        got = keras.utils.get_file(
            IMAGENET_NOTOP_FILE,
            IMAGENET_NOTOP_URL,
            cache_subdir="models",
            file_hash=IMAGENET_NOTOP_MD5,
            cache_dir=str(home),
        )
    except Exception as exc:  # network errors, hash mismatch, unwritable folder
        return None, f"download failed ({type(exc).__name__}: {exc})"
    finally:
        socket.setdefaulttimeout(previous)
    return Path(got), ""


def _resolve_imagenet(requested: str, home: Path, timeout_s: float) -> WeightsInfo:
    """The ImageNet notop weights from ``home/models`` or Keras' download, else WeightsUnavailable."""
    target = home / "models" / IMAGENET_NOTOP_FILE
    if target.is_file():
        if _md5(target) != IMAGENET_NOTOP_MD5:
            raise WeightsUnavailable(
                f"The InceptionResNetV2 ImageNet weights file {target} is incomplete or damaged (its md5 is "
                f"not Keras' {IMAGENET_NOTOP_MD5}). Delete it and put a good copy of {IMAGENET_NOTOP_FILE} "
                f'(from {IMAGENET_NOTOP_URL}) there, or run with weights="random" or weights="auto".'
            ) from None
        path, origin = target, f"found in {target.parent}"
    else:
        path, reason = _download_imagenet(home, timeout_s)
        if path is None:
            raise WeightsUnavailable(
                f"The InceptionResNetV2 ImageNet weights are not available: {IMAGENET_NOTOP_FILE} is not in "
                f"{target.parent} and downloading it from {IMAGENET_NOTOP_URL} failed ({reason}). To use the "
                f"paper's ImageNet weights, fetch that file on a machine with internet access and put it at "
                f"{target} (the folder is $KERAS_HOME/models, with KERAS_HOME defaulting to ~/.keras), or pass "
                f'the file\'s path as the weights. To run without it, use weights="random" (a seeded random '
                f'backbone) or weights="auto" (ImageNet when available, otherwise random, and the results '
                f"say so)."
            ) from None
        origin = f"downloaded from {IMAGENET_NOTOP_URL}"
    return WeightsInfo(
        requested=requested,
        used="imagenet",
        path=str(path),
        sha256=_sha256(path),
        note=f"ImageNet weights ({IMAGENET_NOTOP_FILE}, {origin})",
    )


def resolve_weights(
    spec: str = "auto", keras_home: str | os.PathLike | None = None, download_timeout_s: float = 10
) -> WeightsInfo:
    """Resolve a weights spec ("imagenet", "random", "auto" or a path to a .h5 file) to a WeightsInfo."""
    text = str(spec)
    home = keras_home_dir(keras_home)
    low = text.strip().lower()
    if low == "random":
        return WeightsInfo(
            "random", "random", None, None, "random initialisation (seeded); not ImageNet weights"
        )
    if low == "imagenet":
        return _resolve_imagenet("imagenet", home, download_timeout_s)
    if low == "auto":
        try:
            return _resolve_imagenet("auto", home, download_timeout_s)
        except WeightsUnavailable as exc:
            return WeightsInfo(
                "auto", "random", None, None, f"seeded random initialisation, not ImageNet. {exc}"
            )
    if low.endswith((".h5", ".hdf5")):
        path = Path(text).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(
                f"Backbone weights file {path} does not exist. Give the path of an existing .h5 or .weights.h5 "
                f"file of an InceptionResNetV2 without top (e.g. Keras' {IMAGENET_NOTOP_FILE}), or use "
                f'weights="imagenet", "random" or "auto".'
            ) from None
        return WeightsInfo(
            text, f"file:{path.name}", str(path), _sha256(path), f"weights loaded from {path}"
        )
    raise ValueError(
        f'unknown weights spec {text!r}: use "imagenet", "random", "auto" or a path to a .h5 / .weights.h5 file'
    )


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
) -> keras.Model:
    """The end-to-end paper model: image → frozen backbone (inference mode) → head (Figure 2, Table 2)."""
    import keras

    backbone = backbone if backbone is not None else build_backbone(image_size, weights, seed)
    backbone.trainable = False
    inputs = keras.Input((int(image_size), int(image_size), 3), name="roi")
    features = backbone(inputs, training=False)
    head = build_head(backbone.output_shape[-1], hidden_units, N_CLASSES, seed)
    return keras.Model(inputs, head(features), name="inception_resnet_v2_transfer")


def _shape_text(layer: Any) -> str:
    """A layer's output shape as text, or "?" when Keras does not know it."""
    try:
        return str(tuple(layer.output.shape))
    except (AttributeError, ValueError):
        return "?"


def architecture_summary(model: keras.Model, expand: Sequence[str] = ("head",)) -> pd.DataFrame:
    """Layers of ``model`` with type, output shape, activation and parameter counts (nested ``expand`` unrolled)."""
    import keras

    rows = []

    def add(layer: Any, name: str) -> None:
        """Append one table row for ``layer``."""
        activation = getattr(layer, "activation", None)
        rows.append(
            {
                "layer": name,
                "type": type(layer).__name__,
                "output_shape": _shape_text(layer),
                "activation": getattr(activation, "__name__", "") if activation is not None else "",
                "params": int(layer.count_params()) if layer.built else 0,
                "trainable_params": int(
                    sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
                ),
            }
        )

    for layer in model.layers:
        add(layer, layer.name)
        if layer.name in expand and isinstance(layer, keras.Model):
            for sub in layer.layers:
                if not isinstance(sub, keras.layers.InputLayer):
                    add(sub, f"{layer.name}/{sub.name}")
    return pd.DataFrame(
        rows, columns=["layer", "type", "output_shape", "activation", "params", "trainable_params"]
    )


# --------------------------------------------------------------------------------------------------
# training


#: Batches run by one compiled call when the head trains on in-memory features (Keras
#: ``steps_per_execution``): the same batches in the same order, identical weights and history
#: (tests/test_model.py), less Python overhead per step. Streamed image datasets keep one batch a call.
STEPS_PER_EXECUTION = 32


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


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and switch on TensorFlow's deterministic ops."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()


def fit_epochs(
    model: keras.Model,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray | None,
    y_val: np.ndarray | None,
    config: TrainConfig,
    verbose: int = 0,
    test: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrainResult:
    """Train a compiled ``model`` for ``config.epochs`` epochs over seeded batch orders; history per epoch.

    With ``test`` = (inputs, labels) the history also records ``test_accuracy`` after every epoch,
    so that choosing an epoch on the test set can be compared with choosing it on validation.
    """
    make_deterministic(config.seed)
    X = np.asarray(X_train, dtype=np.float32)
    Y = one_hot(y_train)
    if len(X) != len(Y) or len(X) == 0:
        raise DataError(
            f"training inputs and labels must be non-empty and of equal length, got {len(X)} and {len(Y)}"
        )
    validation = None
    if X_val is not None and y_val is not None:
        validation = (np.asarray(X_val, dtype=np.float32), one_hot(y_val))
    rows = []
    start = time.perf_counter()
    for epoch, order in enumerate(epoch_orders(len(X), config.epochs, config.seed)):
        hist = model.fit(
            X[order],
            Y[order],
            batch_size=config.batch_size,
            epochs=epoch + 1,
            initial_epoch=epoch,
            shuffle=False,
            validation_data=validation,
            verbose=verbose,
        )
        rows.append({"epoch": epoch + 1, **{k: float(v[-1]) for k, v in hist.history.items()}})
        if test is not None:
            hits = predict_proba(model, test[0]).argmax(axis=1) == np.asarray(test[1])
            rows[-1]["test_accuracy"] = float(hits.mean())
    elapsed = time.perf_counter() - start
    return TrainResult(
        history=_ordered_history(pd.DataFrame(rows)), model=model, elapsed_s=elapsed, config=config
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
        build_head(X.shape[1], config.hidden_units, N_CLASSES, config.seed),
        config,
        steps_per_execution=STEPS_PER_EXECUTION,
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


# --------------------------------------------------------------------------------------------------
# features


def _load_or_reason(path: str, preprocess: PreprocessConfig) -> np.ndarray | str:
    """A preprocessed ROI, or the message saying why it cannot be used (naming the file)."""
    try:
        return load_roi(path, preprocess)
    except DataError as exc:
        return str(exc)


def _stack_usable(loaded: list[np.ndarray | str], size: int) -> tuple[np.ndarray, list[int]]:
    """A batch of images (zeros in place of the unusable ones) and the positions of the unusable ones."""
    bad = [j for j, item in enumerate(loaded) if isinstance(item, str)]
    blank = np.zeros((size, size, 3), np.float32)
    return np.stack([blank if j in bad else item for j, item in enumerate(loaded)]), bad


def _report_left_out(features: np.ndarray, paths: list[str], problems: dict[int, str]) -> None:
    """One warning naming every ROI left out of the features (its row NaN) with the reason."""
    bad = [int(i) for i in np.flatnonzero(~np.isfinite(features).all(axis=1))]
    if not bad:
        return
    reasons = [problems.get(i, f"{paths[i]}: features not finite") for i in bad]
    if len(bad) == len(paths):
        raise DataError(f"no ROI image could be used: {'; '.join(reasons[:3])}")
    more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
    warnings.warn(
        f"{len(bad)} of {len(paths)} ROI(s) left out of the features (their rows are NaN): "
        f"{'; '.join(reasons[:10])}{more}",
        ExclusionWarning,
        stacklevel=3,
    )


def _prefetched_batches(
    paths: Sequence[str],
    batches: Sequence[Sequence[int]],
    preprocess: PreprocessConfig,
    workers: int,
    prefetch: int = 2,
) -> Iterator[tuple[list[int], list[np.ndarray | str]]]:
    """Load and preprocess batches of ROIs on a thread pool, ``prefetch`` batches ahead (a message for an unusable one)."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mcalc-roi")
    pending: deque[tuple[list[int], list[Future]]] = deque()
    try:
        queue = iter(batches)
        for batch in queue:
            pending.append(
                (list(batch), [pool.submit(_load_or_reason, paths[i], preprocess) for i in batch])
            )
            if len(pending) > prefetch:
                break
        while pending:
            indices, futures = pending.popleft()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append(
                    (list(nxt), [pool.submit(_load_or_reason, paths[i], preprocess) for i in nxt])
                )
            yield indices, [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def extract_features(
    paths: list[str],
    preprocess: PreprocessConfig,
    weights: WeightsInfo,
    cache_dir: Path,
    batch_size: int = 32,
    progress: bool = True,
    seed: int = 0,
    backbone: keras.Model | None = None,
    workers: int | None = None,
) -> np.ndarray:
    """Backbone features (N, 1536) of the ROI DICOMs at ``paths``, cached per image by content.

    The cache key of a row is the image file's sha256, ``preprocess.key()``, the weights' identity
    (file sha256 or ``random:<seed>``) and the Keras / TensorFlow versions. Rows already cached are
    loaded; the rest are decoded on a thread pool (prefetching ahead of the backbone) and written as
    each batch finishes. ``backbone`` may be passed to reuse a model built by :func:`build_backbone`
    with the same ``weights``, ``seed`` and ``preprocess.image_size``; otherwise one is built only when
    some row is missing. A ROI whose file cannot be read or preprocessed never aborts the run: its row
    is NaN (never cached) and one :class:`~mcalc.errors.ExclusionWarning` names it with the reason;
    DataError only when no ROI at all can be used.
    """
    import keras
    import tensorflow as tf
    from tqdm.auto import tqdm

    paths = [str(p) for p in paths]
    memo: dict = {}
    digests = []
    problems: dict[int, str] = {}  # row -> why its ROI is left out (the row comes back NaN)
    for i, p in enumerate(paths):
        try:
            digests.append(file_digest(p, memo))
        except OSError as exc:
            digests.append(f"unreadable:{p}")  # a key never cached: the row is NaN
            problems[i] = f"{p}: ROI image file cannot be read ({exc.strerror or exc})"
    if paths and len(problems) == len(paths):
        raise DataError(f"no ROI image could be read: {'; '.join(list(problems.values())[:3])}")
    identity = weights.identity(seed)
    versions = f"keras={keras.__version__};tf={tf.__version__}"
    keys = [
        cache_key(f"features-v{FEATURES_VERSION}", d, preprocess.key(), identity, versions)
        for d in digests
    ]
    meta = {
        "preprocess": preprocess.key(),
        "weights": identity,
        "weights_used": weights.used,
        "versions": versions,
    }
    workers = int(workers or min(8, os.cpu_count() or 1))

    def compute(missing: list[int]) -> Iterator[tuple[list[int], np.ndarray]]:
        """Yield (indices, features) batch by batch for the rows missing from the cache."""
        model = (
            backbone
            if backbone is not None
            else build_backbone(preprocess.image_size, weights, seed)
        )
        if tuple(model.input_shape[1:3]) != (preprocess.image_size, preprocess.image_size):
            raise ValueError(
                f"backbone input {model.input_shape} does not match image_size {preprocess.image_size}"
            )
        log.info("extracting features of %d images on %s", len(missing), compute_device())
        batches = [missing[i : i + batch_size] for i in range(0, len(missing), batch_size)]
        bar = tqdm(total=len(missing), desc="features", unit="img", disable=not progress)
        try:
            for indices, loaded in _prefetched_batches(paths, batches, preprocess, workers):
                images, bad = _stack_usable(loaded, preprocess.image_size)
                problems.update({indices[j]: loaded[j] for j in bad})
                n = len(indices)
                if n < batch_size:  # pad so every batch has one shape (one traced function)
                    images = np.concatenate(
                        [images, np.zeros((batch_size - n, *images.shape[1:]), images.dtype)]
                    )
                feats = np.array(model.predict_on_batch(images))[:n]
                feats[bad] = np.nan  # left out, reported below, never cached
                bar.update(n)
                yield indices, feats
        finally:
            bar.close()

    result = load_or_compute(
        keys, compute, FeatureCache(Path(cache_dir)), row_shape=(N_FEATURES,), meta=meta
    )
    log.info("features: %d rows from cache, %d computed", result.n_cached, len(result.computed))
    _report_left_out(result.array, paths, problems)
    return result.array


# --------------------------------------------------------------------------------------------------
# fine-tuning the backbone (the paper's §3 reading: the optimizers "fine-tune the parameters of
# InceptionResNetV2"; §2.3 reads as a frozen feature extractor, which is the path above)

#: How much of the backbone is trained: nothing (the §2.3 reading), the last Inception-ResNet-C stage
#: (``block8_1`` … ``block8_10``, ``conv_7b``, ``conv_7b_bn`` / ``conv_7b_ac``), or every layer.
TRAIN_BACKBONE = ("none", "top", "all")
#: The layer that ends the backbone's reduction-B block; everything after it is the Inception-ResNet-C stage.
TOP_STAGE_AFTER = "mixed_7a"


def find_backbone(model_or_backbone: keras.Model) -> keras.Model:
    """The InceptionResNetV2 inside an end-to-end model (or the backbone itself); ValueError if none."""
    import keras

    def is_backbone(m: Any) -> bool:
        """Whether ``m`` is a Keras model with InceptionResNetV2's reduction-B layer."""
        return isinstance(m, keras.Model) and any(
            layer.name == TOP_STAGE_AFTER for layer in m.layers
        )

    if is_backbone(model_or_backbone):
        return model_or_backbone
    for layer in model_or_backbone.layers:
        if is_backbone(layer):
            return layer
    raise ValueError(
        f"model {model_or_backbone.name!r} contains no InceptionResNetV2 backbone "
        f"(no nested model with a {TOP_STAGE_AFTER!r} layer)"
    )


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
    batch_size: int = 32,
    shuffle_seed: int | None = None,
    epochs: int = 1,
    parallel: int | None = None,
) -> tf.data.Dataset:
    """A tf.data stream of ROI image batches (and one-hot labels) for ``epochs`` passes over ``paths``.

    Each pass is ordered by :func:`epoch_orders` (``shuffle_seed``) or kept in the given order
    (``shuffle_seed=None``), and is batched on its own, so that every pass has ``ceil(n / batch_size)``
    batches and a pass's last, smaller batch never mixes with the next pass. Images are decoded with
    :func:`mcalc.preprocessing.load_roi` through ``tf.numpy_function`` (declared stateless, so that
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
        Y = one_hot(labels)
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
    """The DataError raised by :func:`load_roi` inside a tf.data pipeline, recovered from TensorFlow's error."""
    text = str(exc)
    marker = "DataError: "
    if marker not in text:
        return None
    return DataError(text[text.rindex(marker) + len(marker) :].strip().splitlines()[0])


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
        preprocess.image_size, weights, config.hidden_units, seed=config.seed, backbone=backbone
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
        epochs=config.epochs,
    )
    validation = None
    if val_paths is not None and len(val_paths):
        validation = image_dataset(
            list(val_paths), y_val, preprocess, config.batch_size, shuffle_seed=None
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
        history=_ordered_history(pd.DataFrame(rows)), model=model, elapsed_s=elapsed, config=config
    )


def _ordered_history(history: pd.DataFrame) -> pd.DataFrame:
    """History columns in the order epoch, :data:`HISTORY_METRICS`, their ``val_*``, then any others."""
    ordered = ["epoch", *HISTORY_METRICS, *(f"val_{m}" for m in HISTORY_METRICS)]
    return history[[c for c in ordered if c in history] + [c for c in history if c not in ordered]]


def predict_images(
    model: keras.Model, paths: Sequence[str], preprocess: PreprocessConfig, batch_size: int = 32
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
