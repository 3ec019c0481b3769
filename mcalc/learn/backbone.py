"""The backbone's inference path: batch normalisation folded into the convolutions before it.

InceptionResNetV2's convolution blocks are Conv2D(use_bias=False) → BatchNormalization(scale=False)
→ Activation. Frozen and in inference mode, a BatchNormalization is a per-channel affine map
``y = (x − mean) · γ / sqrt(var + ε) + β`` of the convolution's output, and a convolution is linear
in its kernel, so the pair is exactly one convolution with kernel ``W · s`` and bias ``β − mean · s``
(``s = γ / sqrt(var + ε)`` per output channel). :func:`fold_batchnorm` builds that model (a
functional clone, the same layer names, each folded BatchNormalization an Identity). It computes the
same features up to float32 rounding: the scale is applied to the kernel before the sum over the
receptive field rather than to its result, which reorders rounding only (``tests/learn/
test_backbone.py`` bounds the difference); the network's arithmetic otherwise does not change.

:data:`VARIANTS` names the ways to run the backbone: ``plain`` is the Keras model as built
(:func:`mcalc.learn.model.build_backbone`), ``folded`` the folded clone, ``xla`` and ``folded+xla``
the same with ``predict_on_batch`` compiled by XLA (slower on the 2-core CPU of benchmarks/RESULTS.md
and minutes to compile: kept for other machines). ``folded+bf16`` is the folded clone computing in
bfloat16 (Keras' ``mixed_bfloat16`` policy: float32 weights, bfloat16 arithmetic, float32 features
out): on a CPU with bfloat16 matrix units (AMX, AVX512-BF16) about 2.5× faster, but a different
arithmetic, its features within :data:`BF16_TOLERANCE` of float32's, not equal to them; it is
opt-in (:data:`REDUCED_PRECISION`), never the default, because the paper's numbers come from float32. :func:`inference_model` gives the model of a
variant; :func:`mcalc.learn.features.compute_features` (the book) runs :data:`DEFAULT_VARIANT`
unless told ``"plain"``, ``extract_features`` the plain model unless told otherwise (so a model a
caller passes runs as passed), and the cache is keyed by the variant. Folding is for a frozen backbone only: fine-tuning keeps the plain model.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

#: The ways to run the backbone for features: the Keras model as built, or batch norm folded.
VARIANTS = ("plain", "folded", "xla", "folded+xla", "folded+bf16")
#: The arithmetic of each variant whose features are not float32's (they differ beyond rounding): opt-in only.
REDUCED_PRECISION = {"folded+bf16": "bfloat16"}
#: Largest |bf16 − plain| feature difference over the largest |plain| feature a bfloat16 variant is held
#: to: bfloat16 keeps 8 significant bits (a relative rounding of 2⁻⁹ ≈ 0.2 % per operation), so its
#: features carry errors of a few tenths of a percent of their scale (0.6–0.7 % measured on the 299-px backbone).
BF16_TOLERANCE = 2e-2
#: The variant the book's feature extraction (compute_features) uses unless told otherwise (see benchmarks/RESULTS.md, section 1).
DEFAULT_VARIANT = "folded"
#: The attribute marking a model made by :func:`inference_model` with its variant.
_VARIANT_ATTR = "_mcalc_backbone_variant"


def _producer(layer: keras.layers.Layer) -> keras.layers.Layer | None:
    """The layer whose output is ``layer``'s single input (None for several inputs or an input layer)."""
    try:
        history = layer.input._keras_history
    except (AttributeError, ValueError):
        return None
    return history.operation if history is not None else None


def foldable_pairs(model: keras.Model) -> dict[str, str]:
    """Conv2D name → BatchNormalization name of every conv whose only consumer is a channels-last batch norm."""
    import keras

    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        conv = _producer(layer)
        if (
            isinstance(conv, keras.layers.Conv2D)
            and type(conv) is keras.layers.Conv2D
            and conv.data_format == "channels_last"
            and conv.groups == 1
            and layer.axis in (-1, 3)
            and conv.activation in (None, keras.activations.linear)
            and len(conv._outbound_nodes) == 1
            and len(layer._inbound_nodes) == 1
        ):
            pairs[conv.name] = layer.name
    return pairs


def folded_weights(
    conv: keras.layers.Conv2D, bn: keras.layers.BatchNormalization
) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias of the one convolution equal to ``conv`` then ``bn`` in inference mode (float64 arithmetic)."""
    kernel = np.asarray(conv.kernel.numpy(), np.float64)
    bias = (
        np.asarray(conv.bias.numpy(), np.float64) if conv.use_bias else np.zeros(kernel.shape[-1])
    )
    mean = np.asarray(bn.moving_mean.numpy(), np.float64)
    var = np.asarray(bn.moving_variance.numpy(), np.float64)
    gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.scale else np.ones_like(mean)
    beta = np.asarray(bn.beta.numpy(), np.float64) if bn.center else np.zeros_like(mean)
    s = gamma / np.sqrt(var + float(bn.epsilon))
    return (kernel * s).astype(np.float32), ((bias - mean) * s + beta).astype(np.float32)


def _identity_layer(name: str, dtype: object = None) -> keras.layers.Layer:
    """A layer passing its input through that takes a batch norm's call arguments (``training``, ``mask``)."""
    import keras

    class FoldedBatchNorm(keras.layers.Layer):
        """A batch normalisation folded into the convolution before it: the identity."""

        def call(self, inputs: object, training: object = None, mask: object = None) -> object:
            """The input, unchanged."""
            return inputs

        def compute_output_shape(self, input_shape: tuple) -> tuple:
            """The input's shape."""
            return input_shape

    return FoldedBatchNorm(name=name, dtype=dtype)


