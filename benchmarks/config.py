"""Sizes of every measurement, the quick sizes and the targets the report checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mcalc.paper import BATCH_SIZE, EPOCHS, IMAGE_SIZE

GB = 1e9

# Targets printed beside the figures.
TARGET_BOOK_S = 360.0  # the whole book, cold, scale 1, on an idle 2-core machine
TARGET_RSS_BYTES = 4 * GB
TARGET_SPEEDUP = 50.0
TARGET_EXTRACTION_RATIO = 0.85
TARGET_BACKBONE_FRACTION = 0.85  # the book's backbone variant, of the float32 ceiling (issue 25)

#: TensorFlow thread-pool settings section 1 compares, (intra-op, inter-op) threads; 0 is TensorFlow's default.
THREAD_SETTINGS: tuple[tuple[int, int], ...] = ((0, 0), (2, 1), (1, 2), (2, 2))


@dataclass
class BenchConfig:
    """Sizes of every measurement (the defaults are the paper's setting on the default data)."""

    image_size: int = IMAGE_SIZE
    batch_size: int = BATCH_SIZE
    repeats: int = 5
    conv_hw: int = 35
    conv_channels: int = 256
    conv_batch: int = BATCH_SIZE  # the dense-convolution ceiling at the backbone's batch
    conv_kernel: int = 3
    subset_train: int = 32
    subset_val: int = 8
    measured_epochs: int = 3
    epochs: int = EPOCHS
    full_scale: float = 1.0
    scale: float = 0.25
    book_scales: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    thread_settings: tuple[tuple[int, int], ...] = THREAD_SETTINGS
    weights: str = "random"
    seed: int = 0
    work_dir: Path = Path("build/bench")
    features: Path = Path("results/features.npz")
    check_learning_rate: dict = field(
        default_factory=lambda: {"adam": 1e-2, "adagrad": 1e-1, "adadelta": 1.0, "rmsprop": 1e-2}
    )


#: Small sizes for ``--quick`` (a smoke run in well under a minute per section).
QUICK = {
    "image_size": 75,
    "batch_size": 8,
    "repeats": 2,
    "conv_hw": 17,
    "conv_channels": 64,
    "conv_batch": 8,
    "subset_train": 8,
    "subset_val": 4,
    "measured_epochs": 2,
    "epochs": 2,
    "full_scale": 0.02,
    "scale": 0.02,
    "book_scales": (0.02,),
    "thread_settings": THREAD_SETTINGS[:2],
}
