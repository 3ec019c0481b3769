"""What every chapter step starts from: a results folder's features, the head's settings, the validation split.

Chapters 3, 5, 6 and 8 train the paper's head on the same inputs: the backbone features a results folder
holds (made at one image size with one set of weights), the head's training settings (whose seed and task
are the run's), the validation ROIs held out of the official training split and the bootstrap resamples
of the intervals. :class:`StepInputs` holds them once, so each step takes one argument, not six.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from mcalc.learn.model import TrainConfig
from mcalc.learn.splits import official_split
from mcalc.paper import VALIDATION_SIZE
from mcalc.records.results import load_study_inputs
from mcalc.study import N_BOOT, get_task

__all__ = ["StepInputs"]


@dataclass(frozen=True)
class StepInputs:
    """A chapter step's inputs: the results folder and its features' image size and weights, the head's
    settings (``config``: its seed and task are the run's), the validation hold-out (ROIs, or a fraction
    of the training split), the bootstrap resamples and the validation split's seed (None: the run's)."""

    results_dir: str | Path
    image_size: int
    weights: str
    config: TrainConfig = field(default_factory=TrainConfig)
    validation_size: int | float = VALIDATION_SIZE
    n_boot: int = N_BOOT
    split_seed: int | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        """The classes of the run's task."""
        return get_task(self.config.task).classes

    @property
    def splitting_seed(self) -> int:
        """The seed of the validation split: ``split_seed``, or the run's seed when it is None."""
        return self.config.seed if self.split_seed is None else self.split_seed

    def with_config(self, **changes: object) -> StepInputs:
        """The same inputs with some of the head's settings changed (``optimizer="adagrad"``)."""
        return replace(self, config=replace(self.config, **changes))

    def load(self) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """The usable manifest under the task, its backbone features (checked against the image size
        and weights) and labels."""
        return load_study_inputs(self.results_dir, self.image_size, self.weights, self.config.task)

    def official(self) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """:meth:`load`'s manifest, features and labels, and the official split (the validation ROIs
        held out of its training part, grouped by patient, drawn with :attr:`splitting_seed`)."""
        manifest, X, y = self.load()
        idx = official_split(manifest, self.validation_size, self.splitting_seed, self.classes)
        return manifest, X, y, idx
