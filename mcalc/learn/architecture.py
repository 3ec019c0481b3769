"""The model's structure: its layers as Table 2 lists them, the backbone inside it and the head's layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import keras

__all__ = ["TOP_STAGE_AFTER", "architecture_summary", "find_backbone", "head_layers"]

#: The layer that ends InceptionResNetV2's reduction-B block: it identifies the backbone inside a model
#: (:func:`find_backbone`), and the Inception-ResNet-C stage after it is what fine-tuning "top" trains.
TOP_STAGE_AFTER = "mixed_7a"


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


def head_layers(model: keras.Model) -> list:
    """The layers of an end-to-end model outside its backbone, nested models unrolled, in order."""
    backbone = find_backbone(model)

    def unroll(m: Any) -> list:
        """``m``'s layers, descending into nested models other than the backbone."""
        out = []
        for layer in m.layers:
            if layer is backbone:
                continue
            out.extend(unroll(layer) if hasattr(layer, "layers") else [layer])
        return out

    return unroll(model)