def fold_batchnorm(model: keras.Model, bfloat16: bool = False) -> keras.Model:
    """A frozen inference clone of ``model`` with each Conv2D → BatchNormalization pair one biased Conv2D.

    ``bfloat16``: every layer but the last computes under Keras' ``mixed_bfloat16`` policy (float32
    weights cast to bfloat16 at each call); the last computes in float32, so the output is float32.
    """
    import keras

    pairs = foldable_pairs(model)
    folded_bns = set(pairs.values())
    last = model.layers[-1].name

    made: dict[str, keras.layers.Layer] = {}

    def policy(name: str) -> keras.DTypePolicy | None:
        """The clone's dtype policy for a layer (None: the original's)."""
        if not bfloat16:
            return None
        return keras.DTypePolicy("float32" if name == last else "mixed_bfloat16")

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        """The layer's copy: a biased conv for a folded conv, an Identity for a folded batch norm."""
        config = layer.get_config()
        if layer.name in pairs:
            config["use_bias"] = True
        if policy(layer.name) is not None:
            config["dtype"] = policy(layer.name)
        made[layer.name] = (
            _identity_layer(layer.name, policy(layer.name))
            if layer.name in folded_bns
            else layer.__class__.from_config(config)
        )
        return made[layer.name]

    clone_ = keras.models.clone_model(model, clone_function=clone)
    for name, new in made.items():
        old = model.get_layer(name)
        if name in pairs:
            new.set_weights(list(folded_weights(old, model.get_layer(pairs[name]))))
        elif name not in folded_bns:
            new.set_weights(old.get_weights())
    clone_.trainable = False
    log.info(
        "backbone: %d batch normalisations folded into their convolutions%s",
        len(pairs),
        ", computing in bfloat16" if bfloat16 else "",
    )
    return clone_


def precision(variant: str) -> str:
    """The arithmetic a variant's features come from: "float32", or a reduced precision's name."""
    return REDUCED_PRECISION.get(variant, "float32")


def native_bfloat16() -> bool | None:
    """Whether this machine computes bfloat16 natively: a GPU, or a CPU whose oneDNN has bfloat16
    instructions (AVX512-BF16, AMX); None when TensorFlow cannot say."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:  # bfloat16 units from Ampere (compute capability 8.0) on
        details = tf.config.experimental.get_device_details(gpus[0])
        capability = details.get("compute_capability")
        return None if capability is None else tuple(capability) >= (8, 0)
    try:
        from tensorflow.python.util import _pywrap_utils

        return bool(
            _pywrap_utils.IsDataTypeSupportedByOneDNNOnThisCPU(tf.bfloat16.as_datatype_enum)
        )
    except (ImportError, AttributeError, TypeError):
        return None


def backbone_variant(model: keras.Model) -> str | None:
    """The variant a model made by :func:`inference_model` runs (None for any other model)."""
    return getattr(model, _VARIANT_ATTR, None)


def inference_model(model: keras.Model, variant: str = DEFAULT_VARIANT) -> keras.Model:
    """The model that runs ``model``'s forward pass as ``variant`` (``model`` itself for ``plain``, or if already made).

    ``xla`` variants compile ``predict_on_batch`` with XLA (``jit_compile``), on a copy for ``xla``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown backbone variant {variant!r}; valid: {', '.join(VARIANTS)}")
    if backbone_variant(model) is not None or variant == "plain":
        return model
    import keras

    if variant in REDUCED_PRECISION and native_bfloat16() is False:
        log.warning(
            "the %s backbone computes in bfloat16, which this CPU has no instructions for "
            "(AVX512-BF16 or AMX): it may run slower than float32 here",
            variant,
        )
    if variant.startswith("folded"):
        out = fold_batchnorm(model, bfloat16=precision(variant) == "bfloat16")
    else:
        out = keras.models.clone_model(model)
        out.set_weights(model.get_weights())
        out.trainable = False
    if variant.endswith("xla"):
        out.jit_compile = True
        if not out.jit_compile:
            log.warning(
                "Keras declined XLA for the %s backbone (deterministic ops are on after training, "
                "or a layer cannot compile): it runs uncompiled",
                variant,
            )
        out.make_predict_function(force=True)
    setattr(out, _VARIANT_ATTR, variant)
    return out
