"""The network's figures (Figures 2 and 3), read off the built Keras model."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from mcalc.learn.architecture import find_backbone
from mcalc.report.plots import MIN_FONTSIZE

__all__ = [
    "backbone_stages",
    "figure2",
    "figure3",
]


def _shape(layer) -> str:
    """A layer's output shape without the batch axis, as 'H × W × C'."""
    shape = tuple(layer.output.shape)[1:]
    return " × ".join(str(s) for s in shape)


def backbone_stages(backbone) -> pd.DataFrame:
    """InceptionResNetV2's stages (stem, blocks, reductions, pooling) read off the built Keras model.

    A stage ends at a named layer (the branch convolutions inside a block are auto-named, so each stage
    runs up to its last named layer): stem → mixed_5b; Inception-ResNet-A → last block35_*;
    Reduction-A → mixed_6a; Inception-ResNet-B → last block17_*; Reduction-B → mixed_7a;
    Inception-ResNet-C → the layer before conv_7b; the final 1×1 convolution → conv_7b_ac; then pooling.
    """
    names = [layer.name for layer in backbone.layers]

    def last(prefix: str) -> int:
        """Index of the last layer whose name starts with ``prefix``."""
        return max(i for i, n in enumerate(names) if n.startswith(prefix))

    ends = [
        ("Stem", names.index("mixed_5b"), None),
        ("Inception-ResNet-A (block35)", last("block35_"), r"^block35_\d+_mixed$"),
        ("Reduction-A (mixed_6a)", names.index("mixed_6a"), None),
        ("Inception-ResNet-B (block17)", last("block17_"), r"^block17_\d+_mixed$"),
        ("Reduction-B (mixed_7a)", names.index("mixed_7a"), None),
        ("Inception-ResNet-C (block8)", names.index("conv_7b") - 1, r"^block8_\d+_mixed$"),
        ("Final 1×1 convolution (conv_7b)", last("conv_7b"), None),
        ("Global average pooling", len(names) - 1, None),
    ]
    rows, begin = [], 0
    for stage, stop, block in ends:
        members = names[begin : stop + 1]
        repeats = sum(bool(re.match(block, n)) for n in members) if block else 0
        rows.append(
            {
                "stage": stage,
                "layers": len(members),
                "repeats": repeats,
                "output": _shape(backbone.layers[stop]),
            }
        )
        begin = stop + 1
    return pd.DataFrame(rows)


def _draw_stack(ax, boxes: list[tuple[str, str]], colours: list) -> None:
    """Draw labelled boxes top-to-bottom joined by arrows."""
    n = len(boxes)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, n)
    ax.axis("off")
    for i, ((title, sub), colour) in enumerate(zip(boxes, colours)):
        y = n - i - 0.5
        ax.add_patch(
            plt.Rectangle(
                (0.08, y - 0.32), 0.84, 0.64, facecolor=colour, edgecolor="0.2", linewidth=0.8
            )
        )
        ax.text(0.5, y + 0.09, title, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(0.5, y - 0.16, sub, ha="center", va="center", fontsize=MIN_FONTSIZE)
        if i < n - 1:
            ax.annotate(
                "",
                xy=(0.5, y - 0.5),
                xytext=(0.5, y - 0.32),
                arrowprops={"arrowstyle": "->", "color": "0.3"},
            )


def figure2(model) -> plt.Figure:
    """Figure 2: the proposed network (input → frozen backbone → Dense(128, ReLU) → Dense(3, softmax)), from the model."""
    backbone = find_backbone(model)
    boxes, colours = [], []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            boxes.append(("Input (grey ROI copied to 3 channels)", _shape(layer)))
        elif layer is backbone:
            boxes.append(
                (
                    f"InceptionResNetV2, frozen ({layer.count_params():,} parameters)",
                    f"pooled features {_shape(layer)}",
                )
            )
        elif kind == "Dense":
            act = layer.get_config()["activation"]
            boxes.append(
                (
                    f"Dense({layer.units}, {act})",
                    f"{_shape(layer)} · {layer.count_params():,} trainable parameters",
                )
            )
        elif hasattr(layer, "layers"):
            for sub in layer.layers:
                if type(sub).__name__ == "Dense":
                    act = sub.get_config()["activation"]
                    boxes.append(
                        (
                            f"Dense({sub.units}, {act})",
                            f"{_shape(sub)} · {sub.count_params():,} trainable parameters",
                        )
                    )
        else:
            continue
        colours.append("#dbe9f6" if "Inception" in boxes[-1][0] else "#fde3c8")
    while len(colours) < len(boxes):
        colours.append("#fde3c8")
    fig, ax = plt.subplots(figsize=(6, 0.9 * len(boxes) + 0.6))
    _draw_stack(ax, boxes, colours)
    fig.tight_layout()
    return fig


def figure3(model) -> plt.Figure:
    """Figure 3: InceptionResNetV2's stages with their output grids, read off the built backbone."""
    stages = backbone_stages(find_backbone(model))
    boxes = [
        (
            row.stage + (f" × {row.repeats}" if row.repeats else ""),
            f"{row.layers} layers → {row.output}",
        )
        for row in stages.itertuples()
    ]
    palette = sns.color_palette("pastel", len(boxes))
    fig, ax = plt.subplots(figsize=(6, 0.75 * len(boxes) + 0.6))
    _draw_stack(ax, boxes, list(palette))
    fig.tight_layout()
    return fig
